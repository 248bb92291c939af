"""SVDF: a rank-``rank`` singular value decomposition filter over time, as TFLM's integer kernel computes it.

Each inference is one time step. The layer keeps a memory of the last M feature activations of each of
its F = units x rank filters (the activation state, a variable tensor: int8 with a zero point, or int16).
Per inference, with x the int8 input:

    state <- state shifted one step to the past            (the oldest activation of each filter drops out)
    state[f, M - 1] = clamp(rescale1(W_feature[f] . (x - x zero point)) + state zero point)
    s[f] = W_time[f] . (state[f] - state zero point)       (int32)
    y[u] = clamp(rescale2(bias[u] + sum of s over the u-th group of ``rank`` filters) + output zero point)

rescale1 is input scale x feature weight scale / state scale, rescale2 state scale x time weight scale /
output scale; TFLM forms both in float32 (its Prepare multiplies and divides the float scales before
widening), unlike the other weighted ops. The integer kernel applies no fused activation (the clamp is
the int8 range); the option is kept for the round trip. The state persists across inferences until
TFLM's interpreter is reset (int8 state to its zero point, int16 to 0), which ``reset_state`` gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier
from .base import INT_RANGES, Builtin, Op, Site, TensorInfo
from .tflite_io import (
    ACT_CODE,
    TYPE_NAMES,
    Subgraph,
    TFLiteError,
    Writer,
    activation_kind,
    quant_scales,
    quant_zero_points,
)

BIAS_SCALE_TOLERANCE = 1e-5  # TFLM's Prepare: |bias scale - state scale x time weight scale| below this
STATE_TYPES = {fb.TensorType.INT8: "int8", fb.TensorType.INT16: "int16"}
STATE_CODES = {v: k for k, v in STATE_TYPES.items()}


@dataclass(eq=False)
class SVDF:
    """One time step of a rank-``rank`` SVDF: (features,) -> (units,), with a memory of ``memory`` steps
    per filter in the activation state (``state``: its dtype, scale and zero point; shape (filters x
    memory,))."""

    weights_feature: np.ndarray   # int8 (F, I), F = units x rank
    weights_time: np.ndarray      # int8 or int16 (F, M), the state's dtype
    bias: np.ndarray              # int32 (units,)
    feature_scale: float
    time_scale: float
    rank: int
    fused_activation: str         # the file's (NONE, RELU, RELU6); the integer kernel does not apply it
    state: TensorInfo
    output: TensorInfo
    op: str = field(default="SVDF", init=False)

    @property
    def filters(self) -> int:
        return self.weights_feature.shape[0]

    @property
    def memory(self) -> int:
        return self.weights_time.shape[1]


def check(layer: SVDF, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    if site.float_graph:
        raise site.error("a float32 SVDF is not supported; quantize it to int8")
    if len(inp.shape) != 1 or len(out.shape) != 1:
        raise site.error(f"expects (features,) -> (units,), got {inp.shape} -> {out.shape}")
    if layer.rank < 1 or layer.weights_feature.ndim != 2 or layer.weights_feature.shape[0] % layer.rank:
        raise site.error(f"rank {layer.rank} must be >= 1 and divide the {layer.weights_feature.shape[0]} filters")
    units = layer.filters // layer.rank
    if layer.weights_feature.shape != (units * layer.rank, inp.size) or out.shape != (units,):
        raise site.error(f"feature weights {layer.weights_feature.shape} do not fit {inp.size} features -> "
                         f"{out.size} units of rank {layer.rank}")
    if layer.weights_time.ndim != 2 or layer.weights_time.shape[0] != layer.filters or layer.memory < 1:
        raise site.error(f"time weights {layer.weights_time.shape}, expected ({layer.filters}, memory)")
    if layer.state.dtype not in ("int8", "int16") or layer.state.shape != (layer.filters * layer.memory,):
        raise site.error(f"activation state {layer.state.dtype} {layer.state.shape}; expected int8 or int16 "
                         f"({layer.filters * layer.memory},)")
    if layer.weights_feature.dtype != np.int8 or layer.weights_time.dtype != layer.state.np_dtype \
            or layer.bias.dtype != np.int32 or layer.bias.shape != (units,):
        raise site.error(f"feature weights must be int8, time weights {layer.state.dtype} (the state's dtype) and "
                         f"bias int32 ({units},)")
    if not all(np.isfinite(s) and s > 0 for s in (layer.feature_scale, layer.time_scale, layer.state.scale)):
        raise site.error("weight and state scales must be finite and > 0")


@dataclass(frozen=True)
class SVDFParams:
    """What TFLM's Prepare derives: the two (multiplier, shift) pairs, formed in float32."""

    feature: tuple[int, int]   # input x feature weight / state scale
    output: tuple[int, int]    # state x time weight / output scale


def _float32_ratio(a: float, b: float, c: float) -> float:
    """a x b / c in float32, one rounding per operation, as C computes it with float operands."""
    return float((np.float32(a) * np.float32(b)) / np.float32(c))


def svdf_parameters(layer: SVDF, inp: TensorInfo) -> SVDFParams:
    return SVDFParams(quantize_multiplier(_float32_ratio(inp.scale, layer.feature_scale, layer.state.scale)),
                      quantize_multiplier(_float32_ratio(layer.state.scale, layer.time_scale, layer.output.scale)))


def reset_state(layer: SVDF) -> list[np.ndarray]:
    """TFLM's ResetVariableTensors: an int8 state at its zero point, an int16 one at 0."""
    fill = layer.state.zero_point if layer.state.dtype == "int8" else 0
    return [np.full(layer.state.shape, fill, layer.state.np_dtype)]


def run_stateful(layer: SVDF, args: list[np.ndarray], inputs: tuple[TensorInfo, ...],
                 state: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    (x,), (inp,) = args, inputs
    p = svdf_parameters(layer, inp)
    n = len(x)
    lo, hi = INT_RANGES[layer.state.dtype]
    zp = layer.state.zero_point
    old = np.asarray(state[0], np.int64).reshape(n, -1)
    # TFLM moves the whole flat buffer one element down; the last slot of each filter's row is then
    # overwritten with the new activation, so each row simply loses its oldest entry
    shifted = np.concatenate([old[:, 1:], old[:, -1:]], axis=1).reshape(n, layer.filters, layer.memory)
    xs = x.reshape(n, -1).astype(np.float64) - inp.zero_point
    dot = (xs @ layer.weights_feature.T.astype(np.float64)).astype(np.int64)
    # the tflite-micro TFLM runs here clamps to the state's range *before* adding the state's zero
    # point and then narrows to the state's type, so an int8 sum beyond [-128, 127] wraps around
    # (later TFLM adds the zero point first; an int16 state has zero point 0, where both agree)
    activation = np.clip(multiply_by_quantized_multiplier(dot, *p.feature), lo, hi) + zp
    shifted[:, :, -1] = (activation - lo) % (hi - lo + 1) + lo
    per_filter = ((shifted - zp) * layer.weights_time.astype(np.int64)).sum(axis=2)
    total = per_filter.reshape(n, -1, layer.rank).sum(axis=2) + layer.bias
    y = np.clip(multiply_by_quantized_multiplier(total, *p.output) + layer.output.zero_point, -128, 127)
    return y.astype(np.int8), [shifted.reshape(n, -1).astype(layer.state.np_dtype)]


def run(layer: SVDF, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """One independent inference per row, each from the reset state (a memory of zero activations)."""
    n = len(args[0])
    return run_stateful(layer, args, inputs, [np.broadcast_to(reset_state(layer)[0], (n, *layer.state.shape))])[0]


def constants(layer: SVDF) -> tuple[np.ndarray, ...]:
    return layer.weights_feature, layer.weights_time, layer.bias


def macs(layer: SVDF, inputs: tuple[TensorInfo, ...]) -> int:
    """Every feature weight and every time weight once."""
    return layer.weights_feature.size + layer.weights_time.size


def export(layer: SVDF, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    """Input, feature weights, time weights, bias (scale state x time weight scale), the state as a
    variable tensor (1, filters x memory)."""
    zero = np.zeros(1, np.int64)
    feature = w.tensor(f"layer{i}/weights_feature", layer.weights_feature.shape, fb.TensorType.INT8,
                       layer.weights_feature, np.array([layer.feature_scale], np.float32), zero)
    code = STATE_CODES[layer.state.dtype]
    time = w.tensor(f"layer{i}/weights_time", layer.weights_time.shape, code,
                    layer.weights_time.astype("i1" if layer.state.dtype == "int8" else "<i2"),
                    np.array([layer.time_scale], np.float32), zero)
    bias_scale = np.float64(np.float32(layer.state.scale)) * np.float64(np.float32(layer.time_scale))
    bias = w.tensor(f"layer{i}/bias", layer.bias.shape, fb.TensorType.INT32, layer.bias.astype("<i4"),
                    np.array([bias_scale]), zero)
    state = w.tensor(f"layer{i}/activation_state", (1, *layer.state.shape), code,
                     scale=np.array([layer.state.scale]), zero_point=np.array([layer.state.zero_point]),
                     variable=True)
    opt = fb.SVDFOptionsT()
    opt.rank = layer.rank
    opt.fusedActivationFunction = ACT_CODE[layer.fused_activation]
    opt.asymmetricQuantizeInputs = False
    w.op(fb.BuiltinOperator.SVDF, [reads[0], feature, time, bias, state], [out], fb.BuiltinOptions.SVDFOptions, opt)


def _matrix(g: Subgraph, op: fb.OperatorT, k: int, types: dict[int, str], role: str,
            where: str) -> tuple[np.ndarray, float, int]:
    t, label = g.tensor(op.inputs[k], role, where)
    if t.type not in types:
        raise TFLiteError(f"{where}: {label} are {TYPE_NAMES.get(t.type, t.type)}, expected "
                          f"{' or '.join(TYPE_NAMES[c] for c in types)}")
    if len(t.shape) != 2:
        raise TFLiteError(f"{where}: {label} must be 2-D, got shape {tuple(t.shape)}")
    scales = quant_scales(t.quantization, label, where)
    if scales.size != 1 or (quant_zero_points(t.quantization, 1, label, where) != 0).any():
        raise TFLiteError(f"{where}: {label} need one scale and zero point 0")
    data = g.constant(t, label, "i1" if t.type == fb.TensorType.INT8 else "<i2", where)
    return data.astype(np.int8 if t.type == fb.TensorType.INT8 else np.int16), float(np.float32(scales[0])), t.type


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> SVDF:
    opt = op.builtinOptions
    if len(op.inputs) != 5:
        raise TFLiteError(f"{where}: has {len(op.inputs)} inputs; TFLM's SVDF takes 5")
    if opt.asymmetricQuantizeInputs:
        raise TFLiteError(f"{where}: a hybrid SVDF (float activations, quantized weights) is not supported")
    if op.inputs[3] < 0:
        raise TFLiteError(f"{where}: an SVDF without bias is not supported (TFLM's integer kernel reads its scale)")
    feature, feature_scale, _ = _matrix(g, op, 1, {fb.TensorType.INT8: "int8"}, "feature weights", where)
    time, time_scale, time_type = _matrix(g, op, 2, STATE_TYPES, "time weights", where)
    t, label = g.tensor(op.inputs[4], "activation state", where)
    if t.type != time_type:
        raise TFLiteError(f"{where}: {label} is {TYPE_NAMES.get(t.type, t.type)}, the time weights "
                          f"{TYPE_NAMES[time_type]}; TFLM needs the same type")
    if not t.isVariable:
        raise TFLiteError(f"{where}: {label} must be a variable tensor (TFLM keeps the SVDF's memory in it)")
    scales = quant_scales(t.quantization, label, where)
    state_zero = quant_zero_points(t.quantization, scales.size, label, where)
    if scales.size != 1:
        raise TFLiteError(f"{where}: {label} needs per-tensor quantization (one scale), has {scales.size}")
    state = TensorInfo((int(np.prod(t.shape)),), float(np.float32(scales[0])), int(state_zero[0]),
                       STATE_TYPES[time_type])
    bt, blabel = g.tensor(op.inputs[3], "bias", where)
    if bt.type != fb.TensorType.INT32 or len(bt.shape) != 1:
        raise TFLiteError(f"{where}: {blabel} is {TYPE_NAMES.get(bt.type, bt.type)} {tuple(bt.shape)}, expected "
                          "INT32 (units,)")
    bias_scale = quant_scales(bt.quantization, blabel, where)[0]
    if abs(float(bias_scale) - float(np.float32(np.float32(state.scale) * np.float32(time_scale)))) \
            >= BIAS_SCALE_TOLERANCE:
        raise TFLiteError(f"{where}: {blabel} has scale {bias_scale:g}, TFLM needs state x time weight scale")
    return SVDF(feature.copy(), time.copy(), g.constant(bt, blabel, "<i4", where).astype(np.int32), feature_scale,
                time_scale, int(opt.rank), activation_kind(opt.fusedActivationFunction, where), state, out)


OP = Op(SVDF, (Builtin(fb.BuiltinOperator.SVDF, fb.BuiltinOptions.SVDFOptions, 5),), arity=1, weighted=False,
        check=check, run=run, run_f32=None, macs=macs, export=export, import_=import_, constants=constants,
        reset_state=reset_state, run_stateful=run_stateful)
