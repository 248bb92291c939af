"""Specification of powerprune/mcu/codegen.py and the parts it composes: the C emitters (cgen), the
per-op lowering table (lowering, stock) and the descriptor structs they fill."""

from __future__ import annotations

import ast
import doctest
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from powerprune.ir import (
    Activation,
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Graph,
    Pool2D,
    Reshape,
    Softmax,
    TensorInfo,
)
from powerprune.mcu import cgen, lowering, stock
from powerprune.mcu.codegen import DESCRIPTORS, KERNEL_SETS, CodegenError, generate, kernel_sets

from .test_kernelsets import every_op_graph

MCU = Path(__file__).parent.parent / "powerprune" / "mcu"


def float_graph() -> Graph:
    """float32 CONV_2D -> DEPTHWISE_CONV_2D -> MAX_POOL_2D -> AVERAGE_POOL_2D -> RESHAPE -> FC -> SOFTMAX."""
    rng = np.random.default_rng(0)
    none = np.zeros(0, np.float32)

    def f(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape).astype(np.float32)

    def act(t: TensorInfo) -> Activation:
        return Activation.for_output("NONE", t)

    c, p1, p2 = TensorInfo.float32((4, 4, 2)), TensorInfo.float32((2, 2, 2)), TensorInfo.float32((1, 1, 2))
    flat, out = TensorInfo.float32((2,)), TensorInfo.float32((3,))
    return Graph(TensorInfo.float32((4, 4, 1)), [
        Conv2D(f(2, 3, 3, 1), f(2), none, (1, 1), "SAME", act(c), c),
        DepthwiseConv2D(f(1, 3, 3, 2), f(2), none, (1, 1), "SAME", act(c), c),
        Pool2D("MAX", (2, 2), (2, 2), "VALID", act(p1), p1),
        Pool2D("AVERAGE", (2, 2), (2, 2), "VALID", act(p2), p2),
        Reshape(flat),
        FullyConnected(f(3, 2), f(3), none, act(out), out),
        Softmax(1.0, out)], "float_graph")


def test_the_c_emitters_doctests_hold():
    failed, attempted = doctest.testmod(cgen)
    assert attempted >= 10 and failed == 0


def test_every_descriptor_struct_is_filled_by_some_lowering():
    """No struct of the header is dead weight: the int8 graph of every op under every set (stock ADD
    and table ADD, stock and fast weighted kernels) and a float32 graph together fill each one."""
    sources = [generate(every_op_graph(), k).model_c for k in KERNEL_SETS]
    sources += [generate(float_graph(), k).model_c for k in kernel_sets("float32")]
    for name in DESCRIPTORS:
        assert any(f"static const {name} layer" in c for c in sources), name


def test_every_op_of_the_ir_has_a_lowering():
    int8_ops = {layer.op for layer in every_op_graph().layers} - {"RESHAPE"}  # a reshape is a view
    assert int8_ops <= set(lowering.INT8) | set(stock.STOCK)
    float_ops = {layer.op for layer in float_graph().layers} - {"RESHAPE"}
    assert float_ops == set(lowering.FLOAT32)


def test_the_descriptors_are_the_structs_the_lowerings_fill_in_the_headers_order():
    header = (MCU / "kernels" / "pp_kernels.h").read_text()
    order = [name for name in DESCRIPTORS]
    assert order == sorted(order, key=lambda n: header.index(f"}} {n};"))
    assert {s.struct.name for s in stock.STOCK.values()} <= set(DESCRIPTORS)
    for s in stock.STOCK.values():
        assert DESCRIPTORS[s.struct.name] is s.struct


@pytest.mark.parametrize("op", sorted(stock.STOCK))
def test_every_stock_lowering_is_a_pure_function_of_the_layer_and_its_inputs(op):
    g = every_op_graph()
    steps = [(layer, g.inputs_of(i)) for i, layer in enumerate(g.layers) if layer.op == op]
    assert steps, f"the every-op graph has no {op}"
    low = stock.STOCK[op]
    for layer, inputs in steps:
        values = low.values(layer, inputs)
        assert list(values) == [f for f, _ in low.struct.fields]
        assert low.values(layer, inputs) == values
        assert low.kernel_name(layer, inputs).startswith("pp_")


def test_the_stock_lowerings_import_nothing_from_mcu_but_cgen():
    """So each can move into its op's module unchanged."""
    tree = ast.parse((MCU / "stock.py").read_text())
    relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
    assert relative == {"cgen"}


def test_a_layer_no_lowering_knows_is_one_clear_error():
    @dataclass
    class Mul:
        output: TensorInfo
        op: str = "MUL"

    t = TensorInfo((4,), 0.1, 0)
    step = lowering.Step("layer0", Mul(t), (t, t), "dense", "int8", False, ("in", "in"), "out", "0")
    with pytest.raises(CodegenError, match="no int8 C kernel for MUL"):
        lowering.lower(step)


def test_generate_writes_one_descriptor_and_one_call_per_layer_and_views_for_reshapes():
    g = every_op_graph()
    for kernels in KERNEL_SETS:
        c = generate(g, kernels).model_c
        run = c[c.index("void pp_model_run"):]
        assert run.count("PP_MARK(PP_MARK_LAYER);") == len(g.layers)
        for i, layer in enumerate(g.layers):
            assert (f"&layer{i}," in run) == (layer.op != "RESHAPE"), (kernels, i)
