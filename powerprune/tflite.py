"""The .tflite boundary: IR <-> TFLite flatbuffer, through the schema bindings shipped with tflite-micro.

Export writes what the official converter writes for an int8 model (int8 input and output, no
QUANTIZE/DEQUANTIZE, per-channel conv weights), so TFLM runs it unchanged. Import accepts such a
model from any tool (Keras + TFLite converter, tfmot) as long as it is a chain of supported ops.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from .ir import (
    Activation,
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Graph,
    IRError,
    Layer,
    Pool2D,
    Reshape,
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
        else:  # pragma: no cover - Graph.validate admits only the types above
            raise IRError(f"cannot export {type(layer).__name__}")
        cur = out

    sub = fb.SubGraphT()
    sub.tensors, sub.operators = w.tensors, w.operators
    sub.inputs, sub.outputs = [graph_input], [cur]
    sub.name = "main"
    model = fb.ModelT()
    model.version = 3
    model.description = f"powerprune int8 {graph.name}"
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


def _read_model(data: bytes) -> fb.ModelT:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TFLiteError("not a TFLite flatbuffer (missing 'TFL3' identifier)")
    try:
        return fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    except Exception as exc:  # flatbuffers raises assorted errors on truncated data
        raise TFLiteError(f"corrupt .tflite file ({type(exc).__name__}: {exc})") from exc


def _buffer(model: fb.ModelT, t: fb.TensorT, dtype: str) -> np.ndarray:
    buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
    if buf is None or buf.data is None or len(buf.data) == 0:
        raise TFLiteError(f"tensor {t.name!r} should be constant but has no data")
    return np.frombuffer(np.asarray(buf.data, np.uint8).tobytes(), dtype).reshape(t.shape)


def _info(t: fb.TensorT, where: str) -> TensorInfo:
    if t.type != fb.TensorType.INT8:
        raise TFLiteError(f"{where}: activation {t.name!r} is {_TYPE_NAMES.get(t.type, t.type)}, only INT8 "
                          "models are supported (convert with full-integer quantization and int8 in/out)")
    q = t.quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        raise TFLiteError(f"{where}: activation {t.name!r} needs per-tensor quantization")
    shape = tuple(int(d) for d in t.shape)
    return TensorInfo(shape[1:] if len(shape) > 1 else shape, float(np.float32(q.scale[0])), int(q.zeroPoint[0]))


def _weights(model: fb.ModelT, t: fb.TensorT, where: str) -> tuple[np.ndarray, np.ndarray]:
    if t.type != fb.TensorType.INT8:
        raise TFLiteError(f"{where}: weights are {_TYPE_NAMES.get(t.type, t.type)}, expected INT8")
    q = t.quantization
    if q is None or q.scale is None or (q.zeroPoint is not None and any(int(z) != 0 for z in q.zeroPoint)):
        raise TFLiteError(f"{where}: weights must be symmetrically quantized (zero point 0)")
    return _buffer(model, t, "i1"), np.asarray(q.scale, np.float32)


def _bias(model: fb.ModelT, sub: fb.SubGraphT, idx: int, channels: int, where: str) -> np.ndarray:
    if idx < 0:
        return np.zeros(channels, np.int32)
    t = sub.tensors[idx]
    if t.type != fb.TensorType.INT32:
        raise TFLiteError(f"{where}: bias is {_TYPE_NAMES.get(t.type, t.type)}, expected INT32")
    return _buffer(model, t, "<i4").astype(np.int32).reshape(channels)


def import_tflite(data: bytes, name: str = "model") -> Graph:
    """A .tflite (bytes) made by any int8 pipeline -> IR. Unsupported ops name the op and its index."""
    model = _read_model(data)
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise TFLiteError("only single-subgraph models are supported")
    sub = model.subgraphs[0]
    if len(sub.inputs) != 1 or len(sub.outputs) != 1:
        raise TFLiteError("only models with one input and one output are supported")
    graph_input = _info(sub.tensors[sub.inputs[0]], "model input")
    current = sub.inputs[0]
    layers: list[Layer] = []
    for index, op in enumerate(sub.operators or []):
        code = max(model.operatorCodes[op.opcodeIndex].builtinCode,
                   model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode)
        opname = _OP_NAMES.get(code, f"#{code}")
        where = f"operator {index} ({opname})"
        if op.inputs[0] != current:
            raise TFLiteError(f"{where}: the graph is not a simple chain (input is tensor {op.inputs[0]}, "
                              f"expected the previous output {current})")
        out_t = sub.tensors[op.outputs[0]]
        out = _info(out_t, where)
        opt = op.builtinOptions
        if code in (fb.BuiltinOperator.CONV_2D, fb.BuiltinOperator.DEPTHWISE_CONV_2D):
            if opt.dilationHFactor not in (0, 1) or opt.dilationWFactor not in (0, 1):
                raise TFLiteError(f"{where}: dilation is not supported")
            wq, scales = _weights(model, sub.tensors[op.inputs[1]], where)
            depthwise = code == fb.BuiltinOperator.DEPTHWISE_CONV_2D
            channels = wq.shape[3] if depthwise else wq.shape[0]
            bias = _bias(model, sub, op.inputs[2] if len(op.inputs) > 2 else -1, channels, where)
            act = Activation.for_output(_act(opt.fusedActivationFunction, where), out)
            cls = DepthwiseConv2D if depthwise else Conv2D
            layer: Layer = cls(wq.copy(), bias, np.broadcast_to(scales, (channels,)).copy(),
                               (opt.strideH, opt.strideW), _PAD_NAME[opt.padding], act, out)
        elif code == fb.BuiltinOperator.FULLY_CONNECTED:
            wq, scales = _weights(model, sub.tensors[op.inputs[1]], where)
            if wq.ndim != 2:
                raise TFLiteError(f"{where}: weights must be 2-D")
            bias = _bias(model, sub, op.inputs[2] if len(op.inputs) > 2 else -1, wq.shape[0], where)
            act = Activation.for_output(_act(opt.fusedActivationFunction, where), out)
            out = TensorInfo((wq.shape[0],), out.scale, out.zero_point)
            layer = FullyConnected(wq.copy(), bias, scales.copy(), act, out)
        elif code in (fb.BuiltinOperator.MAX_POOL_2D, fb.BuiltinOperator.AVERAGE_POOL_2D):
            kind = "MAX" if code == fb.BuiltinOperator.MAX_POOL_2D else "AVERAGE"
            act = Activation.for_output(_act(opt.fusedActivationFunction, where), out)
            layer = Pool2D(kind, (opt.filterHeight, opt.filterWidth), (opt.strideH, opt.strideW),
                           _PAD_NAME[opt.padding], act, out)
        elif code == fb.BuiltinOperator.RESHAPE:
            layer = Reshape(out)
        else:
            raise TFLiteError(f"{where}: unsupported operator {opname}; powerprune supports CONV_2D, "
                              "DEPTHWISE_CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D, RESHAPE")
        layers.append(layer)
        current = op.outputs[0]
    if current != sub.outputs[0]:
        raise TFLiteError("the model output is not the last operator's output")
    try:
        return Graph(graph_input, layers, name)
    except IRError as exc:
        raise TFLiteError(f"inconsistent model: {exc}") from exc


def _act(code: int, where: str) -> str:
    if code not in _ACT_NAME:
        raise TFLiteError(f"{where}: fused activation {code} is not supported")
    return _ACT_NAME[code]


def load_tflite(path: str | Path) -> Graph:
    path = Path(path)
    if not path.is_file():
        raise TFLiteError(f".tflite file {path} not found")
    return import_tflite(path.read_bytes(), name=path.stem)
