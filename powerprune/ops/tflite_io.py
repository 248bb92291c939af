"""The flatbuffer side of the ops: what every op's .tflite import and export hooks use (the writer of
one subgraph, index-checked access to a file's subgraph, weights, bias, stride and padding, constant
int32 inputs) and ``TFLiteError``. ``powerprune.tflite`` composes these into whole-model import and
export; the checks here are the per-field half of its promise that a damaged file is an error naming
the operator and tensor, never a model that loads and computes garbage.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from .base import Activation, TensorInfo

ACT_NAME = {fb.ActivationFunctionType.NONE: "NONE", fb.ActivationFunctionType.RELU: "RELU",
            fb.ActivationFunctionType.RELU6: "RELU6"}
ACT_CODE = {v: k for k, v in ACT_NAME.items()}
PAD_NAME = {fb.Padding.SAME: "SAME", fb.Padding.VALID: "VALID"}
PAD_CODE = {v: k for k, v in PAD_NAME.items()}
OP_NAMES = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
TYPE_NAMES = {v: k for k, v in vars(fb.TensorType).items() if not k.startswith("_")}
MIN_SCALE = float(np.finfo(np.float32).tiny)  # smallest normal float32: a denormal scale is damage


class TFLiteError(ValueError):
    """A .tflite file that is corrupt or uses ops/types powerprune does not support."""


class Writer:
    """Accumulates tensors, buffers and operators of one subgraph."""

    def __init__(self) -> None:
        self.buffers: list[fb.BufferT] = [fb.BufferT()]  # buffer 0 is the conventional empty one
        self.tensors: list[fb.TensorT] = []
        self.operators: list[fb.OperatorT] = []
        self.opcodes: dict[int, int] = {}

    def tensor(self, name: str, shape: tuple[int, ...], ttype: int, data: np.ndarray | None = None,
               scale: np.ndarray | None = None, zero_point: np.ndarray | None = None, axis: int = 0,
               variable: bool = False) -> int:
        """A tensor (``variable``: state that persists across Invokes, as an LSTM's, with no data)."""
        t = fb.TensorT()
        t.name, t.shape, t.type = name, list(shape), ttype
        t.isVariable = variable
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


def weighted_inputs(w: Writer, i: int, layer: Any, inp: TensorInfo, axis: int) -> tuple[int, int]:
    """The weights and bias tensors of a CONV_2D, DEPTHWISE_CONV_2D or FULLY_CONNECTED: int8 weights with
    per-channel scales along ``axis`` and an int32 bias with scale input x weight scale, or plain
    float32 ones in a float32 graph."""
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


class Subgraph:
    """Index-checked access to the one subgraph: every tensor, buffer and opcode the file refers to
    is looked up here, so an index out of range is an error that says who refers to what."""

    def __init__(self, model: fb.ModelT) -> None:
        if not model.subgraphs or len(model.subgraphs) != 1:
            raise TFLiteError("only single-subgraph models are supported: control flow (a WHILE or IF over "
                              "subgraphs, which the converter writes for a GRU or an RNN it does not fuse into "
                              "UNIDIRECTIONAL_SEQUENCE_LSTM) is not")
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


def quant_scales(q: fb.QuantizationParametersT | None, label: str, where: str) -> np.ndarray:
    scales = np.asarray(q.scale if q is not None and q.scale is not None else [], np.float64)
    if scales.size == 0:
        raise TFLiteError(f"{where}: {label} has no quantization scale")
    bad = scales[~(np.isfinite(scales) & (scales >= MIN_SCALE))]
    if bad.size:
        raise TFLiteError(f"{where}: {label} has an invalid quantization scale {bad[0]:g}; scales must be "
                          "finite, normal float32 numbers > 0")
    return scales


def quant_zero_points(q: fb.QuantizationParametersT, n: int, label: str, where: str) -> np.ndarray:
    zps = np.asarray(q.zeroPoint if q.zeroPoint is not None else [0] * n, np.int64)
    if zps.size != n:
        raise TFLiteError(f"{where}: {label} has {n} scales but {zps.size} zero points")
    if zps.size and (zps.min() < -128 or zps.max() > 127):
        raise TFLiteError(f"{where}: {label} has zero point {zps[(zps < -128) | (zps > 127)][0]}, outside int8 "
                          "[-128, 127]")
    return zps


def read_weights(g: Subgraph, op: fb.OperatorT, ndim: int, channel_axis: int, where: str,
             dtype: str = "int8") -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 weights of rank ``ndim`` with one scale, or one per output channel; float32
    weights (of a float32 model) have no scales."""
    t, label = g.tensor(op.inputs[1], "weights", where)
    if dtype == "float32":
        if t.type != fb.TensorType.FLOAT32:
            raise TFLiteError(f"{where}: {label} are {TYPE_NAMES.get(t.type, t.type)} in a float32 model, expected "
                              "FLOAT32 (hybrid models with quantized weights are not supported)")
        if len(t.shape) != ndim:
            raise TFLiteError(f"{where}: {label} must be {ndim}-D, got shape {tuple(t.shape)}")
        data = g.constant(t, label, "<f4", where).astype(np.float32)
        if not np.isfinite(data).all():
            raise TFLiteError(f"{where}: {label} contain NaN or infinity")
        return data, np.zeros(0, np.float32)
    if t.type != fb.TensorType.INT8:
        raise TFLiteError(f"{where}: {label} are {TYPE_NAMES.get(t.type, t.type)}, expected INT8")
    if len(t.shape) != ndim:
        raise TFLiteError(f"{where}: {label} must be {ndim}-D, got shape {tuple(t.shape)}")
    scales = quant_scales(t.quantization, label, where)
    if (quant_zero_points(t.quantization, scales.size, label, where) != 0).any():
        raise TFLiteError(f"{where}: {label} must be symmetrically quantized (zero point 0)")
    channels = int(t.shape[channel_axis])
    if scales.size not in (1, channels):
        raise TFLiteError(f"{where}: {label} has {scales.size} scales for {channels} output channels")
    return g.constant(t, label, "i1", where), scales.astype(np.float32)


def read_bias(g: Subgraph, op: fb.OperatorT, channels: int, where: str, dtype: str = "int8") -> np.ndarray:
    """int32 bias of an int8 layer, float32 bias of a float32 one; zeros when the operator has none."""
    want, fmt, np_type = ((fb.TensorType.FLOAT32, "<f4", np.float32) if dtype == "float32"
                          else (fb.TensorType.INT32, "<i4", np.int32))
    idx = op.inputs[2] if len(op.inputs) > 2 else -1
    if idx < 0:
        return np.zeros(channels, np_type)
    t, label = g.tensor(idx, "bias", where)
    if t.type != want:
        raise TFLiteError(f"{where}: {label} is {TYPE_NAMES.get(t.type, t.type)}, expected {TYPE_NAMES[want]}")
    if tuple(t.shape) != (channels,):
        raise TFLiteError(f"{where}: {label} has shape {tuple(t.shape)}, expected ({channels},)")
    data = g.constant(t, label, fmt, where).astype(np_type)
    if dtype == "float32" and not np.isfinite(data).all():
        raise TFLiteError(f"{where}: {label} contains NaN or infinity")
    return data


def read_geometry(opt, where: str, window: tuple[int, int] | None = None) -> tuple[tuple[int, int], str]:
    """Stride and padding of a conv or pool: a stride or window of 0 would divide by zero later."""
    if min(opt.strideH, opt.strideW) < 1 or (window is not None and min(window) < 1):
        raise TFLiteError(f"{where}: stride {(opt.strideH, opt.strideW)}"
                          + (f" and window {window}" if window else "") + " must be >= 1")
    if opt.padding not in PAD_NAME:
        raise TFLiteError(f"{where}: unknown padding {opt.padding}")
    return (int(opt.strideH), int(opt.strideW)), PAD_NAME[opt.padding]


def int32_constant(g: Subgraph, op: fb.OperatorT, index: int, role: str, where: str) -> np.ndarray:
    """A constant int32 input tensor of ``op`` (MEAN's axes, PAD's paddings): TFLM reads these at Prepare."""
    t, label = g.tensor(op.inputs[index], role, where)
    if t.type != fb.TensorType.INT32:
        raise TFLiteError(f"{where}: {label} is {TYPE_NAMES.get(t.type, t.type)}, expected INT32")
    return g.constant(t, label, "<i4", where).astype(np.int64)


def activation_kind(code: int, where: str) -> str:
    if code not in ACT_NAME:
        raise TFLiteError(f"{where}: fused activation {code} is not supported")
    return ACT_NAME[code]


def export_conv(layer: Any, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int,
                depthwise: bool) -> None:
    """CONV_2D or DEPTHWISE_CONV_2D: activation, weights, bias; stride, padding, no dilation, the fused
    activation and (depthwise) the channel multiplier."""
    (inp,) = inputs
    weights, bias = weighted_inputs(w, i, layer, inp, 3 if depthwise else 0)
    opt = fb.DepthwiseConv2DOptionsT() if depthwise else fb.Conv2DOptionsT()
    opt.padding = PAD_CODE[layer.padding]
    opt.strideH, opt.strideW = layer.stride
    opt.dilationHFactor = opt.dilationWFactor = 1
    opt.fusedActivationFunction = ACT_CODE[layer.activation.kind]
    if depthwise:
        opt.depthMultiplier = layer.output.shape[2] // inp.shape[2]
        w.op(fb.BuiltinOperator.DEPTHWISE_CONV_2D, [reads[0], weights, bias], [out],
             fb.BuiltinOptions.DepthwiseConv2DOptions, opt)
    else:
        w.op(fb.BuiltinOperator.CONV_2D, [reads[0], weights, bias], [out], fb.BuiltinOptions.Conv2DOptions, opt)


def import_conv(cls: type, g: Subgraph, op: fb.OperatorT, out: TensorInfo, where: str, depthwise: bool) -> Any:
    """A CONV_2D or DEPTHWISE_CONV_2D operator as a layer of ``cls``: (1, KH, KW, C) weights for a depthwise
    one, one weight scale per output channel in an int8 model."""
    opt = op.builtinOptions
    if opt.dilationHFactor not in (0, 1) or opt.dilationWFactor not in (0, 1):
        raise TFLiteError(f"{where}: dilation is not supported")
    wq, scales = read_weights(g, op, 4, 3 if depthwise else 0, where, out.dtype)
    if depthwise and wq.shape[0] != 1:
        raise TFLiteError(f"{where}: depthwise weights must have shape (1, KH, KW, C), got {wq.shape}")
    channels = wq.shape[3] if depthwise else wq.shape[0]
    bias = read_bias(g, op, channels, where, out.dtype)
    act = Activation.for_output(activation_kind(opt.fusedActivationFunction, where), out)
    stride, padding = read_geometry(opt, where)
    if scales.size:  # int8: one scale per output channel
        scales = np.broadcast_to(scales, (channels,))
    return cls(wq.copy(), bias, scales.copy(), stride, padding, act, out)


def fused_activation(op: fb.OperatorT, out: TensorInfo, where: str) -> Activation:
    """The clamp of an operator whose options carry a fused activation (checked to be present)."""
    return Activation.for_output(activation_kind(op.builtinOptions.fusedActivationFunction, where), out)
