"""Post-training full-integer quantization: a float LeNet5 becomes an int8 ``Graph``.

Follows the TFLite int8 spec the official converter uses: activation ranges from calibration images
(min/max, always including 0), per-channel symmetric conv weights, per-tensor symmetric FC weights,
int32 biases at input scale x weight scale. A pruned zero quantizes to exactly 0, and an APoZ model
quantizes to its smaller shapes because the IR is built from the actual tensors.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import Dataset
from .fixedpoint import round_half_away
from .ir import Activation, Conv2D, FullyConnected, Graph, Pool2D, Reshape, TensorInfo
from .model import LeNet5

INPUT = TensorInfo((28, 28, 1), 1.0 / 255.0, -128)  # pixels 0..255 map to -128..127 exactly


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
def calibrate(model: LeNet5, data: Dataset) -> dict[str, tuple[float, float]]:
    """Min and max of every layer output (post-ReLU for hidden layers) over ``data``."""
    model.eval()
    ranges: dict[str, list[float]] = {}
    x = torch.from_numpy(data.as_float())
    for i in range(0, len(x), 1000):
        taps: dict[str, torch.Tensor] = {}
        taps["fc3"] = model(x[i:i + 1000], taps=taps)
        for name, t in taps.items():
            lo, hi = float(t.min()), float(t.max())
            r = ranges.setdefault(name, [lo, hi])
            r[0], r[1] = min(r[0], lo), max(r[1], hi)
    return {k: (v[0], v[1]) for k, v in ranges.items()}


def quantize(model: LeNet5, calibration: Dataset, name: str = "lenet5") -> Graph:
    """Full-integer quantization of ``model`` with ranges from ``calibration`` (a few hundred
    training images are enough; TFLite's converter typically uses 100-500)."""
    if len(calibration) == 0:
        raise ValueError("calibration needs at least one image")
    a = model.arch
    ranges = calibrate(model, calibration)
    s = a.image_size
    side2 = s // 2 - 4
    inp = TensorInfo((s, s, a.in_channels), INPUT.scale, INPUT.zero_point)
    layers = []
    prev = inp

    def conv(mod: torch.nn.Conv2d, key: str, hw: int, padding: str) -> TensorInfo:
        w = mod.weight.detach().numpy().transpose(0, 2, 3, 1)  # OIHW -> OHWI
        scales = _weight_scales(w, per_channel=True)
        out = activation_quant((hw, hw, w.shape[0]), *ranges[key])
        layers.append(Conv2D(_quant_weights(w, scales), _quant_bias(mod.bias.detach().numpy(), prev.scale, scales),
                             scales, (1, 1), padding, Activation.for_output("RELU", out), out))
        return out

    def pool(t: TensorInfo) -> TensorInfo:
        out = TensorInfo((t.shape[0] // 2, t.shape[1] // 2, t.shape[2]), t.scale, t.zero_point)
        layers.append(Pool2D("MAX", (2, 2), (2, 2), "VALID", Activation("NONE", -128, 127), out))
        return out

    def fc(mod: torch.nn.Linear, key: str, act: str, w: np.ndarray | None = None) -> TensorInfo:
        w = mod.weight.detach().numpy() if w is None else w
        scales = _weight_scales(w, per_channel=False)
        out = activation_quant((w.shape[0],), *ranges[key])
        layers.append(FullyConnected(_quant_weights(w, scales),
                                     _quant_bias(mod.bias.detach().numpy(), prev.scale, scales),
                                     scales, Activation.for_output(act, out), out))
        return out

    prev = conv(model.conv1, "conv1", s, "SAME")
    prev = pool(prev)
    prev = conv(model.conv2, "conv2", side2, "VALID")
    prev = pool(prev)
    flat = TensorInfo((prev.size,), prev.scale, prev.zero_point)
    layers.append(Reshape(flat))
    prev = flat
    # PyTorch flattens NCHW, TFLite NHWC: reorder fc1's input columns to match
    c2, hw = a.conv2, side2 // 2
    w1 = model.fc1.weight.detach().numpy().reshape(a.fc1, c2, hw, hw).transpose(0, 2, 3, 1).reshape(a.fc1, -1)
    prev = fc(model.fc1, "fc1", "RELU", w1)
    prev = fc(model.fc2, "fc2", "RELU")
    prev = fc(model.fc3, "fc3", "NONE")
    return Graph(inp, layers, name)


def quantize_images(graph: Graph, images: np.ndarray) -> np.ndarray:
    """uint8 NHWC pixels -> the graph's int8 input (exact for the default 1/255, -128 input)."""
    if images.dtype == np.uint8 and np.isclose(graph.input.scale, 1 / 255) and graph.input.zero_point == -128:
        return (images.astype(np.int16) - 128).astype(np.int8)
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
    return graph.input.quantize(x)
