"""Post-training full-integer quantization: a float network becomes an int8 ``Graph`` (or, for a float32
deployment like the paper's, a float32 ``Graph`` of the same layers: ``float32_graph``).

Follows the TFLite int8 spec the official converter uses: activation ranges from calibration images
(min/max, always including 0), per-channel symmetric conv weights, per-tensor symmetric FC weights,
int32 biases at input scale x weight scale. A pruned zero quantizes to exactly 0, and an APoZ model
quantizes to its smaller shapes because the IR is built from the actual tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .data import Dataset
from .fixedpoint import round_half_away
from .ir import (
    Activation,
    Add,
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Graph,
    Layer,
    Pool2D,
    Reshape,
    Softmax,
    TensorInfo,
)
from .seqnet import INPUT, ConversionError, SeqNet, from_torch

DEFAULT_CALIBRATION = 500  # training images whose activation ranges set the int8 scales

# The input quantization every graph gets: pixels 0..255 map to -128..127 exactly (the shape comes from the model).
INPUT_SCALE = 1.0 / 255.0
INPUT_ZERO_POINT = -128


def activation_quant(shape: tuple[int, ...], lo: float, hi: float) -> TensorInfo:
    """Asymmetric int8 parameters covering [lo, hi] (widened to contain 0, as TFLite requires)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = float(np.float32((hi - lo) / 255.0))
    zp = int(np.clip(round_half_away(-128 - lo / scale), -128, 127))
    return TensorInfo(shape, scale, zp)


def _weight_scales(w: np.ndarray, per_channel: bool) -> np.ndarray:
    """Symmetric scales max|w|/127; an all-zero channel borrows the layer's scale so its bias still
    quantizes finely."""
    flat = np.abs(w.reshape(w.shape[0], -1))
    layer_max = max(float(flat.max()), 1e-8)
    if not per_channel:
        return np.array([layer_max / 127.0], np.float32)
    ch = flat.max(axis=1)
    return (np.where(ch > 0, ch, layer_max) / 127.0).astype(np.float32)


def _quant_weights(w: np.ndarray, scales: np.ndarray) -> np.ndarray:
    s = scales.reshape((-1,) + (1,) * (w.ndim - 1))
    return np.clip(round_half_away(w / s), -127, 127).astype(np.int8)


def _quant_bias(b: np.ndarray, input_scale: float, scales: np.ndarray) -> np.ndarray:
    bias_scale = np.float64(np.float32(input_scale)) * scales.astype(np.float64)
    return np.clip(round_half_away(b / bias_scale), -(2**31), 2**31 - 1).astype(np.int32)


@torch.no_grad()
def activation_ranges(net: SeqNet, data: Dataset) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[int, ...]]]:
    """Min and max of every layer's output over ``data``, and its shape (C, H, W or features)."""
    net.eval()
    ranges: dict[str, list[float]] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    x = torch.from_numpy(data.as_float())
    for i in range(0, len(x), 1000):
        outputs: dict[str, torch.Tensor] = {}
        net(x[i:i + 1000], outputs)
        for name, t in outputs.items():
            lo, hi = float(t.min()), float(t.max())
            r = ranges.setdefault(name, [lo, hi])
            r[0], r[1] = min(r[0], lo), max(r[1], hi)
            shapes[name] = tuple(t.shape[1:])
    return {k: (v[0], v[1]) for k, v in ranges.items()}, shapes


def _nhwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    return (shape[1], shape[2], shape[0]) if len(shape) == 3 else shape


def _tflite_padding(entry: dict, pad: list[int] | None, in_hw: tuple[int, int], out_hw: tuple[int, int],
                    where: str) -> str:
    """TFLite knows SAME and VALID only; say which one PyTorch's zero padding is: the conv's own
    (symmetric) plus, when a ZeroPad2d feeds it, that one's (``pad`` = left, right, top, bottom).
    Only the leading pad decides the windows once the output size matches."""
    lead = [p for p in entry["padding"]]
    if pad is not None:
        lead = [lead[0] + pad[2], lead[1] + pad[0]]
    if lead == [0, 0] and pad is None:
        return "VALID"
    sizes = zip(in_hw, out_hw, entry["kernel"], entry["stride"], lead, strict=True)
    if lead == [0, 0] and all(out == (size - k) // s + 1 for size, out, k, s, _ in sizes):
        return "VALID"
    for size, out, k, s, p in zip(in_hw, out_hw, entry["kernel"], entry["stride"], lead, strict=True):
        total = max((out - 1) * s + k - size, 0)
        if out != -(-size // s) or total // 2 != p:
            shown = f"padding {tuple(entry['padding'])}" + ("" if pad is None else f" after a ZeroPad2d {tuple(pad)}")
            raise ConversionError(f"{where}: {shown} with kernel {tuple(entry['kernel'])} and stride "
                                  f"{tuple(entry['stride'])} is neither TFLite SAME nor VALID (SAME pads "
                                  "the odd pixel after: ZeroPad2d((0, 1, 0, 1)) before a stride-2 3x3 conv)")
    return "SAME"



def _readers(net: SeqNet) -> list[list[int]]:
    out: list[list[int]] = [[] for _ in net.spec]
    for i, src in enumerate(net.sources):
        for j in src:
            if j >= 0:
                out[j].append(i)
    return out


@dataclass(frozen=True)
class _Step:
    """One IR layer of a SeqNet: a conv (with a ZeroPad2d before it folded into its padding: ``pad``),
    linear or add layer with the ReLU/ReLU6 that follows it fused, a pool, or a flatten. ``sources`` are
    the entries it reads (``INPUT`` for the network input), ``out`` the entry whose output the IR layer
    produces (the fused ReLU's, if any)."""

    kind: str
    entry: dict
    name: str
    activation: str
    sources: tuple[int, ...]
    out: int
    pad: list[int] | None = None


def _steps(net: SeqNet) -> Iterator[_Step]:
    """The network as TFLite layers: the one reading of a SeqNet that the int8 and the float32 graph
    share. A ReLU is fused into the conv, linear or add it follows (TFLite has no standalone ReLU here),
    and a ZeroPad2d into the conv after it; each of those must be the only reader of what it fuses."""
    readers = _readers(net)
    fused: set[int] = set()  # entries computed inside another layer

    def fused_activation(i: int) -> tuple[str, int]:
        """RELU/RELU6 when the only reader of entry i is one, with the entry whose output it is."""
        r = readers[i]
        if len(r) == 1 and net.spec[r[0]]["type"] in ("relu", "relu6"):
            fused.add(r[0])
            return net.spec[r[0]]["type"].upper(), r[0]
        return "NONE", i

    for i, (entry, lname, src) in enumerate(zip(net.spec, net.names, net.sources, strict=True)):
        if i in fused:
            continue
        kind = entry["type"]
        if kind in ("conv", "linear"):
            pad, src0 = None, src[0]
            if src0 >= 0 and net.spec[src0]["type"] == "pad":
                pad, src0 = net.spec[src0]["padding"], net.sources[src0][0]
            act, out = fused_activation(i)
            yield _Step(kind, entry, lname, act, (src0,), out, pad)
        elif kind == "add":
            act, out = fused_activation(i)
            yield _Step(kind, entry, lname, act, tuple(src), out)
        elif kind in ("maxpool", "avgpool", "flatten"):
            yield _Step(kind, entry, lname, "NONE", tuple(src), i)
        elif kind == "pad":
            if any(not (net.spec[r]["type"] == "conv") for r in readers[i]) or not readers[i]:
                raise ConversionError(f"layer {lname}: a ZeroPad2d is supported only right before convs (folded "
                                      "into their padding); int8 PAD on its own is not supported")
        else:
            raise ConversionError(f"layer {lname}: a {kind} that does not follow a conv, linear or add layer (as "
                                  "that layer's only reader) cannot be fused; TFLite int8 has no standalone ReLU here")


def _graph(net: SeqNet, inp: TensorInfo, name: str,
           layer_for: Callable[[_Step, TensorInfo, tuple[int, ...] | None], Layer]) -> Graph:
    """The IR graph of ``net``: ``layer_for(step, its first input, the NHWC shape a flatten before it
    came from)`` makes each layer (int8 or float32); this wires them as the SeqNet does."""
    layers: list[Layer] = []
    reads: list[tuple[int, ...]] = []
    tensor = {INPUT: 0}                     # entry -> IR tensor id holding its value
    info = {INPUT: inp}                     # entry -> that tensor
    flattened_from: dict[int, tuple[int, ...]] = {}  # entry -> the NHWC shape its flatten came from
    for st in _steps(net):
        prev = info[st.sources[0]]
        if st.kind == "flatten":
            flattened_from[st.out] = prev.shape
        layer = layer_for(st, prev, flattened_from.get(st.sources[0]))
        layers.append(layer)
        reads.append(tuple(tensor[j] for j in st.sources))
        tensor[st.out] = len(layers)
        info[st.out] = layer.output
    return Graph(inp, layers, name, reads)


def nhwc_columns(w: np.ndarray, flattened_from: tuple[int, ...] | None, inverse: bool = False) -> np.ndarray:
    """A linear layer's weights after a flatten: PyTorch flattens NCHW, TFLite NHWC, so the input
    columns are reordered to match (``flattened_from``: the NHWC shape the flatten read). ``inverse``
    goes the other way, from a .tflite's columns back to a SeqNet's (``tflite_to_seqnet``): the one
    place this permutation is written."""
    if flattened_from is None or len(flattened_from) != 3:
        return w
    fh, fw, fc = flattened_from
    if inverse:
        return w.reshape(w.shape[0], fh, fw, fc).transpose(0, 3, 1, 2).reshape(w.shape[0], -1)
    return w.reshape(w.shape[0], fc, fh, fw).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)


def quantize(model: nn.Module, calibration: Dataset, name: str = "lenet5", *,
             keep_input: TensorInfo | None = None, keep_output: TensorInfo | None = None) -> Graph:
    """Full-integer quantization of ``model`` (a SeqNet such as ``lenet5()``, or any PyTorch network of
    supported layers, chain or residual) with ranges from ``calibration`` (a few hundred training images
    are enough; TFLite's converter typically uses 100-500).

    A ReLU is fused into the conv, linear or add it follows (TFLite int8 has no standalone ReLU here),
    and a ZeroPad2d into the conv after it; each of those must be the only reader of what it fuses.

    ``keep_input`` / ``keep_output``: quantization (scale, zero point) the model's input / output must
    keep instead of the default input encoding and the calibrated output range, so that a pruned copy
    of an application's ``.tflite`` fits its pre- and post-processing unchanged."""
    if len(calibration) == 0:
        raise ValueError("calibration needs at least one image")
    h, w_, c = calibration.images.shape[1:]
    net = from_torch(model, (c, h, w_))
    if tuple(net.input_shape) != (c, h, w_):
        raise ConversionError(f"the model takes images of shape {net.input_shape} (C, H, W), "
                              f"the calibration data has {(c, h, w_)}")
    ranges, shapes = activation_ranges(net, calibration)
    last = net.names[-1]
    if keep_output is not None:
        if net.spec[-1]["type"] not in ("conv", "linear", "add", "relu", "relu6"):
            raise ConversionError(f"layer {last}: the output quantization can be kept only when a conv, linear or "
                                  "add layer computes the output (a pool or flatten copies its input's)")

    def layer_for(st: _Step, prev: TensorInfo, flattened_from: tuple[int, ...] | None) -> Layer:
        entry = st.entry
        if st.kind in ("conv", "linear", "add"):
            out_name = net.names[st.out]
            out = activation_quant(_nhwc(shapes[out_name]), *ranges[out_name])
            if keep_output is not None and out_name == last:
                out = TensorInfo(out.shape, keep_output.scale, keep_output.zero_point)
            act = Activation.for_output(st.activation, out)
        if st.kind == "add":
            return Add(act, out)
        if st.kind in ("conv", "linear"):
            w, bias = getattr(net, st.name).weight.detach().numpy(), getattr(net, st.name).bias.detach().numpy()
            if st.kind == "linear":
                w = nhwc_columns(w, flattened_from)
                scales = _weight_scales(w, per_channel=False)
                return FullyConnected(_quant_weights(w, scales), _quant_bias(bias, prev.scale, scales), scales, act,
                                      out)
            depthwise = _depthwise(entry)
            scales = _weight_scales(w, per_channel=True)
            padding = _tflite_padding(entry, st.pad, prev.shape[:2], out.shape[:2], f"layer {st.name}")
            q = _quant_weights(w, scales)
            cls = DepthwiseConv2D if depthwise else Conv2D
            qw = q.transpose(1, 2, 3, 0) if depthwise else q.transpose(0, 2, 3, 1)  # -> 1HWO / OHWI
            return cls(np.ascontiguousarray(qw), _quant_bias(bias, prev.scale, scales), scales,
                       tuple(entry["stride"]), padding, act, out)
        if st.kind in ("maxpool", "avgpool"):
            out = TensorInfo(_nhwc(shapes[st.name]), prev.scale, prev.zero_point)
            return Pool2D("MAX" if st.kind == "maxpool" else "AVERAGE", tuple(entry["kernel"]),
                          tuple(entry["stride"]), "VALID", Activation("NONE", -128, 127), out)
        return Reshape(TensorInfo((prev.size,), prev.scale, prev.zero_point))  # flatten

    inp = keep_input or TensorInfo((h, w_, c), INPUT_SCALE, INPUT_ZERO_POINT)
    return _graph(net, TensorInfo((h, w_, c), inp.scale, inp.zero_point), name, layer_for)


def _depthwise(entry: dict) -> bool:
    """A conv entry is a DEPTHWISE_CONV_2D when it is grouped per channel, or when it says so: a depthwise
    conv of a one-channel input (a channel multiplier, as in TFLM's micro_speech) is an ordinary conv to
    PyTorch, and an imported ``.tflite`` marks it to keep its op."""
    return entry["groups"] > 1 or bool(entry.get("depthwise", False))


@torch.no_grad()
def float32_graph(model: nn.Module, input_shape: tuple[int, int, int] | None = None, name: str = "model",
                  softmax: bool = False) -> Graph:
    """``model`` as a float32 graph, the deployment the paper measured: the weights as they are (a
    pruned zero stays an exact zero), float32 activations, the same layers and layouts as the int8
    graph. ``softmax`` appends the SOFTMAX the paper's Keras model ends with (a SeqNet leaves it out:
    training applies it inside the loss). ``input_shape`` (C, H, W) is needed only for a plain PyTorch
    module; a SeqNet knows its own. A float32 graph is a chain: a residual network (ADD) is refused,
    deploy it in int8 (``quantize``)."""
    shape = getattr(model, "input_shape", input_shape)
    if shape is None:
        raise ConversionError("float32_graph needs the input shape (C, H, W) of a plain PyTorch module")
    net = from_torch(model, tuple(shape))
    net.eval()
    outputs: dict[str, torch.Tensor] = {}
    net(torch.zeros(1, *net.input_shape), outputs)

    def layer_for(st: _Step, prev: TensorInfo, flattened_from: tuple[int, ...] | None) -> Layer:
        entry = st.entry
        out = TensorInfo.float32(_nhwc(tuple(outputs[net.names[st.out]].shape[1:])))
        if st.kind == "add":
            raise ConversionError(f"layer {st.name}: a float32 graph has no ADD (float32 runs the paper's chain "
                                  "networks); deploy a residual network in int8 (quantize)")
        if st.kind in ("conv", "linear"):
            mod = getattr(net, st.name)
            w = mod.weight.detach().numpy().astype(np.float32)
            bias = mod.bias.detach().numpy().astype(np.float32)
            act = Activation.for_output(st.activation, out)
            no_scales = np.zeros(0, np.float32)
            if st.kind == "linear":
                return FullyConnected(np.ascontiguousarray(nhwc_columns(w, flattened_from)), bias, no_scales, act,
                                      out)
            depthwise = _depthwise(entry)
            padding = _tflite_padding(entry, st.pad, prev.shape[:2], out.shape[:2], f"layer {st.name}")
            cls = DepthwiseConv2D if depthwise else Conv2D
            fw = w.transpose(1, 2, 3, 0) if depthwise else w.transpose(0, 2, 3, 1)  # -> 1HWO / OHWI
            return cls(np.ascontiguousarray(fw), bias, no_scales, tuple(entry["stride"]), padding, act, out)
        if st.kind in ("maxpool", "avgpool"):
            return Pool2D("MAX" if st.kind == "maxpool" else "AVERAGE", tuple(entry["kernel"]),
                          tuple(entry["stride"]), "VALID", Activation.for_output("NONE", out), out)
        return Reshape(TensorInfo.float32((prev.size,)))  # flatten

    graph = _graph(net, TensorInfo.float32(_nhwc(tuple(net.input_shape))), name, layer_for)
    if softmax:
        graph = Graph(graph.input, [*graph.layers, Softmax(1.0, TensorInfo.float32(graph.output.shape))], name)
    return graph


def quantize_images(graph: Graph, images: np.ndarray) -> np.ndarray:
    """uint8 NHWC pixels -> the graph's input: int8 (exact for the default 1/255, -128 input), or, for a
    float32 input (a float32 graph, or an int8 one with a float boundary), the pixels scaled to [0, 1]
    as training saw them (``Dataset.as_float``)."""
    if (images.dtype == np.uint8 and np.isclose(graph.input.scale, INPUT_SCALE)
            and graph.input.zero_point == INPUT_ZERO_POINT):
        return (images.astype(np.int16) - 128).astype(np.int8)
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    return graph.input.quantize(x)
