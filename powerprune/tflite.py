"""The .tflite boundary: IR <-> TFLite flatbuffer, through the schema bindings shipped with tflite-micro.

Export writes what the official converter writes for an int8 model (int8 input and output, no
QUANTIZE/DEQUANTIZE, per-channel conv weights), so TFLM runs it unchanged; a float32 graph becomes the
plain float model the converter writes without quantization (what the paper deployed). Import accepts
such models from any tool (Keras + TFLite converter, tfmot) as long as they are a chain of supported ops.
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
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Graph,
    IRError,
    Layer,
    Pool2D,
    Reshape,
    Softmax,
    TensorInfo,
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
        if info.dtype == "float32":
            return self.tensor(name, (1,) + info.shape, fb.TensorType.FLOAT32)
        return self.tensor(name, (1,) + info.shape, fb.TensorType.INT8, scale=np.array([info.scale]),
                           zero_point=np.array([info.zero_point]))

    def op(self, code: int, inputs: list[int], outputs: list[int], opt_type: int, options: object) -> None:
        o = fb.OperatorT()
        o.opcodeIndex = self.opcodes.setdefault(code, len(self.opcodes))
        o.inputs, o.outputs = inputs, outputs
        o.builtinOptionsType, o.builtinOptions = opt_type, options
        self.operators.append(o)


def _weighted_inputs(w: _Writer, i: int, layer: Conv2D | DepthwiseConv2D | FullyConnected,
                     inp: TensorInfo, axis: int) -> tuple[int, int]:
    if layer.output.dtype == "float32":
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
    cur = w.activation("input", graph.input)
    graph_input = cur
    for i, layer, inp in graph.steps():
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
            shape_t = w.tensor(f"layer{i}/shape", new_shape.shape, fb.TensorType.INT32, new_shape)
            opt = fb.ReshapeOptionsT()
            opt.newShape = [int(v) for v in new_shape]
            w.op(fb.BuiltinOperator.RESHAPE, [cur, shape_t], [out], fb.BuiltinOptions.ReshapeOptions, opt)
        elif isinstance(layer, Softmax):
            opt = fb.SoftmaxOptionsT()
            opt.beta = float(layer.beta)
            w.op(fb.BuiltinOperator.SOFTMAX, [cur], [out], fb.BuiltinOptions.SoftmaxOptions, opt)
        else:  # pragma: no cover - Graph.validate admits only the types above
            raise IRError(f"cannot export {type(layer).__name__}")
        cur = out

    sub = fb.SubGraphT()
    sub.tensors, sub.operators = w.tensors, w.operators
    sub.inputs, sub.outputs = [graph_input], [cur]
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
    fb.BuiltinOperator.SOFTMAX: (fb.BuiltinOptions.SoftmaxOptions, 1),
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


def _info(t: fb.TensorT, label: str, where: str) -> TensorInfo:
    """An int8 activation with per-tensor quantization, or a float32 activation."""
    shape = tuple(int(d) for d in t.shape)
    if t.type == fb.TensorType.FLOAT32:
        return TensorInfo.float32(shape[1:] if len(shape) > 1 else shape)
    if t.type != fb.TensorType.INT8:
        raise TFLiteError(f"{where}: {label} is {_TYPE_NAMES.get(t.type, t.type)}, only INT8 and FLOAT32 models "
                          "are supported (convert with full-integer quantization and int8 in/out, or not at all)")
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


def _layer(g: _Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Layer:
    """One supported operator as an IR layer; its options are present (checked by the caller)."""
    opt = op.builtinOptions
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
    if code == fb.BuiltinOperator.SOFTMAX:
        if out.dtype != "float32":
            raise TFLiteError(f"{where}: an {out.dtype} SOFTMAX is not supported; powerprune runs SOFTMAX in "
                              "float32 models")
        return Softmax(float(opt.beta), out)
    return Reshape(out)


def _check_multipliers(graph: Graph) -> None:
    """Scales that are each valid can still combine into a requantization multiplier no int32
    kernel can apply (input x weight / output >= 2^31)."""
    for i, layer, inp in graph.steps():
        if isinstance(layer, WEIGHTED) and layer.output.dtype == "int8":
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
    graph_input = _info(*g.tensor(inputs[0], "", "model input"), "model input")
    current = inputs[0]
    layers: list[Layer] = []
    for index, op in enumerate(g.sub.operators or []):
        code = g.opcode(op, index)
        opname = _OP_NAMES.get(code, f"#{code}")
        where = f"operator {index} ({opname})"
        if code not in _SUPPORTED:  # before the graph shape: name what is unsupported
            raise TFLiteError(f"{where}: unsupported operator {opname}; powerprune supports {_SUPPORTED_NAMES}")
        options, min_inputs = _SUPPORTED[code]
        op_inputs = [] if op.inputs is None else [int(i) for i in op.inputs]
        op_outputs = [] if op.outputs is None else [int(i) for i in op.outputs]
        if len(op_inputs) < min_inputs or len(op_outputs) != 1:
            raise TFLiteError(f"{where}: needs at least {min_inputs} input(s) and one output, has "
                              f"{len(op_inputs)} and {len(op_outputs)}")
        if options is not None and (op.builtinOptionsType != options or op.builtinOptions is None):
            raise TFLiteError(f"{where}: its builtin options are missing or of the wrong type")
        op.inputs, op.outputs = op_inputs, op_outputs
        if op_inputs[0] != current:
            raise TFLiteError(f"{where}: the graph is not a simple chain (input is tensor {op_inputs[0]}, "
                              f"expected the previous output {current})")
        out = _info(*g.tensor(op_outputs[0], "output", where), where)
        layers.append(_layer(g, code, op, out, where))
        current = op_outputs[0]
    if current != outputs[0]:
        raise TFLiteError("the model output is not the last operator's output")
    try:
        graph = Graph(graph_input, layers, name)
    except IRError as exc:
        raise TFLiteError(f"inconsistent model: {exc}") from exc
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
