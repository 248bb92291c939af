"""Post-training full-integer quantization: a float network becomes an int8 ``Graph``.

Follows the TFLite int8 spec the official converter uses: activation ranges from calibration images
(min/max, always including 0), per-channel symmetric conv weights, per-tensor symmetric FC weights,
int32 biases at input scale x weight scale. A pruned zero quantizes to exactly 0, and an APoZ model
quantizes to its smaller shapes because the IR is built from the actual tensors.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .data import Dataset
from .fixedpoint import round_half_away
from .ir import Activation, Conv2D, DepthwiseConv2D, FullyConnected, Graph, Pool2D, Reshape, TensorInfo
from .seqnet import ConversionError, SeqNet, from_torch

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


def _tflite_padding(entry: dict, in_hw: tuple[int, int], out_hw: tuple[int, int], where: str) -> str:
    """TFLite knows SAME and VALID only; say which one PyTorch's symmetric zero padding is."""
    if tuple(entry["padding"]) == (0, 0):
        return "VALID"
    for size, out, k, s, p in zip(in_hw, out_hw, entry["kernel"], entry["stride"], entry["padding"], strict=True):
        total = max((out - 1) * s + k - size, 0)
        if out != -(-size // s) or total // 2 != p:
            raise ConversionError(f"{where}: padding {tuple(entry['padding'])} with kernel {tuple(entry['kernel'])} "
                                  f"and stride {tuple(entry['stride'])} is neither TFLite SAME nor VALID")
    return "SAME"


def quantize(model: nn.Module, calibration: Dataset, name: str = "lenet5") -> Graph:
    """Full-integer quantization of ``model`` (a SeqNet such as ``lenet5()``, or any PyTorch chain of supported
    layers) with ranges from ``calibration`` (a few hundred training images are enough; TFLite's
    converter typically uses 100-500)."""
    if len(calibration) == 0:
        raise ValueError("calibration needs at least one image")
    h, w_, c = calibration.images.shape[1:]
    net = from_torch(model, getattr(model, "input_shape", (c, h, w_)))
    if tuple(net.input_shape) != (c, h, w_):
        raise ConversionError(f"the model takes images of shape {net.input_shape} (C, H, W), "
                              f"the calibration data has {(c, h, w_)}")
    ranges, shapes = activation_ranges(net, calibration)
    prev = TensorInfo((h, w_, c), INPUT_SCALE, INPUT_ZERO_POINT)
    inp, layers = prev, []
    flattened_from: tuple[int, ...] | None = None
    i = 0
    while i < len(net.spec):
        entry, lname = net.spec[i], net.names[i]
        where = f"layer {lname}"
        kind = entry["type"]
        if kind in ("conv", "linear"):
            act, out_name, step = "NONE", lname, 1
            if i + 1 < len(net.spec) and net.spec[i + 1]["type"] in ("relu", "relu6"):
                act, out_name, step = net.spec[i + 1]["type"].upper(), net.names[i + 1], 2
            mod = getattr(net, lname)
            out = activation_quant(_nhwc(shapes[out_name]), *ranges[out_name])
            w, bias = mod.weight.detach().numpy(), mod.bias.detach().numpy()
            if kind == "conv":
                depthwise = entry["groups"] > 1
                scales = _weight_scales(w, per_channel=True)
                padding = _tflite_padding(entry, prev.shape[:2], out.shape[:2], where)
                q = _quant_weights(w, scales)
                cls = DepthwiseConv2D if depthwise else Conv2D
                qw = q.transpose(1, 2, 3, 0) if depthwise else q.transpose(0, 2, 3, 1)  # -> 1HWO / OHWI
                layers.append(cls(np.ascontiguousarray(qw), _quant_bias(bias, prev.scale, scales), scales,
                                  tuple(entry["stride"]), padding, Activation.for_output(act, out), out))
            else:
                if flattened_from is not None and len(flattened_from) == 3:
                    # PyTorch flattens NCHW, TFLite NHWC: reorder the input columns to match
                    fh, fw, fc = flattened_from
                    w = w.reshape(w.shape[0], fc, fh, fw).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
                flattened_from = None
                scales = _weight_scales(w, per_channel=False)
                layers.append(FullyConnected(_quant_weights(w, scales), _quant_bias(bias, prev.scale, scales),
                                             scales, Activation.for_output(act, out), out))
            prev = out
            i += step
            continue
        if kind in ("maxpool", "avgpool"):
            out = TensorInfo(_nhwc(shapes[lname]), prev.scale, prev.zero_point)
            layers.append(Pool2D("MAX" if kind == "maxpool" else "AVERAGE", tuple(entry["kernel"]),
                                 tuple(entry["stride"]), "VALID", Activation("NONE", -128, 127), out))
        elif kind == "flatten":
            flattened_from = prev.shape
            out = TensorInfo((prev.size,), prev.scale, prev.zero_point)
            layers.append(Reshape(out))
        else:
            raise ConversionError(f"{where}: a {kind} that does not follow a conv or linear layer cannot be "
                                  "fused; TFLite int8 has no standalone ReLU here")
        prev = out
        i += 1
    return Graph(inp, layers, name)


def quantize_images(graph: Graph, images: np.ndarray) -> np.ndarray:
    """uint8 NHWC pixels -> the graph's int8 input (exact for the default 1/255, -128 input)."""
    if (images.dtype == np.uint8 and np.isclose(graph.input.scale, INPUT_SCALE)
            and graph.input.zero_point == INPUT_ZERO_POINT):
        return (images.astype(np.int16) - 128).astype(np.int8)
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    return graph.input.quantize(x)
