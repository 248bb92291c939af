"""Host reference interpreter: the IR evaluated in numpy, bit-exact with TFLite Micro's int8 kernels.

Accumulation happens in float64 BLAS matmuls: every int8 x int8 product and every partial sum stays
far below 2**53, so float64 is exact while being much faster than numpy's integer matmul.
Requantization then runs in int64 with TFLM's fixed-point rules (``fixedpoint``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .fixedpoint import multiply_by_quantized_multiplier
from .ir import (
    Add,
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Graph,
    Layer,
    Pool2D,
    Reshape,
    TensorInfo,
    add_requantization,
    output_size,
    requantization,
)

BATCH = 500  # images per chunk; bounds the im2col buffers to a few hundred MB


def _pad(x: np.ndarray, layer: Layer, kh: int, kw: int, value: int) -> np.ndarray:
    """Pad NHWC so that a VALID sliding window gives the SAME/VALID output; pads hold ``value``."""
    n, h, w, c = x.shape
    oh, top = output_size(h, kh, layer.stride[0], layer.padding)
    ow, left = output_size(w, kw, layer.stride[1], layer.padding)
    bottom = max((oh - 1) * layer.stride[0] + kh - h - top, 0)
    right = max((ow - 1) * layer.stride[1] + kw - w - left, 0)
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, kh: int, kw: int, stride: tuple[int, int]) -> np.ndarray:
    """(N, OH, OW, C, KH, KW) view of all windows."""
    return sliding_window_view(x, (kh, kw), axis=(1, 2))[:, :: stride[0], :: stride[1]]


def _finish(acc: np.ndarray, layer: Layer, inp: TensorInfo) -> np.ndarray:
    rq = requantization(layer, inp)
    out = multiply_by_quantized_multiplier(acc, rq.multiplier, rq.shift) + rq.output_offset
    return np.clip(out, layer.activation.min, layer.activation.max).astype(np.int8)


def _conv(x: np.ndarray, layer: Conv2D, inp: TensorInfo) -> np.ndarray:
    o, kh, kw, _ = layer.weights.shape
    xs = _pad(x.astype(np.float64) - inp.zero_point, layer, kh, kw, 0)
    win = _windows(xs, kh, kw, layer.stride)                      # N, OH, OW, C, KH, KW
    n, oh, ow = win.shape[:3]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, -1)  # KH, KW, C order = OHWI
    acc = cols @ layer.weights.reshape(o, -1).T.astype(np.float64)
    acc = acc.reshape(n, oh, ow, o).astype(np.int64) + layer.bias
    return _finish(acc, layer, inp)


def _depthwise(x: np.ndarray, layer: DepthwiseConv2D, inp: TensorInfo) -> np.ndarray:
    _, kh, kw, o = layer.weights.shape
    mult = o // x.shape[3]
    xs = _pad(x.astype(np.float64) - inp.zero_point, layer, kh, kw, 0)
    win = _windows(xs, kh, kw, layer.stride)                      # N, OH, OW, C, KH, KW
    win = np.repeat(win, mult, axis=3)                            # output channel o reads input o // mult
    acc = np.einsum("nhwokl,klo->nhwo", win, layer.weights[0].astype(np.float64))
    return _finish(acc.astype(np.int64) + layer.bias, layer, inp)


def _fully_connected(x: np.ndarray, layer: FullyConnected, inp: TensorInfo) -> np.ndarray:
    xs = x.reshape(len(x), -1).astype(np.float64) - inp.zero_point
    acc = (xs @ layer.weights.T.astype(np.float64)).astype(np.int64) + layer.bias
    return _finish(acc, layer, inp)


def _pool(x: np.ndarray, layer: Pool2D) -> np.ndarray:
    kh, kw = layer.size
    act = layer.activation
    if layer.kind == "MAX":
        xs = _pad(x.astype(np.int16), layer, kh, kw, -129)        # below int8: never the max
        out = _windows(xs, kh, kw, layer.stride).max(axis=(4, 5))
    else:
        valid = _pad(np.ones(x.shape[:3] + (1,), np.int64), layer, kh, kw, 0)
        xs = _pad(x.astype(np.int64), layer, kh, kw, 0)
        total = _windows(xs, kh, kw, layer.stride).sum(axis=(4, 5))
        count = _windows(valid, kh, kw, layer.stride).sum(axis=(4, 5))
        # TFLM rounds the average half away from zero with integer division
        half = count // 2
        out = np.where(total > 0, (total + half) // count, -((-total + half) // count))
    return np.clip(out, act.min, act.max).astype(np.int8)


def _add(a: np.ndarray, b: np.ndarray, layer: Add, ta: TensorInfo, tb: TensorInfo) -> np.ndarray:
    """TFLM's int8 ADD, step for step: offset and shift each input up by 2^20, scale each to the
    common scale (a rounding multiply), add, scale the sum to the output (a second rounding), add
    the output zero point, clamp. Every intermediate fits int32, so int64 here is exact."""
    rq = add_requantization(ta, tb, layer.output)
    scaled = [multiply_by_quantized_multiplier((x.astype(np.int64) + off) << rq.left_shift, m, s)
              for x, off, m, s in zip((a, b), rq.input_offsets, rq.input_multipliers, rq.input_shifts, strict=True)]
    out = multiply_by_quantized_multiplier(scaled[0] + scaled[1], rq.output_multiplier, rq.output_shift)
    out = out + rq.output_offset
    return np.clip(out, layer.activation.min, layer.activation.max).astype(np.int8)


def run_layer(x: np.ndarray, layer: Layer, inp: TensorInfo) -> np.ndarray:
    """One layer on a batch of int8 NHWC (or N, features) tensors."""
    if isinstance(layer, Conv2D):
        return _conv(x, layer, inp)
    if isinstance(layer, DepthwiseConv2D):
        return _depthwise(x, layer, inp)
    if isinstance(layer, FullyConnected):
        return _fully_connected(x, layer, inp)
    if isinstance(layer, Pool2D):
        return _pool(x, layer)
    if isinstance(layer, Reshape):
        return x.reshape((len(x),) + layer.output.shape)
    raise TypeError(f"no reference kernel for {type(layer).__name__}")


def run(graph: Graph, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """int8 inputs (N, *input shape) -> int8 outputs (N, *output shape)."""
    x = np.asarray(x)
    if x.dtype != np.int8:
        raise TypeError(f"reference input must be int8, got {x.dtype}; quantize with graph.input.quantize")
    if x.shape[1:] != graph.input.shape:
        raise ValueError(f"input shape {x.shape[1:]} does not match the model's {graph.input.shape}")
    outs = [_run_batch(graph, x[i:i + batch]) for i in range(0, len(x), batch)]
    if not outs:
        return np.zeros((0,) + graph.output.shape, np.int8)
    return np.concatenate(outs)


def _run_batch(graph: Graph, x: np.ndarray) -> np.ndarray:
    """One chunk through the graph, holding each tensor only until its last reader ran."""
    values = {0: x}
    last = graph.last_reads()
    for i, layer, inp in graph.steps():
        args = [values[t] for t in graph.reads[i]]
        if isinstance(layer, Add):
            y = _add(args[0], args[1], layer, *graph.inputs_of(i))
        else:
            y = run_layer(args[0], layer, inp)
        for t in set(graph.reads[i]):
            if last[t] == i:
                del values[t]
        values[i + 1] = y
    return values[len(graph.layers)]
