"""Specification of powerprune/mcu/codegen.py and the parts it composes: the C emitters (cgen), the
per-op lowering table (lowering, stock) and the descriptor structs they fill."""

from __future__ import annotations

import ast
import doctest
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

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
    requantization,
)
from powerprune.ir import output_size as out_size
from powerprune.mcu import cgen, lowering, stock, streams
from powerprune.mcu.codegen import DESCRIPTORS, KERNEL_SETS, CodegenError, generate, kernel_sets
from powerprune.ops import BY_NAME

from .host_c import c_structs
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
        assert DESCRIPTORS[s.struct.name] == s.struct


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


def test_a_stock_op_is_declared_in_its_op_module_and_nowhere_in_mcu():
    """Adding an op without weights touches its op module (its ``CKernel``), its C kernel and its test:
    the lowering table is derived from the registry, and stock.py names no op."""
    declared = {name for name, op in BY_NAME.items() if op.c is not None}
    assert set(stock.STOCK) == declared
    source = (MCU / "stock.py").read_text()
    assert not [name for name in BY_NAME if f'"{name}"' in source]
    tree = ast.parse(source)
    relative = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1}
    assert relative == {"cgen"}  # of mcu, only the C emitters


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


def commented_offsets(path: Path, name: str) -> dict[str, int]:
    """The byte offsets the comments of struct ``name`` give its fields (``int32_t a, b; /* 12, 16 */``),
    which is what the assembly reading it writes as literal offsets."""
    body = dict((n, b) for b, n in re.findall(r"typedef struct \{(.*?)\} (\w+);", path.read_text(), flags=re.S))[name]
    offsets = {}
    for line in body.splitlines():
        decl = re.match(r"\s*([A-Za-z][^;]*);\s*/\*\s*(\d+(?:,\s*\d+)*)\s*(?::|\*/)", line)
        if decl:
            names = [n.strip(" *") for n in decl.group(1).replace("const ", "").partition(" ")[2].split(",")]
            offsets |= dict(zip(names, (int(n) for n in decl.group(2).split(",")), strict=True))
    return offsets


def test_the_descriptors_records_and_argument_blocks_are_the_kernels_structs():
    kernels = MCU / "kernels"
    assert c_structs(kernels / "pp_kernels.h") == {name: s.fields for name, s in DESCRIPTORS.items()}
    records = c_structs(kernels / "pp_m0.h")
    assert records == {s.name: s.fields for s in (streams.RQ_RECORD, streams.RQT_RECORD)}
    declared = {}
    for source in ("dense.c", "dense_dw.c", "sparse.c"):
        declared |= {n: (fields, source) for n, fields in c_structs(kernels / source).items()}
    for block in streams.ARG_BLOCKS:
        fields, source = declared[block.name]
        assert fields == block.fields, block.name
        assert commented_offsets(kernels / source, block.name) == block.offsets, block.name


def test_a_requantization_record_is_the_words_the_header_declares():
    g = every_op_graph()
    conv, inp = g.layers[1], g.tensor(1)
    rq = requantization(conv, inp)
    for tables in (False, True):
        rqz = streams.requantizer("layer1", conv, rq, 4, tables=tables)
        record = streams.RQT_RECORD if rqz.kind == streams.RQ_KIND_TBL else streams.RQ_RECORD
        assert all(len(r) == len(record.fields) for r in rqz.records)
    with pytest.raises(CodegenError, match="pp_rq_record_t words are"):
        streams.RQ_RECORD.words({"multiplier": 1})


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 9), k=st.integers(1, 4), stride=st.integers(1, 3),
       padding=st.sampled_from(["SAME", "VALID"]), impl=st.sampled_from(["dense", "sparse", "generated"]),
       depthwise=st.booleans())
def test_the_padded_input_layout_holds_every_window_inside_its_scratch(h, w, c, k, stride, padding, impl, depthwise):
    """What the C copy routines trust the descriptor for: every input row copied lies inside its padded
    row, every window inside the scratch, the copy moves whole words where the generated code reads
    them; a layout read in place takes no scratch."""
    assume(padding == "SAME" or (k <= h and k <= w))
    oh, ow = out_size(h, k, stride, padding)[0], out_size(w, k, stride, padding)[0]
    inp = TensorInfo((h, w, c), 0.05, 3)
    out = TensorInfo((oh, ow, c), 0.1, 0)
    if depthwise:
        layer = DepthwiseConv2D(np.ones((1, k, k, c), np.int8), np.zeros(c, np.int32), np.full(c, 0.01, np.float32),
                                (stride, stride), padding, Activation("NONE", -128, 127), out)
        assume(impl == "dense")
    else:
        layer = Conv2D(np.ones((c, k, k, c), np.int8), np.zeros(c, np.int32), np.full(c, 0.01, np.float32),
                       (stride, stride), padding, Activation("NONE", -128, 127), out)
    lay = streams.input_layout(layer, inp, "sparse" if impl == "generated" else impl)
    if impl == "sparse" and not depthwise and streams.generated_conv(layer, "sparse"):
        impl = "generated"  # a small sparse convolution is always generated code
    _, pad_w = out_size(w, k, stride, padding)
    if lay.scratch_bytes == 0:
        assert impl != "generated" and not depthwise and lay.row_bytes == w * c
        return
    assert lay.scratch_bytes % 4 == 0 and lay.padded_rows == (oh - 1) * stride + k
    assert lay.row_lead == (-(-pad_w * c // 4) * 4 if impl == "generated" else pad_w * c)
    assert lay.row_lead + lay.row_copy <= lay.row_bytes and lay.row_copy <= w * c
    last_window_end = (lay.window_origin + ((oh - 1) * stride + k - 1) * lay.row_bytes
                       + ((ow - 1) * stride + k) * c)
    assert last_window_end <= lay.scratch_bytes
    if impl == "generated":
        assert lay.row_bytes % 4 == 0 and lay.row_lead % 4 == 0
        assert lay.window_origin == lay.row_lead - pad_w * c
