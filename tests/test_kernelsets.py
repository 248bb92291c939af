"""Specification of powerprune/mcu/kernelsets.py: the kernel sets as records of what they can run,
and the implementation each layer gets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from powerprune.ir import (
    Activation,
    Add,
    Conv2D,
    DepthwiseConv2D,
    Dequantize,
    FullyConnected,
    Graph,
    Logistic,
    Mean,
    Pad,
    Pool2D,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
)
from powerprune.mcu import kernelsets
from powerprune.mcu.codegen import CodegenError, generate
from powerprune.mcu.kernelsets import (
    IMPLEMENTATIONS,
    KERNEL_SETS,
    SETS,
    auto_choices,
    checked_plan,
    choose_kernel,
    fits,
    kernel_plan,
)
from powerprune.tflite import load_tflite

SOFTMAX_OUT = (1.0 / 256, -128)
NO_CLAMP = Activation("NONE", -128, 127)
def _runs_on_the_mcu(path: Path) -> bool:
    """Fixtures whose every op has a C kernel (the LSTMs run on the host only; the int16 model not yet)."""
    try:
        graph = load_tflite(path)
        kernel_plan(graph, "tflm-ref")
    except ValueError:
        return False
    return True


FIXTURES = [p for p in sorted((Path(__file__).parent / "fixtures").rglob("*.tflite")) if _runs_on_the_mcu(p)]


def every_op_graph(seed: int = 0, weight: int = 127) -> Graph:
    """float32 in -> QUANTIZE -> CONV_2D -> DEPTHWISE_CONV_2D -> ADD (of both) -> MAX_POOL_2D -> PAD ->
    AVERAGE_POOL_2D -> MEAN -> LOGISTIC -> QUANTIZE (int8 -> int8) -> FULLY_CONNECTED -> RESHAPE ->
    SOFTMAX -> DEQUANTIZE -> float32 out: an int8 graph holding every op the IR has."""
    rng = np.random.default_rng(seed)
    q = TensorInfo((6, 6, 4), 0.05, 4)

    def w(*shape: int) -> np.ndarray:
        return rng.integers(-weight, weight + 1, shape).astype(np.int8)

    c1, c2, s = TensorInfo((6, 6, 4), 0.2, -3), TensorInfo((6, 6, 4), 0.25, 2), TensorInfo((6, 6, 4), 0.3, 0)
    pooled, padded = TensorInfo((3, 3, 4), 0.3, 0), TensorInfo((4, 4, 4), 0.3, 0)
    avg, mean = TensorInfo((2, 2, 4), 0.3, 0), TensorInfo((4,), 0.1, 1)
    fc = TensorInfo((5,), 0.2, -1)
    layers = [
        Quantize(q),
        Conv2D(w(4, 3, 3, 4), rng.integers(-99, 99, 4).astype(np.int32), np.full(4, 0.004, np.float32), (1, 1),
               "SAME", NO_CLAMP, c1),
        DepthwiseConv2D(w(1, 3, 3, 4), rng.integers(-99, 99, 4).astype(np.int32), np.full(4, 0.01, np.float32),
                        (1, 1), "SAME", NO_CLAMP, c2),
        Add(NO_CLAMP, s),
        Pool2D("MAX", (2, 2), (2, 2), "VALID", NO_CLAMP, pooled),
        Pad(((1, 0), (1, 0), (0, 0)), padded),
        Pool2D("AVERAGE", (2, 2), (2, 2), "VALID", NO_CLAMP, avg),
        Mean(False, mean),
        Logistic(TensorInfo((4,), *SOFTMAX_OUT)),
        Quantize(TensorInfo((4,), 1 / 16, 0)),
        FullyConnected(w(5, 4), rng.integers(-99, 99, 5).astype(np.int32), np.full(1, 0.01, np.float32), NO_CLAMP,
                       fc),
        Reshape(TensorInfo((1, 5), fc.scale, fc.zero_point)),
        Softmax(1.0, TensorInfo((1, 5), *SOFTMAX_OUT)),
        Dequantize(TensorInfo.float32((1, 5))),
    ]
    reads = [(i,) for i in range(len(layers))]
    reads[3] = (2, 3)  # the ADD sums the conv's and the depthwise conv's outputs
    return Graph(TensorInfo.float32((6, 6, 4)), layers, "every_op", reads=reads)


def test_the_every_op_graph_holds_every_op():
    ops = {layer.op for layer in every_op_graph().layers}
    assert ops == {"QUANTIZE", "CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "MAX_POOL_2D", "PAD", "AVERAGE_POOL_2D",
                   "MEAN", "LOGISTIC", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX", "DEQUANTIZE"}


@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_every_kernel_set_record_runs_every_op_of_an_int8_graph(kernels):
    g = every_op_graph()
    kset = kernelsets.kernel_set(kernels)
    assert "int8" in kset.dtypes
    for (_, layer, inp), impl in zip(g.steps(), kernel_plan(g, kernels), strict=True):
        assert impl in IMPLEMENTATIONS
        assert impl in (*kset.candidates(layer.op), *kset.fallbacks), (layer.op, impl)
        assert fits(impl, layer, inp)
    generate(g, kernels)  # every layer lowers under the set


def test_each_set_runs_the_kernels_its_record_names():
    g = every_op_graph()
    ops = [layer.op for layer in g.layers]
    for kernels in KERNEL_SETS:
        plan = dict(zip(ops, kernel_plan(g, kernels), strict=True))
        kset = kernelsets.kernel_set(kernels)
        for op in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "ADD"):
            assert plan[op] in kset.candidates(op), (kernels, op)
        for op in ("SOFTMAX", "LOGISTIC", "MEAN", "PAD", "DEQUANTIZE"):
            assert plan[op] == "stock"


def test_the_stock_baselines_run_only_stock_kernels_and_stage_nothing():
    graphs = [every_op_graph(), *(load_tflite(p) for p in FIXTURES)]
    for kset in SETS:
        if kset.family == "ours":
            continue
        assert not kset.stages
        for g in graphs:
            if g.dtype not in kset.dtypes:
                continue
            assert set(kernel_plan(g, kset.name)) <= {"tflmref", "tflmskip", "cmsisnn", "stock"}
            assert generate(g, kset.name).staged == ()


def test_only_auto_chooses_per_layer_and_only_it_takes_a_plan():
    assert [s.name for s in SETS if s.per_layer] == ["auto"]
    g = every_op_graph()
    plan = kernel_plan(g, "auto")
    assert checked_plan(g, "auto", plan) == plan
    with pytest.raises(CodegenError, match="only the auto kernel set takes a per-layer plan"):
        checked_plan(g, "dense", plan)


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.name)
def test_autos_prediction_is_one_of_its_choices_and_the_choices_are_dense_and_sparse(path):
    g = load_tflite(path)
    if g.dtype != "int8":
        pytest.skip("a float32 graph has no auto")
    for choices, predicted, dense, sparse in zip(auto_choices(g), kernel_plan(g, "auto"), kernel_plan(g, "dense"),
                                                 kernel_plan(g, "sparse"), strict=True):
        assert predicted in choices
        assert choices == tuple(dict.fromkeys((dense, sparse)))


def test_a_layer_past_the_fast_kernels_accumulator_bound_falls_back_to_tflm_ref():
    """|accumulator| < 2^30 is what the fast requantization needs: weights of 127 over a large input
    offset pass it in this graph, a huge bias does not."""
    g = every_op_graph()
    conv, inp = g.layers[1], g.tensor(1)
    assert all(choose_kernel(conv, inp, k) == k for k in ("dense", "sparse"))
    big = Conv2D(conv.weights, np.full(4, 2**30, np.int32), conv.weight_scales, conv.stride, conv.padding,
                 conv.activation, conv.output)
    assert {choose_kernel(big, inp, k) for k in ("dense", "sparse", "auto")} == {"tflmref"}


def test_a_float32_graph_runs_only_on_the_sets_with_float_kernels():
    out = TensorInfo.float32((3,))
    g = Graph(TensorInfo.float32((4,)), [FullyConnected(np.ones((3, 4), np.float32), np.zeros(3, np.float32),
                                                        np.zeros(0, np.float32), Activation.for_output("NONE", out),
                                                        out)])
    runs = {s.name for s in SETS if "float32" in s.dtypes}
    assert runs == set(kernelsets.kernel_sets("float32")) == {"tflm-ref", "tflm-skip"}
    for kernels in KERNEL_SETS:
        if kernels in runs:
            assert kernel_plan(g, kernels) == ["tflmskip" if kernels == "tflm-skip" else "tflmref"]
        else:
            with pytest.raises(CodegenError, match="has no float32 kernels"):
                kernel_plan(g, kernels)


def test_an_unknown_kernel_set_is_one_clear_error_naming_the_sets():
    g = every_op_graph()
    with pytest.raises(CodegenError, match="unknown kernel set 'fast'; available: tflm-ref, cmsis-nn"):
        kernel_plan(g, "fast")
