"""The op registry (``powerprune.ops``): every registered op carries every host-side hook, and each hook
does its job on a small graph of that op: the graph validates, round-trips through .tflite, runs on
the reference, counts its MACs, and is accepted or refused as a float32 graph as its flag says."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import flatbuffers
import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from powerprune import ops
from powerprune.ir import (
    SOFTMAX_OUTPUT,
    SVDF,
    Activation,
    Add,
    Conv2D,
    DepthwiseConv2D,
    Dequantize,
    FullyConnected,
    Graph,
    IRError,
    Logistic,
    Mean,
    Pad,
    Pool2D,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
    UnidirectionalSequenceLSTM,
)
from powerprune.ops.base import REGISTRY, Builtin, Op, Site, no_macs
from powerprune.ops.tflite_io import OP_NAMES
from powerprune.reference import run
from powerprune.tflite import TFLiteError, export_tflite, import_tflite

RNG = np.random.default_rng(21)
HWC = TensorInfo((4, 4, 2), 0.05, 3)


def _weights(shape: tuple[int, ...]) -> np.ndarray:
    return RNG.integers(-127, 128, shape).astype(np.int8)


def _bias(n: int) -> np.ndarray:
    return RNG.integers(-500, 500, n).astype(np.int32)


def _conv() -> Graph:
    out = TensorInfo((4, 4, 3), 0.1, -5)
    layer = Conv2D(_weights((3, 3, 3, 2)), _bias(3), np.full(3, 0.01, np.float32), (1, 1), "SAME",
                   Activation.for_output("RELU", out), out)
    return Graph(HWC, [layer])


def _depthwise() -> Graph:
    out = TensorInfo((2, 2, 4), 0.1, 2)
    layer = DepthwiseConv2D(_weights((1, 3, 3, 4)), _bias(4), np.full(4, 0.02, np.float32), (1, 1), "VALID",
                            Activation.for_output("NONE", out), out)
    return Graph(HWC, [layer])


def _fully_connected() -> Graph:
    out = TensorInfo((3,), 0.2, 0)
    layer = FullyConnected(_weights((3, 6)), _bias(3), np.array([0.01], np.float32),
                           Activation.for_output("RELU6", out), out)
    return Graph(TensorInfo((6,), 0.05, -1), [layer])


def _pool(kind: str) -> Callable[[], Graph]:
    def build() -> Graph:
        out = replace(HWC, shape=(2, 2, 2))
        return Graph(HWC, [Pool2D(kind, (2, 2), (2, 2), "VALID", Activation.for_output("NONE", out), out)])
    return build


def _reshape() -> Graph:
    return Graph(HWC, [Reshape(replace(HWC, shape=(32,)))])


def _add() -> Graph:
    """A residual: the input and a copy of it (reshaped to its own shape) summed."""
    out = TensorInfo(HWC.shape, 0.1, 0)
    return Graph(HWC, [Reshape(HWC), Add(Activation.for_output("NONE", out), out)], reads=[(0,), (0, 1)])


def _softmax() -> Graph:
    return Graph(TensorInfo((10,), 0.1, 0), [Softmax(1.0, TensorInfo((10,), *SOFTMAX_OUTPUT))])


def _logistic() -> Graph:
    return Graph(TensorInfo((10,), 0.1, 0), [Logistic(TensorInfo((10,), *SOFTMAX_OUTPUT))])


def _mean() -> Graph:
    return Graph(HWC, [Mean(False, TensorInfo((2,), 0.04, 1))])


def _pad() -> Graph:
    return Graph(HWC, [Pad(((1, 1), (0, 2), (0, 0)), replace(HWC, shape=(6, 6, 2)))])


def _quantize() -> Graph:
    return Graph(TensorInfo.float32(HWC.shape), [Quantize(HWC)])


def _dequantize() -> Graph:
    return Graph(HWC, [Dequantize(TensorInfo.float32(HWC.shape))])


def _lstm() -> Graph:
    """Three steps of four features into five units."""
    out = TensorInfo((3, 5), 2.0**-7, 2)
    layer = UnidirectionalSequenceLSTM(_weights((4, 5, 4)), _weights((4, 5, 5)), RNG.integers(-500, 500, (4, 5)).astype(
        np.int32), np.full(4, 0.01, np.float32), np.full(4, 0.02, np.float32), 2.0**-11, 3.0, out)
    return Graph(TensorInfo((3, 4), 0.05, -1), [layer])


def _svdf() -> Graph:
    """Six features into three units of rank 2, a memory of four steps in an int8 state."""
    state = TensorInfo((24,), 0.2, -7)
    layer = SVDF(_weights((6, 6)), _weights((6, 4)), _bias(3), 0.01, 0.02, 2, "RELU", state,
                 TensorInfo((3,), 0.3, 5))
    return Graph(TensorInfo((6,), 0.05, -1), [layer])


# one small int8 graph per op name; its last layer is the op under test
EXAMPLES: dict[str, Callable[[], Graph]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _depthwise, "FULLY_CONNECTED": _fully_connected,
    "MAX_POOL_2D": _pool("MAX"), "AVERAGE_POOL_2D": _pool("AVERAGE"), "RESHAPE": _reshape, "ADD": _add,
    "SOFTMAX": _softmax, "LOGISTIC": _logistic, "MEAN": _mean, "PAD": _pad, "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize, "UNIDIRECTIONAL_SEQUENCE_LSTM": _lstm,
    "SVDF": _svdf,
}
NAMES = list(ops.BY_NAME)


def _inputs(graph: Graph, n: int = 5) -> np.ndarray:
    t = graph.input
    if t.is_float:
        return RNG.normal(0, 2, (n, *t.shape)).astype(np.float32)
    return RNG.integers(-128, 128, (n, *t.shape)).astype(np.int8)


def _as_float32(graph: Graph) -> Graph:
    """The same graph with every tensor float32: float weights and bias, no weight scales."""
    def layer(x):
        changes = {"output": TensorInfo.float32(x.output.shape)}
        if ops.op_of(x).weighted:
            changes |= {"weights": x.weights.astype(np.float32) / 64, "bias": x.bias.astype(np.float32) / 1000,
                        "weight_scales": np.zeros(0, np.float32)}
        if hasattr(x, "activation"):
            changes["activation"] = Activation.for_output(x.activation.kind, changes["output"])
        return replace(x, **changes)
    return Graph(TensorInfo.float32(graph.input.shape), [layer(x) for x in graph.layers], reads=graph.reads)


@pytest.mark.parametrize("op", ops.OPS, ids=lambda op: op.layer.__name__)
def test_every_op_has_every_hook(op):
    for hook in (op.check, op.run, op.macs, op.export, op.import_):
        assert callable(hook)
    assert op.run_f32 is None or callable(op.run_f32)
    assert isinstance(op.float32, bool) and isinstance(op.weighted, bool)
    assert op.arity == "n" or (isinstance(op.arity, int) and op.arity >= 1)
    assert op.builtins and all(ops.BY_BUILTIN[b.code][0] is op for b in op.builtins)
    assert ops.BY_CLASS[op.layer] is op
    for b in op.builtins:  # a layer's ``op`` is its builtin's name, and each name has a test graph here
        assert ops.BY_NAME[OP_NAMES[b.code]] is op
        assert OP_NAMES[b.code] in EXAMPLES


@pytest.mark.parametrize("name", NAMES)
def test_each_op_round_trips_through_tflite_and_runs_the_same(name):
    graph = EXAMPLES[name]()
    assert graph.layers[-1].op == name
    data = export_tflite(graph)
    back = import_tflite(data)
    assert [x.op for x in back.layers] == [x.op for x in graph.layers] and back.reads == graph.reads
    assert export_tflite(back) == data
    x = _inputs(graph)
    y = run(graph, x)
    assert y.dtype == graph.output.np_dtype and y.shape == (len(x), *graph.output.shape)
    np.testing.assert_array_equal(run(back, x), y)


@pytest.mark.parametrize("name", NAMES)
def test_the_float32_flag_says_whether_a_float32_graph_may_hold_the_op(name):
    op = ops.BY_NAME[name]
    if not op.float32:
        with pytest.raises(IRError, match=f"{name} has no float32 kernel"):
            _as_float32(EXAMPLES[name]())
        return
    graph = _as_float32(EXAMPLES[name]())
    back = import_tflite(export_tflite(graph))
    assert back.dtype == "float32"
    x = _inputs(graph)
    y = run(graph, x)
    assert y.dtype == np.float32 and np.isfinite(y).all()
    np.testing.assert_array_equal(run(back, x), y)


@pytest.mark.parametrize("name", NAMES)
def test_macs_count_every_weight_once_per_output_pixel(name):
    graph = EXAMPLES[name]()
    layer = graph.layers[-1]
    if isinstance(layer, Conv2D | DepthwiseConv2D):
        oh, ow, oc = layer.output.shape
        per_pixel = layer.weights.shape[1] * layer.weights.shape[2] * (graph.input.shape[2] if isinstance(
            layer, Conv2D) else 1)
        want = oh * ow * oc * per_pixel
    elif isinstance(layer, FullyConnected):
        want = graph.input.size * layer.output.size
    elif isinstance(layer, UnidirectionalSequenceLSTM):  # 4 gates x (input + recurrent) per step
        steps, units = layer.output.shape
        want = steps * 4 * units * (graph.input.shape[1] + units)
    elif isinstance(layer, SVDF):  # the feature weights once, the time weights once
        want = layer.weights_feature.size + layer.weights_time.size
    else:
        want = 0
    assert graph.layer_stats()[-1]["macs"] == want
    assert graph.totals()["macs"] == sum(ops.op_of(x).macs(x, graph.inputs_of(i)) for i, x in enumerate(graph.layers))


def test_the_importer_names_exactly_the_registered_builtins_when_it_refuses_one():
    """A .tflite with an operator no op registered is refused naming it and listing the registry."""
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(export_tflite(_logistic()), 0))
    model.operatorCodes[0].builtinCode = model.operatorCodes[0].deprecatedBuiltinCode = fb.BuiltinOperator.TANH
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(TFLiteError) as err:
        import_tflite(bytes(builder.Output()))
    message = str(err.value)
    assert message.startswith("operator 0 (TANH): unsupported operator TANH; powerprune supports ")
    listed = message.split("supports ")[1].split(" (")[0].split(", ")
    assert listed == [OP_NAMES[b.code] for op in ops.OPS for b in op.builtins] == list(ops.BY_NAME)


def test_an_unregistered_layer_type_is_one_clear_error():
    @dataclass(eq=False)
    class Stray:
        output: TensorInfo
        op: str = field(default="STRAY", init=False)

    with pytest.raises(IRError, match="^Stray is not a registered op$"):
        Graph(HWC, [Stray(HWC)])


def test_registering_an_op_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        ops.register(ops.BY_NAME["LOGISTIC"])


@dataclass(eq=False)
class _Sum:
    """A test-only variadic op: the elementwise int8 sum of any number of same-shaped tensors."""

    output: TensorInfo
    op: str = field(default="SUM_N", init=False)


@pytest.fixture
def variadic_op():
    """Registers ``_Sum`` (arity "n") for one test, then restores the registry as it was."""
    tables = (REGISTRY.ops, REGISTRY.by_class, REGISTRY.by_name, REGISTRY.by_builtin)
    saved = [table.copy() for table in tables]

    def check(layer, inputs, site: Site) -> None:
        if any(t.shape != layer.output.shape for t in inputs):
            raise site.error("shapes differ")

    def run_sum(layer, args, inputs):
        return np.clip(np.sum([a.astype(np.int64) for a in args], axis=0), -128, 127).astype(np.int8)

    op = Op(_Sum, (Builtin(-1, None, 1),), arity="n", weighted=False, check=check, run=run_sum, run_f32=None,
            macs=no_macs, export=lambda *a: None, import_=lambda *a: None)
    REGISTRY.register(op, ("SUM_N",))
    yield op
    for table, before in zip(tables, saved, strict=True):  # in place: ``ops.BY_NAME`` etc. are these objects
        table.clear()
        if isinstance(table, list):
            table.extend(before)
        else:
            table.update(before)


def test_the_wiring_check_lets_a_variadic_op_read_one_or_more_tensors(variadic_op):
    three = Graph(HWC, [Reshape(HWC), Reshape(HWC), _Sum(HWC)], reads=[(0,), (1,), (0, 1, 2)])
    x = _inputs(three)
    np.testing.assert_array_equal(run(three, x), np.clip(3 * x.astype(np.int64), -128, 127))
    Graph(HWC, [_Sum(HWC)], reads=[(0,)])
    with pytest.raises(IRError, match=r"layer 0 \(SUM_N\): reads 0 tensor\(s\) \[\], it takes one or more"):
        Graph(HWC, [_Sum(HWC)], reads=[()])
