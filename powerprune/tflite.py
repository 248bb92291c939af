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
from .ir import Graph, IRError, Layer, TensorInfo
from .ops import BY_BUILTIN, OPS, op_of
from .ops.tflite_io import (
    OP_NAMES,
    TYPE_NAMES,
    Subgraph,
    TFLiteError,
    Writer,
    quant_scales,
    quant_zero_points,
)

__all__ = ["TFLiteError", "export_tflite", "import_tflite", "load_tflite", "save_tflite"]


# ---------------------------------------------------------------------------------------------
# export


def export_tflite(graph: Graph) -> bytes:
    """Serialize ``graph`` as a TFLite flatbuffer (schema version 3): each layer's op writes its operator."""
    w = Writer()
    ids = [w.activation("input", graph.input)]  # flatbuffer tensor index of each IR tensor id
    for i, layer, _ in graph.steps():
        out = w.activation(f"layer{i}/output", layer.output)
        op_of(layer).export(layer, w, i, [ids[t] for t in graph.reads[i]], graph.inputs_of(i), out)
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


_SUPPORTED_NAMES = ", ".join(OP_NAMES[b.code] for op in OPS for b in op.builtins)
_MAX_SHIFT = 31  # a requantization multiplier >= 2^31 would shift int32 accumulators out of range


def _read_model(data: bytes) -> fb.ModelT:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise TFLiteError("not a TFLite flatbuffer (missing 'TFL3' identifier)")
    try:
        return fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    except Exception as exc:  # flatbuffers raises assorted errors on truncated data
        raise TFLiteError(f"corrupt .tflite file ({type(exc).__name__}: {exc})") from exc


def _per_inference(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A tensor's shape without its batch axis of 1: the first axis, or the second of a time-major
    sequence (time steps, batch 1, features), which a time-major LSTM reads and writes."""
    if len(shape) == 3 and shape[0] > 1 and shape[1] == 1:
        return (shape[0], shape[2])
    return shape[1:] if len(shape) > 1 else shape


def _info(t: fb.TensorT, label: str, where: str, float_ok: bool = False) -> TensorInfo:
    """An int8 activation with per-tensor quantization, or (``float_ok``: any tensor of a float32 model;
    in an int8 model the model input, or what a DEQUANTIZE writes) a float32 tensor."""
    shape = tuple(int(d) for d in t.shape)
    if float_ok and t.type == fb.TensorType.FLOAT32:
        return TensorInfo.float32(_per_inference(shape))
    if t.type != fb.TensorType.INT8:
        raise TFLiteError(f"{where}: {label} is {TYPE_NAMES.get(t.type, t.type)}; powerprune runs full-integer "
                          "int8 models (float32 only as the model input behind a QUANTIZE or as its output after a "
                          "DEQUANTIZE) and float32 models (float32 throughout)")
    scales = quant_scales(t.quantization, label, where)
    if scales.size != 1:
        raise TFLiteError(f"{where}: {label} needs per-tensor quantization (one scale), has {scales.size}")
    zp = quant_zero_points(t.quantization, 1, label, where)
    return TensorInfo(_per_inference(shape), float(np.float32(scales[0])), int(zp[0]))


def _check_multipliers(graph: Graph) -> None:
    """Scales that are each valid can still combine into a requantization multiplier no int32
    kernel can apply (input x weight / output >= 2^31)."""
    for i, layer, inp in graph.steps():
        if op_of(layer).weighted and not layer.output.is_float:
            worst = max(real_multiplier(inp.scale, float(s), layer.output.scale) for s in layer.weight_scales)
            if quantize_multiplier(worst)[1] > _MAX_SHIFT:
                raise TFLiteError(f"operator {i} ({layer.op}): input x weight / output scale = {worst:g} is too "
                                  "large for int8 requantization; the quantization parameters are damaged")


def import_tflite(data: bytes, name: str = "model") -> Graph:
    """A .tflite (bytes) made by any int8 or float32 pipeline -> IR. Unsupported ops name the op and its index;
    a damaged field names the operator and tensor."""
    g = Subgraph(_read_model(data))
    inputs = [] if g.sub.inputs is None else [int(i) for i in g.sub.inputs]
    outputs = [] if g.sub.outputs is None else [int(i) for i in g.sub.outputs]
    if len(inputs) != 1 or len(outputs) != 1:
        raise TFLiteError("only models with one input and one output are supported")
    graph_input = _info(*g.tensor(inputs[0], "", "model input"), "model input", float_ok=True)
    operators = g.sub.operators or []
    codes = [g.opcode(op, index) for index, op in enumerate(operators)]
    # a float input that no QUANTIZE converts makes a float32 model: every tensor may be float32 (and
    # Graph.validate then insists that every one is)
    first = BY_BUILTIN.get(codes[0]) if codes else None
    float_model = graph_input.is_float and not (first is not None and first[0].reads_float)
    for index, code in enumerate(codes):  # before the graph's shape: name what is unsupported
        if code not in BY_BUILTIN:
            opname = OP_NAMES.get(code, f"#{code}")
            raise TFLiteError(f"operator {index} ({opname}): unsupported operator {opname}; powerprune supports "
                              f"{_SUPPORTED_NAMES} (re-export the model with these ops only)")
    ids = {inputs[0]: 0}  # flatbuffer tensor index -> IR tensor id (0 input, i + 1 output of layer i)
    layers: list[Layer] = []
    reads: list[tuple[int, ...]] = []
    names: list[str] = []  # operator name of each layer, for errors the IR finds
    for index, (op, code) in enumerate(zip(operators, codes, strict=True)):
        opname = OP_NAMES[code]
        where = f"operator {index} ({opname})"
        spec, builtin = BY_BUILTIN[code]
        options, min_inputs = builtin.options, builtin.min_inputs
        op_inputs = [] if op.inputs is None else [int(i) for i in op.inputs]
        op_outputs = [] if op.outputs is None else [int(i) for i in op.outputs]
        if len(op_inputs) < min_inputs or len(op_outputs) != 1:
            raise TFLiteError(f"{where}: needs at least {min_inputs} input(s) and one output, has "
                              f"{len(op_inputs)} and {len(op_outputs)}")
        if options is not None and (op.builtinOptionsType != options or op.builtinOptions is None):
            raise TFLiteError(f"{where}: its builtin options are missing or of the wrong type")
        op.inputs, op.outputs = op_inputs, op_outputs
        out = _info(*g.tensor(op_outputs[0], "output", where), where,
                    float_ok=float_model or spec.writes_float)
        if op_outputs[0] in ids:
            raise TFLiteError(f"{where}: {g.label(op_outputs[0], 'output')} is written a second time")
        layer = spec.import_(g, code, op, out, where)
        # the activations it reads come first; further inputs are weights, bias, shape (a variadic op reads all)
        n = len(op_inputs) if spec.arity == "n" else spec.arity
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


def load_tflite(path: str | Path) -> Graph:
    path = Path(path)
    if not path.is_file():
        raise TFLiteError(f".tflite file {path} not found")
    return import_tflite(path.read_bytes(), name=path.stem)
