"""Pieces the reference kernels of several ops share: padding and sliding windows over batched NHWC
arrays, the int8 requantization that ends every weighted op, and TFLM's float32 clamp.

How the reference stays bit-exact is told in ``powerprune.reference``; these helpers only move data
(padding, views) or apply ``fixedpoint``'s arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..fixedpoint import multiply_by_quantized_multiplier
from .base import Activation, TensorInfo, output_size, requantization

F32_LOWEST = np.float32(-np.finfo(np.float32).max)


def pad_for_window(x: np.ndarray, layer: Any, kh: int, kw: int, value: int | float) -> np.ndarray:
    """Pad NHWC so that a VALID sliding window gives the SAME/VALID output; pads hold ``value``."""
    n, h, w, c = x.shape
    oh, top = output_size(h, kh, layer.stride[0], layer.padding)
    ow, left = output_size(w, kw, layer.stride[1], layer.padding)
    bottom = max((oh - 1) * layer.stride[0] + kh - h - top, 0)
    right = max((ow - 1) * layer.stride[1] + kw - w - left, 0)
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def windows(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int]) -> np.ndarray:
    """(N, OH, OW, C, KH, KW) view of all windows."""
    return sliding_window_view(x, (kh, kw), axis=(1, 2))[:, :: stride[0], :: stride[1]]


def finish(acc: np.ndarray, layer: Any, inp: TensorInfo) -> np.ndarray:
    """int32 accumulators of a weighted op -> its int8 output: per-channel requantization, the output
    zero point, the fused activation's clamp."""
    rq = requantization(layer, inp)
    out = multiply_by_quantized_multiplier(acc, rq.multiplier, rq.shift) + rq.output_offset
    return np.clip(out, layer.activation.min, layer.activation.max).astype(np.int8)


def activate_f32(x: np.ndarray, act: Activation) -> np.ndarray:
    """TFLM's ActivationFunctionWithMinMax: min(max(x, lo), hi) with std::max(a, b) = a < b ? b : a and
    std::min(a, b) = b < a ? b : a, which decide signed zeros and NaN as numpy's maximum would not."""
    lo, hi = np.float32(act.min), np.float32(act.max)
    x = np.where(x < lo, lo, x)
    return np.where(hi < x, hi, x).astype(np.float32)
