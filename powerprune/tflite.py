"""The .tflite boundary: IR <-> TFLite flatbuffer, through the schema bindings shipped with tflite-micro.

Export writes what the official converter writes for an int8 model (per-channel conv weights; int8
input and output, or float32 ones behind a QUANTIZE / before a DEQUANTIZE when the graph has a float
boundary), so TFLM runs it unchanged; a float32 graph becomes the plain float model the converter
writes without quantization (what the paper deployed). Import accepts such models from any tool (Keras
+ TFLite converter, tfmot) made of supported ops, wired as any DAG whose operators are stored in
execution order (residual ADDs included; float32 models are chains), with one input and one output,
and refuses, naming operator and tensor, what TFLM's kernels would refuse at Prepare.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from .fixedpoint import quantize_multiplier, real_multiplier
from .ir import (
    WEIGHTED,
    Activation,
    Add,
    Conv2D,
    DepthwiseConv2D,
    Dequantize,
    FullyConnected,
    Graph,
    IRError,
    Layer,
    Logistic,
    Mean,
    Pad,
    Pool2D,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
    arity,
)

_ACT_NAME = {fb.ActivationFunctionType.NONE: "NONE", fb.ActivationFunctionType.RELU: "RELU",
             fb.ActivationFunctionType.RELU6: "RELU6"}
_ACT_CODE = {v: k for k, v in _ACT_NAME.items()}
_PAD_NAME = {fb.Padding.SAME: "SAME", fb.Padding.VALID: "VALID"}
_PAD_CODE = {v: k for k, v in _PAD_NAME.items()}
_OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
_TYPE_NAMES = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}


class TFLiteError(ValueError):
    """A .tflite file that is corrupt or uses ops/types powerprune does not support."""


# ---------------------------------------------------------------------------------------------
# export


class _Writer:
    """Accumulates tensors, buffers and operators of one subgraph."""

    def __init__(self) -> None:
        self.buffers: list[fb.BufferT] = [fb.BufferT()]  # buffer 0 is the conventional empty one
        self.tensors: list[fb.TensorT] = []
        self.operators: list[fb.OperatorT] = []
        self.opcodes: dict[int, int] = {}

    def tensor(self, name: str, shape: tuple[int, ...], ttype: int, data: np.ndarray | None = None,
               scale: np.ndarray | None = None, zero_point: np.ndarray | None = None, axis: int = 0) -> int:
        t = fb.TensorT()
        t.name, t.shape, t.type = name, list(shape), ttype
        t.buffer = 0
        if data is not None:
            b = fb.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        if scale is not None:
            q = fb.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scale)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(zero_point)]
            q.quantizedDimension = axis
            t.quantization = q
        self.tensors.append(t)
        return len(self.tensors) - 1

    def activation(self, name: str, info: TensorInfo) -> int:
        if info.is_float:  # a float boundary tensor carries no quantization
            return self.tensor(name, (1,) + info.shape, fb.TensorType.FLOAT32)
        return self.tensor(name, (1,) + info.shape, fb.TensorType.INT8, scale=np.array([info.scale]),
                           zero_point=np.array([info.zero_point]))

    def int32_constant(self, name: str, values: np.ndarray) -> int:
        values = np.asarray(values, "<i4")
        return self.tensor(name, values.shape, fb.TensorType.INT32, values)

    def op(self, code: int, inputs: list[int], outputs: list[int], opt_type: int, options: object) -> None:
        o = fb.OperatorT()
        o.opcodeIndex = self.opcodes.setdefault(code, len(self.opcodes))
        o.inputs, o.outputs = inputs, outputs
        o.builtinOptionsType, o.builtinOptions = opt_type, options
        self.operators.append(o)


def _weighted_inputs(w: _Writer, i: int, layer: Conv2D | DepthwiseConv2D | FullyConnected,
                     inp: TensorInfo, axis: int) -> tuple[int, int]:
    if layer.output.is_float:  # a float32 graph: plain float weights and bias, no quantization
        weights = w.tensor(f"layer{i}/weights", layer.weights.shape, fb.TensorType.FLOAT32,
                           layer.weights.astype("<f4"))
        bias = w.tensor(f"layer{i}/bias", layer.bias.shape, fb.TensorType.FLOAT32, layer.bias.astype("<f4"))
        return weights, bias
    scales = layer.weight_scales.astype(np.float32)
    weights = w.tensor(f"layer{i}/weights", layer.weights.shape, fb.TensorType.INT8, layer.weights,
                       scales, np.zeros(len(scales), np.int64), axis)
    bias_scales = (np.float64(np.float32(inp.scale)) * scales.astype(np.float64))
    bias_scales = np.broadcast_to(bias_scales, layer.bias.shape)
    bias = w.tensor(f"layer{i}/bias", layer.bias.shape, fb.TensorType.INT32, layer.bias.astype("<i4"),
                    bias_scales, np.zeros(len(bias_scales), np.int64), 0)
    return weights, bias


def export_tflite(graph: Graph) -> bytes:
    """Serialize ``graph`` as a TFLite flatbuffer (schema version 3)."""
    w = _Writer()
    ids = [w.activation("input", graph.input)]  # flatbuffer tensor index of each IR tensor id
    for i, layer, inp in graph.steps():
        cur = ids[graph.reads[i][0]]
        out = w.activation(f"layer{i}/output", layer.output)
        if isinstance(layer, Conv2D | DepthwiseConv2D):
            depthwise = isinstance(layer, DepthwiseConv2D)
            weights, bias = _weighted_inputs(w, i, layer, inp, 3 if depthwise else 0)
            opt = fb.DepthwiseConv2DOptionsT() if depthwise else fb.Conv2DOptionsT()
            opt.padding = _PAD_CODE[layer.padding]
            opt.strideH, opt.strideW = layer.stride
            opt.dilationHFactor = opt.dilationWFactor = 1
            opt.fusedActivationFunction = _ACT_CODE[layer.activation.kind]
            if depthwise:
                opt.depthMultiplier = layer.output.shape[2] // inp.shape[2]
                w.op(fb.BuiltinOperator.DEPTHWISE_CONV_2D, [cur, weights, bias], [out],
                     fb.BuiltinOptions.DepthwiseConv2DOptions, opt)
            else:
                w.op(fb.BuiltinOperator.CONV_2D, [cur, weights, bias], [out], fb.BuiltinOptions.Conv2DOptions, opt)
        elif isinstance(layer, FullyConnected):
            weights, bias = _weighted_inputs(w, i, layer, inp, 0)
            opt = fb.FullyConnectedOptionsT()
            opt.fusedActivationFunction = _ACT_CODE[layer.activation.kind]
            w.op(fb.BuiltinOperator.FULLY_CONNECTED, [cur, weights, bias], [out],
                 fb.BuiltinOptions.FullyConnectedOptions, opt)
        elif isinstance(layer, Pool2D):
            opt = fb.Pool2DOptionsT()
            opt.padding = _PAD_CODE[layer.padding]
            opt.strideH, opt.strideW = layer.stride
            opt.filterHeight, opt.filterWidth = layer.size
            opt.fusedActivationFunction = _ACT_CODE[layer.activation.kind]
            code = fb.BuiltinOperator.MAX_POOL_2D if layer.kind == "MAX" else fb.BuiltinOperator.AVERAGE_POOL_2D
            w.op(code, [cur], [out], fb.BuiltinOptions.Pool2DOptions, opt)
        elif isinstance(layer, Reshape):
            new_shape = np.array((1,) + layer.output.shape, "<i4")
            shape_t = w.int32_constant(f"layer{i}/shape", new_shape)
            opt = fb.ReshapeOptionsT()
            opt.newShape = [int(v) for v in new_shape]
            w.op(fb.BuiltinOperator.RESHAPE, [cur, shape_t], [out], fb.BuiltinOptions.ReshapeOptions, opt)
        elif isinstance(layer, Add):
            opt = fb.AddOptionsT()
            opt.fusedActivationFunction = _ACT_CODE[layer.activation.kind]
            w.op(fb.BuiltinOperator.ADD, [ids[t] for t in graph.reads[i]], [out], fb.BuiltinOptions.AddOptions, opt)
        elif isinstance(layer, Softmax):
            opt = fb.SoftmaxOptionsT()
            opt.beta = float(layer.beta)
            w.op(fb.BuiltinOperator.SOFTMAX, [cur], [out], fb.BuiltinOptions.SoftmaxOptions, opt)
        elif isinstance(layer, Mean):
            axes = w.int32_constant(f"layer{i}/axes", np.array([1, 2]))  # H and W of the NHWC input
            opt = fb.ReducerOptionsT()
            opt.keepDims = bool(layer.keep_dims)
            w.op(fb.BuiltinOperator.MEAN, [cur, axes], [out], fb.BuiltinOptions.ReducerOptions, opt)
        elif isinstance(layer, Pad):
            paddings = w.int32_constant(f"layer{i}/paddings", np.array(((0, 0), *layer.paddings)))  # batch: none
            w.op(fb.BuiltinOperator.PAD, [cur, paddings], [out], fb.BuiltinOptions.PadOptions, fb.PadOptionsT())
        elif isinstance(layer, Logistic | Quantize | Dequantize):
            code = {Logistic: fb.BuiltinOperator.LOGISTIC, Quantize: fb.BuiltinOperator.QUANTIZE,
                    Dequantize: fb.BuiltinOperator.DEQUANTIZE}[type(layer)]
            w.op(code, [cur], [out], fb.BuiltinOptions.NONE, None)
        else:  # pragma: no cover - Graph.validate admits only the types above
            raise IRError(f"cannot export {type(layer).__name__}")
        ids.append(out)

    sub = fb.SubGraphT()
    sub.tensors, sub.operators = w.tensors, w.operators
    sub.inputs, sub.outputs = [ids[0]], [ids[-1]]
    sub.name = "main"
    model = fb.ModelT()
    model.version = 3
    model.description = f"powerprune {graph.dtype} {graph.name}"
    model.subgraphs = [sub]
    model.buffers = w.buffers
    codes = []
    for code, _ in sorted(w.opcodes.items(), key=lambda kv: kv[1]):
        oc = fb.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        codes.append(oc)
    model.operatorCodes = codes
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def save_tflite(graph: Graph, path: str | Path) -> None:
    from .atomic import write_bytes

    write_bytes(path, export_tflite(graph))


# ---------------------------------------------------------------------------------------------
# import

#
# Every field the importer reads is checked where it is read: indices in range, enums known, options
# present, shapes consistent, scales finite, normal and > 0, zero points in int8 range. A damaged or
# hostile file is a TFLiteError naming the operator and tensor, never an IndexError or a model that
# loads and silently computes garbage. The checks are a handful of comparisons per tensor.

_SUPPORTED = {
    # op code: (builtin options type it must carry, or None if optional; minimum number of inputs)
    fb.BuiltinOperator.CONV_2D: (fb.BuiltinOptions.Conv2DOptions, 2),
    fb.BuiltinOperator.DEPTHWISE_CONV_2D: (fb.BuiltinOptions.DepthwiseConv2DOptions, 2),
    fb.BuiltinOperator.FULLY_CONNECTED: (fb.BuiltinOptions.FullyConnectedOptions, 2),
    fb.BuiltinOperator.MAX_POOL_2D: (fb.BuiltinOptions.Pool2DOptions, 1),
    fb.BuiltinOperator.AVERAGE_POOL_2D: (fb.BuiltinOptions.Pool2DOptions, 1),
    fb.BuiltinOperator.RESHAPE: (None, 1),
    fb.BuiltinOperator.ADD: (fb.BuiltinOptions.AddOptions, 2),
    fb.BuiltinOperator.SOFTMAX: (fb.BuiltinOptions.SoftmaxOptions, 1),
    fb.BuiltinOperator.LOGISTIC: (None, 1),
    fb.BuiltinOperator.MEAN: (None, 2),
    fb.BuiltinOperator.PAD: (None, 2),
    fb.BuiltinOperator.QUANTIZE: (None, 1),
    fb.BuiltinOperator.DEQUANTIZE: (None, 1),
}
_SUPPORTED_NAMES = ", ".join(_OP_NAMES[c] for c in _SUPPORTED)
_MIN_SCALE = float(np.finfo(np.float32).tiny)  # smallest normal float32: a denormal scale is damage
_MAX_SHIFT = 31  # a requantization multiplier >= 2^31 would shift int32 accumulators out of range


def _read_model(data: bytes) -> fb.ModelT:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TFLiteError("not a TFLite flatbuffer (missing 'TFL3' identifier)")
    try:
        return fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    except Exception as exc:  # flatbuffers raises assorted errors on truncated data
        raise TFLiteError(f"corrupt .tflite file ({type(exc).__name__}: {exc})") from exc


class _Subgraph:
    """Index-checked access to the one subgraph: every tensor, buffer and opcode the file refers to
    is looked up here, so an index out of range is an error that says who refers to what."""

    def __init__(self, model: fb.ModelT) -> None:
        if not model.subgraphs or len(model.subgraphs) != 1:
            raise TFLiteError("only single-subgraph models are supported")
        self.model, self.sub = model, model.subgraphs[0]
        self.tensors = self.sub.tensors or []
        self.buffers = model.buffers or []
        self.opcodes = model.operatorCodes or []

    def label(self, idx: int, role: str) -> str:
        """"weights (tensor 5 'conv/w')": the role and index always, the name when the file has one."""
        name = self.tensors[idx].name
        name = name.decode(errors="replace") if isinstance(name, bytes) else name
        tensor = f"tensor {idx}{f' {name!r}' if name else ''}"
        return f"{role} ({tensor})" if role else tensor

    def tensor(self, idx: int, role: str, where: str) -> tuple[fb.TensorT, str]:
        if not 0 <= idx < len(self.tensors):
            raise TFLiteError(f"{where}: {role} is tensor {idx}, but the model has {len(self.tensors)} tensors")
        t = self.tensors[idx]
        label = self.label(idx, role)
        shape = [] if t.shape is None else [int(d) for d in t.shape]
        if not shape or any(d < 1 for d in shape):
            raise TFLiteError(f"{where}: {label} has an invalid shape {shape}")
        return t, label

    def opcode(self, op: fb.OperatorT, index: int) -> int:
        if not 0 <= op.opcodeIndex < len(self.opcodes):
            raise TFLiteError(f"operator {index}: opcode index {op.opcodeIndex} is out of range "
                              f"(the model has {len(self.opcodes)} opcodes)")
        oc = self.opcodes[op.opcodeIndex]
        return max(oc.builtinCode, oc.deprecatedBuiltinCode)

    def constant(self, t: fb.TensorT, label: str, dtype: str, where: str) -> np.ndarray:
        buf = self.buffers[t.buffer] if 0 <= t.buffer < len(self.buffers) else None
        if buf is None or buf.data is None or len(buf.data) == 0:
            raise TFLiteError(f"{where}: {label} should be constant but has no data")
        shape = tuple(int(d) for d in t.shape)
        need = int(np.prod(shape)) * np.dtype(dtype).itemsize
        if len(buf.data) != need:
            raise TFLiteError(f"{where}: {label} of shape {shape} needs {need} bytes, its buffer holds "
                              f"{len(buf.data)}")
        return np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), dtype).reshape(shape)


def _scales(q: fb.QuantizationParametersT | None, label: str, where: str) -> np.ndarray:
    scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float64)
    if scales.size == 0:
        raise TFLiteError(f"{where}: {label} has no quantization scale")
    bad = scales[~(np.isfinite(scales) & (scales >= _MIN_SCALE))]
    if bad.size:
        raise TFLiteError(f"{where}: {label} has an invalid quantization scale {bad[0]:g}; scales must be "
                          "finite, normal float32 numbers > 0")
    return scales


def _zero_points(q: fb.QuantizationParametersT, n: int, label: str, where: str) -> np.ndarray:
    zps = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * n, np.int64)
    if zps.size != n:
        raise TFLiteError(f"{where}: {label} has {n} scales but {zps.size} zero points")
    if zps.size and (zps.min() < -128 or zps.max() > 127):
        raise TFLiteError(f"{where}: {label} has zero point {zps[(zps < -128) | (zps > 127)][0]}, outside int8 "
                          "[-128, 127]")
    return zps


def _info(t: fb.TensorT, label: str, where: str, float_ok: bool = False) -> TensorInfo:
    """An int8 activation with per-tensor quantization, or (``float_ok``: any tensor of a float32 model;
    in an int8 model the model input, or what a DEQUANTIZE writes) a float32 tensor."""
    shape = tuple(int(d) for d in t.shape)
    if float_ok and t.type == fb.TensorType.FLOAT32:
        return TensorInfo.float32(shape[1:] if len(shape) > 1 else shape)
    if t.type != fb.TensorType.INT8:
        raise TFLiteError(f"{where}: {label} is {_TYPE_NAMES.get(t.type, t.type)}; powerprune runs full-integer "
                          "int8 models (float32 only as the model input behind a QUANTIZE or as its output after a "
                          "DEQUANTIZE) and float32 models (float32 throughout)")
    scales = _scales(t.quantization, label, where)
    if scales.size != 1:
        raise TFLiteError(f"{where}: {label} needs per-tensor quantization (one scale), has {scales.size}")
    zp = _zero_points(t.quantization, 1, label, where)
    return TensorInfo(shape[1:] if len(shape) > 1 else shape, float(np.float32(scales[0])), int(zp[0]))


def _weights(g: _Subgraph, op: fb.OperatorT, ndim: int, channel_axis: int, where: str,
             dtype: str = "int8") -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights of rank ``ndim`` with one scale, or one per output channel; float32
    weights (of a float32 model) have no scales."""
    t, label = g.tensor(op.inputs[1], "weights", where)
    if dtype == "float32":
        if t.type != fb.TensorType.FLOAT32:
            raise TFLiteError(f"{where}: {label} are {_TYPE_NAMES.get(t.type, t.type)} in a float32 model, expected "
                              "FLOAT32 (hybrid models with quantized weights are not supported)")
        if len(t.shape) != ndim:
            raise TFLiteError(f"{where}: {label} must be {ndim}-D, got shape {tuple(t.shape)}")
        data = g.constant(t, label, "<f4", where).astype(np.float32)
        if not np.isfinite(data).all():
            raise TFLiteError(f"{where}: {label} contain NaN or infinity")
        return data, np.zeros(0, np.float32)
    if t.type != fb.TensorType.INT8:
        raise TFLiteError(f"{where}: {label} are {_TYPE_NAMES.get(t.type, t.type)}, expected INT8")
    if len(t.shape) != ndim:
        raise TFLiteError(f"{where}: {label} must be {ndim}-D, got shape {tuple(t.shape)}")
    scales = _scales(t.quantization, label, where)
    if (_zero_points(t.quantization, scales.size, label, where) != 0).any():
        raise TFLiteError(f"{where}: {label} must be symmetrically quantized (zero point 0)")
    channels = int(t.shape[channel_axis])
    if scales.size not in (1, channels):
        raise TFLiteError(f"{where}: {label} has {scales.size} scales for {channels} output channels")
    return g.constant(t, label, "i1", where), scales.astype(np.float32)


def _bias(g: _Subgraph, op: fb.OperatorT, channels: int, where: str, dtype: str = "int8") -> np.ndarray:
    """int32 bias of an int8 layer, float32 bias of a float32 one; zeros when the operator has none."""
    want, fmt, np_type = ((fb.TensorType.FLOAT32, "<f4", np.float32) if dtype == "float32"
                          else (fb.TensorType.INT32, "<i4", np.int32))
    idx = op.inputs[2] if len(op.inputs) > 2 else -1
    if idx < 0:
        return np.zeros(channels, np_type)
    t, label = g.tensor(idx, "bias", where)
    if t.type != want:
        raise TFLiteError(f"{where}: {label} is {_TYPE_NAMES.get(t.type, t.type)}, expected {_TYPE_NAMES[want]}")
    if tuple(t.shape) != (channels,):
        raise TFLiteError(f"{where}: {label} has shape {tuple(t.shape)}, expected ({channels},)")
    data = g.constant(t, label, fmt, where).astype(np_type)
    if dtype == "float32" and not np.isfinite(data).all():
        raise TFLiteError(f"{where}: {label} contains NaN or infinity")
    return data


def _geometry(opt, where: str, window: tuple[int, int] | None = None) -> tuple[tuple[int, int], str]:
    """Stride and padding of a conv or pool: a stride or window of 0 would divide by zero later."""
    if min(opt.strideH, opt.strideW) < 1 or (window is not None and min(window) < 1):
        raise TFLiteError(f"{where}: stride {(opt.strideH, opt.strideW)}"
                          + (f" and window {window}" if window else "") + " must be >= 1")
    if opt.padding not in _PAD_NAME:
        raise TFLiteError(f"{where}: unknown padding {opt.padding}")
    return (int(opt.strideH), int(opt.strideW)), _PAD_NAME[opt.padding]


def _int32_constant(g: _Subgraph, op: fb.OperatorT, index: int, role: str, where: str) -> np.ndarray:
    """A constant int32 input tensor of ``op`` (MEAN's axes, PAD's paddings): TFLM reads these at Prepare."""
    t, label = g.tensor(op.inputs[index], role, where)
    if t.type != fb.TensorType.INT32:
        raise TFLiteError(f"{where}: {label} is {_TYPE_NAMES.get(t.type, t.type)}, expected INT32")
    return g.constant(t, label, "<i4", where).astype(np.int64)


def _mean_axes(g: _Subgraph, op: fb.OperatorT, where: str) -> None:
    """MEAN must reduce exactly H and W of a 4-D NHWC input (axes 1 and 2, or -3 and -2)."""
    rank = len(g.tensors[op.inputs[0]].shape)
    axes = _int32_constant(g, op, 1, "axes", where).ravel()
    resolved = {int(a) + rank if a < 0 else int(a) for a in axes}
    if rank != 4 or resolved != {1, 2}:
        raise TFLiteError(f"{where}: {g.label(op.inputs[1], 'axes')} are {axes.tolist()} on a {rank}-D input; "
                          "powerprune supports MEAN over height and width of an NHWC tensor (axes [1, 2])")


def _paddings(g: _Subgraph, op: fb.OperatorT, where: str) -> tuple[tuple[int, int], ...]:
    """PAD's (before, after) per axis, batch left out (it must not be padded)."""
    if len(op.inputs) > 2:
        raise TFLiteError(f"{where}: a constant_values input is not supported; PAD pads with the zero point")
    rank = len(g.tensors[op.inputs[0]].shape)
    pads = _int32_constant(g, op, 1, "paddings", where)
    label = g.label(op.inputs[1], "paddings")
    if pads.shape != (rank, 2) or rank > 4:
        raise TFLiteError(f"{where}: {label} have shape {pads.shape}; TFLM needs (rank, 2) for an input of rank "
                          f"{rank} <= 4")
    if pads[0].any() and rank > 1:
        raise TFLiteError(f"{where}: {label} pad the batch axis ({pads[0].tolist()}), which powerprune does not "
                          "support")
    rows = pads[1:] if rank > 1 else pads
    return tuple((int(a), int(b)) for a, b in rows)


def _layer(g: _Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Layer:
    """One supported operator as an IR layer; its options are present (checked by the caller)."""
    opt = op.builtinOptions
    if code == fb.BuiltinOperator.SOFTMAX:
        return Softmax(float(np.float32(opt.beta)), out)
    if code == fb.BuiltinOperator.LOGISTIC:
        return Logistic(out)
    if code == fb.BuiltinOperator.MEAN:
        _mean_axes(g, op, where)
        if op.builtinOptions is not None and op.builtinOptionsType != fb.BuiltinOptions.ReducerOptions:
            raise TFLiteError(f"{where}: its builtin options are of the wrong type")
        return Mean(bool(opt.keepDims) if opt is not None else False, out)
    if code == fb.BuiltinOperator.PAD:
        return Pad(_paddings(g, op, where), out)
    if code == fb.BuiltinOperator.QUANTIZE:
        return Quantize(out)
    if code == fb.BuiltinOperator.DEQUANTIZE:
        return Dequantize(out)
    if code in (fb.BuiltinOperator.CONV_2D, fb.BuiltinOperator.DEPTHWISE_CONV_2D):
        if opt.dilationHFactor not in (0, 1) or opt.dilationWFactor not in (0, 1):
            raise TFLiteError(f"{where}: dilation is not supported")
        depthwise = code == fb.BuiltinOperator.DEPTHWISE_CONV_2D
        wq, scales = _weights(g, op, 4, 3 if depthwise else 0, where, out.dtype)
        if depthwise and wq.shape[0] != 1:
            raise TFLiteError(f"{where}: depthwise weights must have shape (1, KH, KW, C), got {wq.shape}")
        channels = wq.shape[3] if depthwise else wq.shape[0]
        bias = _bias(g, op, channels, where, out.dtype)
        act = Activation.for_output(_act(opt.fusedActivationFunction, where), out)
        stride, padding = _geometry(opt, where)
        cls = DepthwiseConv2D if depthwise else Conv2D
        if scales.size:  # int8: one scale per output channel
            scales = np.broadcast_to(scales, (channels,))
        return cls(wq.copy(), bias, scales.copy(), stride, padding, act, out)
    if code == fb.BuiltinOperator.FULLY_CONNECTED:
        wq, scales = _weights(g, op, 2, 0, where, out.dtype)
        bias = _bias(g, op, wq.shape[0], where, out.dtype)
        act = Activation.for_output(_act(opt.fusedActivationFunction, where), out)
        return FullyConnected(wq.copy(), bias, scales.copy(), act,
                              TensorInfo((wq.shape[0],), out.scale, out.zero_point, out.dtype))
    if code in (fb.BuiltinOperator.MAX_POOL_2D, fb.BuiltinOperator.AVERAGE_POOL_2D):
        kind = "MAX" if code == fb.BuiltinOperator.MAX_POOL_2D else "AVERAGE"
        act = Activation.for_output(_act(opt.fusedActivationFunction, where), out)
        window = (int(opt.filterHeight), int(opt.filterWidth))
        stride, padding = _geometry(opt, where, window)
        return Pool2D(kind, window, stride, padding, act, out)
    if code == fb.BuiltinOperator.ADD:
        (a, la), (b, lb) = (g.tensor(t, f"input {k + 1}", where) for k, t in enumerate(op.inputs[:2]))
        sa, sb = ([int(d) for d in t.shape] for t in (a, b))
        if sa != sb:
            raise TFLiteError(f"{where}: {la} has shape {sa} and {lb} {sb}; only ADD of equal shapes is "
                              "supported (no broadcasting)")
        return Add(Activation.for_output(_act(opt.fusedActivationFunction, where), out), out)
    return Reshape(out)


def _check_multipliers(graph: Graph) -> None:
    """Scales that are each valid can still combine into a requantization multiplier no int32
    kernel can apply (input x weight / output >= 2^31)."""
    for i, layer, inp in graph.steps():
        if isinstance(layer, WEIGHTED) and not layer.output.is_float:
            worst = max(real_multiplier(inp.scale, float(s), layer.output.scale) for s in layer.weight_scales)
            if quantize_multiplier(worst)[1] > _MAX_SHIFT:
                raise TFLiteError(f"operator {i} ({layer.op}): input x weight / output scale = {worst:g} is too "
                                  "large for int8 requantization; the quantization parameters are damaged")


def import_tflite(data: bytes, name: str = "model") -> Graph:
    """A .tflite (bytes) made by any int8 or float32 pipeline -> IR. Unsupported ops name the op and its index;
    a damaged field names the operator and tensor."""
    g = _Subgraph(_read_model(data))
    inputs = [] if g.sub.inputs is None else [int(i) for i in g.sub.inputs]
    outputs = [] if g.sub.outputs is None else [int(i) for i in g.sub.outputs]
    if len(inputs) != 1 or len(outputs) != 1:
        raise TFLiteError("only models with one input and one output are supported")
    graph_input = _info(*g.tensor(inputs[0], "", "model input"), "model input", float_ok=True)
    operators = g.sub.operators or []
    codes = [g.opcode(op, index) for index, op in enumerate(operators)]
    # a float input that no QUANTIZE converts makes a float32 model: every tensor may be float32 (and
    # Graph.validate then insists that every one is)
    float_model = graph_input.is_float and (not codes or codes[0] != fb.BuiltinOperator.QUANTIZE)
    for index, code in enumerate(codes):  # before the graph's shape: name what is unsupported
        if code not in _SUPPORTED:
            opname = _OP_NAMES.get(code, f"#{code}")
            raise TFLiteError(f"operator {index} ({opname}): unsupported operator {opname}; powerprune supports "
                              f"{_SUPPORTED_NAMES} (re-export the model with these ops only)")
    ids = {inputs[0]: 0}  # flatbuffer tensor index -> IR tensor id (0 input, i + 1 output of layer i)
    layers: list[Layer] = []
    reads: list[tuple[int, ...]] = []
    names: list[str] = []  # operator name of each layer, for errors the IR finds
    for index, (op, code) in enumerate(zip(operators, codes, strict=True)):
        opname = _OP_NAMES[code]
        where = f"operator {index} ({opname})"
        options, min_inputs = _SUPPORTED[code]
        op_inputs = [] if op.inputs is None else [int(i) for i in op.inputs]
        op_outputs = [] if op.outputs is None else [int(i) for i in op.outputs]
        if len(op_inputs) < min_inputs or len(op_outputs) != 1:
            raise TFLiteError(f"{where}: needs at least {min_inputs} input(s) and one output, has "
                              f"{len(op_inputs)} and {len(op_outputs)}")
        if options is not None and (op.builtinOptionsType != options or op.builtinOptions is None):
            raise TFLiteError(f"{where}: its builtin options are missing or of the wrong type")
        op.inputs, op.outputs = op_inputs, op_outputs
        out = _info(*g.tensor(op_outputs[0], "output", where), where,
                    float_ok=float_model or code == fb.BuiltinOperator.DEQUANTIZE)
        if op_outputs[0] in ids:
            raise TFLiteError(f"{where}: {g.label(op_outputs[0], 'output')} is written a second time")
        layer = _layer(g, code, op, out, where)
        n = arity(layer)  # the activations it reads come first; further inputs are weights, bias, shape
        for k, t in enumerate(op_inputs[:n]):
            if t not in ids:
                _, label = g.tensor(t, f"input {k + 1}" if n > 1 else "input", where)
                raise TFLiteError(f"{where}: {label} is neither the model input nor the output of an earlier "
                                  "operator; constant operands and operators stored out of execution order are "
                                  "not supported")
        layers.append(layer)
        names.append(opname)
        reads.append(tuple(ids[t] for t in op_inputs[:n]))
        ids[op_outputs[0]] = len(layers)
    if ids.get(outputs[0]) != len(layers):
        raise TFLiteError("the model output is not the last operator's output")
    try:
        graph = Graph(graph_input, layers, name, reads)
    except IRError as exc:
        if exc.layer is None:
            raise TFLiteError(f"inconsistent model: {exc}") from exc
        # one tensor of one operator is at fault (e.g. a SOFTMAX output TFLM cannot produce): name both
        op = g.sub.operators[exc.layer]
        tensor = op.inputs[0] if exc.tensor == "input" else op.outputs[0]
        raise TFLiteError(f"operator {exc.layer} ({names[exc.layer]}): {g.label(tensor, exc.tensor)} {exc.detail}"
                          ) from exc
    _check_multipliers(graph)
    return graph


def _act(code: int, where: str) -> str:
    if code not in _ACT_NAME:
        raise TFLiteError(f"{where}: fused activation {code} is not supported")
    return _ACT_NAME[code]


def load_tflite(path: str | Path) -> Graph:
    path = Path(path)
    if not path.is_file():
        raise TFLiteError(f".tflite file {path} not found")
    return import_tflite(path.read_bytes(), name=path.stem)
