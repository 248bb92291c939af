"""An imported ``.tflite`` graph -> a trainable float ``SeqNet``, and the pruned SeqNet back to a graph
that fits where the original did.

``quantize`` turns a SeqNet into an int8 graph; this module goes the other way so that a deployed model
(Keras + converter, tfmot, TFLM's examples, MLPerf Tiny) can be pruned and fine-tuned on the user's data:
weights are dequantized per channel (OHWI -> OIHW, fully connected columns from TFLite's NHWC flatten
order back to the NCHW order a SeqNet flattens in), biases become int32 x input scale x weight scale,
fused RELU/RELU6 become relu/relu6 entries, RESHAPE to features a flatten, MEAN over H and W a global
average pool, residual ADDs ``add`` entries. What a SeqNet does not train through is left at the edges
and put back on export: a float boundary (first QUANTIZE, last DEQUANTIZE), a leading RESHAPE of the
model input, and a trailing SOFTMAX (training applies it inside the loss). Anything else a SeqNet cannot
express (LOGISTIC, a SOFTMAX or QUANTIZE inside the graph, padded pooling) is refused in one line naming
the op.

``to_graph`` quantizes the pruned network with the original's input and output quantization pinned
(``quantize(keep_input=..., keep_output=...)``) and its boundary layers restored, so the application's
pre- and post-processing stay valid, and refuses a result whose op set is not the original's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .data import Dataset, DatasetError
from .ir import (
    Add,
    Conv2D,
    DepthwiseConv2D,
    Dequantize,
    FullyConnected,
    Graph,
    Layer,
    Mean,
    Pad,
    Pool2D,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
    output_size,
)
from .quantize import float32_graph, nhwc_columns, quantize
from .seqnet import INPUT, ConversionError, SeqNet


@dataclass
class Imported:
    """A float SeqNet made from ``graph`` and what it left out, for ``to_graph`` to put back: the float
    boundary (``quantize_first``, ``dequantize_last``), a leading RESHAPE of the model input (the shape
    before it: ``reshaped_from``) and a trailing SOFTMAX (``softmax``). ``body_input`` and
    ``body_output`` are the tensors the SeqNet's input and output stand for (int8: their quantization is
    what export pins). ``notes`` say what changed in the translation, for the user."""

    net: SeqNet
    graph: Graph
    body_input: TensorInfo
    body_output: TensorInfo
    quantize_first: Quantize | None = None
    reshaped_from: tuple[int, ...] | None = None
    softmax: Softmax | None = None
    dequantize_last: Dequantize | None = None
    notes: list[str] = field(default_factory=list)
    entries: dict[int, int] = field(default_factory=dict)  # IR tensor id -> the SeqNet entry holding its value

    @property
    def ops(self) -> set[str]:
        """The op names of the original graph: what an exported copy may hold."""
        return {layer.op for layer in self.graph.layers}


class _Builder:
    """SeqNet entries and their weights, with the SeqNet entry that holds each IR tensor's value."""

    def __init__(self) -> None:
        self.spec: list[dict] = []
        self.weights: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # entry -> float (OIHW or (O, I)) weights, bias
        self.entry: dict[int, int] = {}            # IR tensor id -> SeqNet entry index (INPUT: the input)
        self.flattened_from: dict[int, tuple[int, ...]] = {}  # IR tensor id -> the HWC shape a flatten read

    def add(self, entry: dict, source: int | list[int]) -> int:
        sources = source if isinstance(source, list) else [source]
        if sources != [len(self.spec) - 1]:
            entry["inputs"] = sources
        self.spec.append(entry)
        return len(self.spec) - 1

    def activation(self, kind: str, source: int) -> int:
        """The relu/relu6 entry a fused RELU/RELU6 becomes (nothing for NONE)."""
        if kind == "NONE":
            return source
        return self.add({"type": kind.lower()}, source)


def _float_weights(layer: Layer, inp: TensorInfo, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Real-valued weights and bias: int8 x per-channel (or per-tensor) scale, int32 x input scale x
    weight scale; a float32 graph's as they are."""
    if layer.weights.dtype == np.float32:
        return layer.weights.astype(np.float32), layer.bias.astype(np.float32)
    channels = layer.weights.shape[axis]
    scales = np.broadcast_to(layer.weight_scales.astype(np.float64), (channels,))
    shape = [1] * layer.weights.ndim
    shape[axis] = channels
    w = layer.weights.astype(np.float64) * scales.reshape(shape)
    b = layer.bias.astype(np.float64) * np.float64(np.float32(inp.scale)) * scales
    return w.astype(np.float32), b.astype(np.float32)


def _conv_padding(layer: Conv2D | DepthwiseConv2D, inp: TensorInfo) -> tuple[list[int], list[int] | None]:
    """PyTorch's symmetric conv padding, plus a ZeroPad2d (left, right, top, bottom) when TFLite's SAME
    pads the odd pixel after (``quantize`` folds that pad back into SAME on export)."""
    kh, kw = layer.weights.shape[1:3]
    before, after = [], []
    for size, k, s in zip(inp.shape[:2], (kh, kw), layer.stride, strict=True):
        out, lead = output_size(size, k, s, layer.padding)
        total = max((out - 1) * s + k - size, 0) if layer.padding == "SAME" else 0
        before.append(lead)
        after.append(total - lead)
    if before == after:
        return before, None
    return [0, 0], [before[1], after[1], before[0], after[0]]


def _refuse(i: int, layer: Layer, why: str) -> ConversionError:
    return ConversionError(f"layer {i} ({layer.op}): {why}")


# the ops a SeqNet has a float form of (QUANTIZE/DEQUANTIZE only at the model's float boundary)
TRAINABLE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RESHAPE",
                 "MEAN", "PAD", "ADD", "SOFTMAX", "QUANTIZE", "DEQUANTIZE")


def to_seqnet(graph: Graph) -> Imported:
    """The float SeqNet of ``graph`` (int8 or float32, chain or residual), with what it left out."""
    layers, reads = list(graph.layers), list(graph.reads)
    for i, layer in enumerate(layers):  # before anything else: the op is the reason, not a shape it has
        if layer.op not in TRAINABLE_OPS:
            raise _refuse(i, layer, "powerprune cannot train through this op yet (a SeqNet has no float form of it)")
    first, last = 0, len(layers)  # the body: layers[first:last]
    quantize_first = reshaped_from = softmax = dequantize_last = None
    body_input = graph.input
    if layers and isinstance(layers[0], Quantize) and graph.input.is_float:
        quantize_first, body_input, first = layers[0], layers[0].output, 1
    if first < last and isinstance(layers[first], Reshape) and graph.readers(first) == [first] \
            and len(layers[first].output.shape) == 3:
        reshaped_from, body_input = body_input.shape, layers[first].output
        first += 1
    if last > first and isinstance(layers[last - 1], Dequantize):
        dequantize_last, last = layers[last - 1], last - 1
    if last > first and isinstance(layers[last - 1], Softmax):
        softmax, last = layers[last - 1], last - 1
    if last <= first:
        raise ConversionError("the model has no layer to train (only boundary QUANTIZE/RESHAPE/SOFTMAX/DEQUANTIZE)")
    if len(body_input.shape) == 3:
        h, w, c = body_input.shape
        input_shape = (c, h, w)
    elif len(body_input.shape) == 1:
        input_shape = (body_input.shape[0], 1, 1)
    else:
        raise ConversionError(f"the model input has shape {body_input.shape}; a SeqNet takes (H, W, C) images "
                              "or feature vectors")

    b = _Builder()
    b.entry[first] = INPUT  # the tensor the body reads first: the model input, or a boundary layer's output
    if len(body_input.shape) == 1:
        b.entry[first] = b.add({"type": "flatten"}, INPUT)  # (n, 1, 1) -> n features

    for i in range(first, last):
        layer, ids = layers[i], reads[i]
        inp = graph.tensor(ids[0])
        src = b.entry.get(ids[0])
        if src is None or any(t not in b.entry for t in ids):
            raise _refuse(i, layer, "reads a tensor the boundary layers consume; cannot train through it")
        act = getattr(layer, "activation", None)  # the fused one, on the layers that have it
        if isinstance(layer, Conv2D | DepthwiseConv2D):
            depthwise = isinstance(layer, DepthwiseConv2D)
            w, bias = _float_weights(layer, inp, 3 if depthwise else 0)
            torch_w = w.transpose(3, 0, 1, 2) if depthwise else w.transpose(0, 3, 1, 2)  # 1HWO / OHWI -> OIHW
            padding, pad = _conv_padding(layer, inp)
            if pad is not None:
                src = b.add({"type": "pad", "padding": pad}, src)
            cin, cout = inp.shape[2], layer.output.shape[2]
            entry = {"type": "conv", "in": cin, "out": cout, "kernel": list(layer.weights.shape[1:3]),
                     "stride": list(layer.stride), "padding": padding, "groups": cin if depthwise else 1}
            if depthwise:
                entry["depthwise"] = True  # a one-channel depthwise conv is groups=1 to PyTorch; keep its op
            at = b.add(entry, src)
            b.weights[at] = (np.ascontiguousarray(torch_w), bias)
            out = b.activation(act.kind, at)
        elif isinstance(layer, FullyConnected):
            flat_from = b.flattened_from.get(ids[0])
            if len(inp.shape) == 3:  # TFLite's FC flattens a 3-D input itself; a SeqNet says so
                src, flat_from = b.add({"type": "flatten"}, src), inp.shape
            w, bias = _float_weights(layer, inp, 0)
            at = b.add({"type": "linear", "in": int(w.shape[1]), "out": int(w.shape[0])}, src)
            b.weights[at] = (np.ascontiguousarray(nhwc_columns(w, flat_from, inverse=True)), bias)
            out = b.activation(act.kind, at)
        elif isinstance(layer, Pool2D):
            if layer.activation.kind != "NONE":
                raise _refuse(i, layer, f"a fused {layer.activation.kind} on a pool has no SeqNet form")
            if layer.padding == "SAME" and any(
                    max((o - 1) * s + k - n, 0) for n, o, k, s in
                    zip(inp.shape[:2], layer.output.shape[:2], layer.size, layer.stride, strict=True)):
                raise _refuse(i, layer, "SAME padding that pads is not supported by a SeqNet pool")
            out = b.add({"type": "maxpool" if layer.kind == "MAX" else "avgpool", "kernel": list(layer.size),
                         "stride": list(layer.stride)}, src)
        elif isinstance(layer, Reshape):
            if len(layer.output.shape) != 1:
                raise _refuse(i, layer, f"reshape {inp.shape} -> {layer.output.shape}: only a flatten to "
                                        "features (or the model input's reshape) has a SeqNet form")
            if len(inp.shape) == 1:
                out = src  # features to features: nothing to compute
                b.entry[i + 1] = out
                continue
            out = b.add({"type": "flatten"}, src)
            b.flattened_from[i + 1] = inp.shape
        elif isinstance(layer, Mean):
            hw = list(inp.shape[:2])
            out = b.add({"type": "avgpool", "kernel": hw, "stride": hw}, src)
            if not layer.keep_dims:
                out = b.add({"type": "flatten"}, out)
        elif isinstance(layer, Pad):
            (top, bottom), (left, right), channels = (layer.paddings + ((0, 0),) * 3)[:3]
            if len(inp.shape) != 3 or channels != (0, 0):
                raise _refuse(i, layer, f"paddings {layer.paddings}: only height and width padding has a "
                                        "SeqNet form")
            out = b.add({"type": "pad", "padding": [left, right, top, bottom]}, src)
        elif isinstance(layer, Add):
            at = b.add({"type": "add"}, [b.entry[t] for t in ids])
            out = b.activation(layer.activation.kind, at)
        elif isinstance(layer, Softmax):
            raise _refuse(i, layer, "a SOFTMAX inside the graph cannot be trained through (only the last op may "
                                    "be one)")
        elif isinstance(layer, Quantize | Dequantize):
            raise _refuse(i, layer, "a requantization inside the graph cannot be trained through (only a float "
                                    "boundary at the model's ends)")
        else:
            raise _refuse(i, layer, "powerprune cannot train through this op (a SeqNet has no float form of it)")
        b.entry[i + 1] = out

    if b.entry[last] != len(b.spec) - 1:
        raise ConversionError("the model's output is not computed by its last trainable layer")
    net = SeqNet(b.spec, input_shape)
    with torch.no_grad():
        for at, (w, bias) in b.weights.items():
            mod = getattr(net, net.names[at])
            mod.weight.copy_(torch.from_numpy(w).reshape(mod.weight.shape))
            mod.bias.copy_(torch.from_numpy(bias))
    net.eval()
    notes = []
    if softmax is not None:
        notes.append("the trailing SOFTMAX is left out for training (the loss applies it) and put back on export")
    if any(isinstance(layer, FullyConnected) and layer.weight_scales.size > 1 for layer in layers):
        notes.append("per-channel fully connected weights are exported per tensor (as quantize does)")
    return Imported(net, graph, body_input, layers[last - 1].output, quantize_first, reshaped_from, softmax,
                    dequantize_last, notes, dict(b.entry))


# --- data ---------------------------------------------------------------------------------------------


def fit_data(data: Dataset, net: SeqNet) -> Dataset:
    """``data`` with images shaped as ``net`` takes them (NHWC): a flat input of n features is (1, 1, n),
    and any layout of the same values per sample (N, n), (N, H, W) is reshaped in its stored order, which
    is TFLite's. A different number of values per sample is one clear error."""
    c, h, w = net.input_shape
    want = (h, w, c)
    if data.images.shape[1:] == want:
        return data
    if int(np.prod(data.images.shape[1:])) != h * w * c:
        raise DatasetError(f"the data's samples have shape {data.images.shape[1:]} ({np.prod(data.images.shape[1:])} "
                           f"values), the model takes {h * w * c} values ({want} as H, W, C)")
    return Dataset(data.images.reshape((len(data),) + want), data.labels)


def graph_inputs(graph: Graph, images: np.ndarray) -> np.ndarray:
    """uint8 pixels of any per-sample layout -> the graph's input tensor (``quantize_images`` after a
    reshape to the graph's input shape, in stored order)."""
    from .quantize import quantize_images

    return quantize_images(graph, images.reshape((len(images),) + graph.input.shape))


# --- the float model against the int8 one -----------------------------------------------------------


@dataclass(frozen=True)
class Agreement:
    """How the float SeqNet's outputs match the graph's on some inputs: the fraction of samples whose
    top-1 class is the same, and the largest output difference (in the output's real units; ``step`` is
    the output's quantization step, so int8 rounding alone gives errors of about one step)."""

    samples: int
    top1: float
    max_error: float
    step: float

    def __str__(self) -> str:
        step = f" ({self.max_error / self.step:.1f} output steps)" if self.step else ""
        return (f"float model vs the original on {self.samples} samples: top-1 agreement {self.top1:.1%}, "
                f"largest output difference {self.max_error:.4g}{step}")


@torch.no_grad()
def float_outputs(imp: Imported, net: SeqNet, x: np.ndarray) -> np.ndarray:
    """What ``net`` computes for real-valued inputs ``x`` (N, any layout of the model's input values) with
    the original's trailing SOFTMAX applied: comparable with the graph's (dequantized) outputs."""
    net.eval()
    c, h, w = net.input_shape
    t = torch.from_numpy(np.ascontiguousarray(x.reshape(len(x), h, w, c).transpose(0, 3, 1, 2), np.float32))
    y = torch.cat([net(t[i:i + 500]) for i in range(0, len(t), 500)]) if len(t) else net(t)
    if imp.softmax is not None:
        y = torch.softmax(y * imp.softmax.beta, dim=-1)
    return y.numpy()


def agreement(imp: Imported, x: np.ndarray, graph_outputs: np.ndarray) -> Agreement:
    """Compare the imported float model with the original graph on the graph's inputs ``x`` (int8 codes,
    or floats for a float-input model; ``graph_inputs`` makes them from pixels) and ``graph_outputs``,
    what ``reference.run`` returned for them. The float model is given the values the int8 model sees
    (the inputs dequantized), so what differs is the arithmetic, not the input encoding's rounding."""
    graph = imp.graph
    seen = imp.body_input.dequantize(imp.body_input.quantize(x) if graph.input.is_float else x)
    real = graph.output.dequantize(np.asarray(graph_outputs)).reshape(len(x), -1)
    mine = float_outputs(imp, imp.net, seen).reshape(len(x), -1)
    top1 = float((real.argmax(1) == mine.argmax(1)).mean()) if len(x) else 1.0
    return Agreement(len(x), top1, float(np.abs(real - mine).max()) if len(x) else 0.0, graph.output.scale)


# --- back to a graph -----------------------------------------------------------------------------------


def _shift(reads: list[tuple[int, ...]], by: int) -> list[tuple[int, ...]]:
    return [tuple(t + by for t in r) for r in reads]


def _prepend(graph: Graph, new_input: TensorInfo, layer: Layer) -> Graph:
    """``layer`` (reading ``new_input``) in front of ``graph``, whose input it now computes."""
    return Graph(new_input, [layer, *graph.layers], graph.name, [(0,), *_shift(graph.reads, 1)])


def _append(graph: Graph, layer: Layer) -> Graph:
    return Graph(graph.input, [*graph.layers, layer], graph.name, [*graph.reads, (len(graph.layers),)])


def _bypass(graph: Graph, i: int, replacement: Layer | None = None) -> Graph:
    """``graph`` without layer i + 1, a one-input layer whose readers now read what it read; layer i
    becomes ``replacement`` when given (which then writes the dropped layer's output)."""
    layers = list(graph.layers)
    if replacement is not None:
        layers[i] = replacement
    (source,) = graph.reads[i + 1]
    moved = i + 2  # the dropped layer's output tensor

    def remap(t: int) -> int:
        return source if t == moved else t - 1 if t > moved else t

    reads = [tuple(remap(t) for t in r) for r in graph.reads]
    return Graph(graph.input, layers[:i + 1] + layers[i + 2:], graph.name, reads[:i + 1] + reads[i + 2:])


def _global_pools_as_mean(graph: Graph) -> Graph:
    """Global average pools (and a flatten after one) written as the MEAN the original held; ``quantize``
    writes a SeqNet's global pool as AVERAGE_POOL_2D."""
    i = 0
    while i < len(graph.layers):
        layer, inp = graph.layers[i], graph.tensor(graph.reads[i][0])
        if isinstance(layer, Pool2D) and layer.kind == "AVERAGE" and tuple(layer.size) == inp.shape[:2] \
                and layer.output.shape[:2] == (1, 1):
            nxt = graph.layers[i + 1] if i + 1 < len(graph.layers) else None
            flat = isinstance(nxt, Reshape) and graph.readers(i + 1) == [i + 1] and len(nxt.output.shape) == 1
            if flat:
                graph = _bypass(graph, i, Mean(False, nxt.output))
            else:
                layers = list(graph.layers)
                layers[i] = Mean(True, layer.output)
                graph = Graph(graph.input, layers, graph.name, graph.reads)
        i += 1
    return graph


def to_graph(imp: Imported, net: SeqNet, calibration: Dataset, name: str | None = None) -> Graph:
    """``net`` (``imp.net`` pruned and fine-tuned) as a graph that replaces the original: int8 with the
    original's input and output quantization kept, or float32 for a float32 original; the boundary
    layers the import left out put back. Refuses, naming them, ops the original did not have."""
    name = name or imp.graph.name
    if imp.graph.dtype == "float32":
        graph = float32_graph(net, name=name, softmax=imp.softmax is not None)
    else:
        keep_output = imp.body_output if imp.softmax is None else None
        graph = quantize(net, fit_data(calibration, net), name, keep_input=imp.body_input, keep_output=keep_output)
        if imp.softmax is not None:
            graph = _append(graph, Softmax(imp.softmax.beta, imp.softmax.output))
    if "MEAN" in imp.ops and "AVERAGE_POOL_2D" not in imp.ops:
        graph = _global_pools_as_mean(graph)
    body = imp.body_input
    if graph.input.shape != body.shape:
        # a flat input went in as (1, 1, n) plus a flatten: the graph reads the n values directly
        if not (graph.layers and isinstance(graph.layers[0], Reshape) and graph.layers[0].output.shape == body.shape
                and graph.readers(0) == [0] and len(graph.layers) > 1):
            raise ConversionError(f"the pruned model's input {graph.input.shape} is not the original's {body.shape}")
        graph = Graph(graph.layers[0].output, graph.layers[1:], graph.name, _shift(graph.reads[1:], -1))
    if imp.reshaped_from is not None:
        graph = _prepend(graph, TensorInfo(imp.reshaped_from, graph.input.scale, graph.input.zero_point,
                                           graph.input.dtype), Reshape(graph.input))
    if imp.quantize_first is not None:
        graph = _prepend(graph, imp.graph.input, Quantize(graph.input))
    if imp.dequantize_last is not None:
        graph = _append(graph, Dequantize(imp.dequantize_last.output))
    new = {layer.op for layer in graph.layers} - imp.ops
    if new:
        raise ConversionError(f"the pruned model would hold {', '.join(sorted(new))}, which the original does not "
                              "(the exported op set must stay the original's)")
    return graph
