"""Host reference interpreter: the IR evaluated in numpy, bit-exact with TFLite Micro's int8 kernels
and with its float32 reference kernels.

int8: accumulation happens in float64 BLAS matmuls: every int8 x int8 product and every partial sum
stays far below 2**53, so float64 is exact while being much faster than numpy's integer matmul.
Requantization then runs in int64 with TFLM's fixed-point rules (``fixedpoint``).

float32: float addition is not associative, so a matmul (which sums in its own order, in blocks and
with FMA) would differ from TFLM in the last bits. Instead every sum runs in TFLM's order, one term at a
time over the whole batch: an accumulator array starts at +0, and each weight tap adds its products
(numpy multiplies, then adds, each rounded to float32, as TFLM's scalar loop does). Out-of-image taps
are padded with zeros: TFLM skips them, and adding a zero product to a sum that starts at +0 never
changes it (a float32 sum starting at +0 is never -0). The SOFTMAX calls the C library's expf, the
function TFLM's std::exp(float) calls on this host.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .fixedpoint import (
    LOGISTIC_INPUT_INTEGER_BITS,
    SOFTMAX_DIFF_INTEGER_BITS,
    SOFTMAX_SUM_INTEGER_BITS,
    count_leading_zeros32,
    exp_on_negative_values,
    logistic_input_params,
    logistic_q,
    multiply_by_quantized_multiplier,
    one_over_one_plus_x_for_x_in_0_1,
    round_half_away,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    softmax_input_params,
    wrap32,
)
from .ir import (
    Add,
    Conv2D,
    DepthwiseConv2D,
    Dequantize,
    FullyConnected,
    Graph,
    Layer,
    Logistic,
    Mean,
    Pad,
    Pool2D,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
    add_requantization,
    mean_multiplier,
    output_size,
    requantization,
    requantize_multiplier,
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
    the output zero point, clamp (``AddRequant``). Every intermediate fits int32, so int64 here is exact."""
    rq = add_requantization(ta, tb, layer.output)
    total = rq.scaled_input(0, a) + rq.scaled_input(1, b)
    return rq.output(total, layer.activation.min, layer.activation.max).astype(np.int8)


class SoftmaxAbort(ValueError):
    """An input on which TFLM's int8 softmax stops with a failed TFLITE_CHECK instead of an output."""


def _softmax(x: np.ndarray, layer: Softmax, inp: TensorInfo) -> np.ndarray:
    """TFLM's integer softmax, row by row over the last axis: differences to the row maximum, rescaled
    by beta x input scale to Q5.26, exp in fixed point, their sum in Q12.19, its reciprocal, and each
    exp times the reciprocal rounded to 1/256 steps. Differences below diff_min count as exp = 0."""
    multiplier, shift, diff_min = softmax_input_params(layer.beta, inp.scale)
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    counts = diff >= diff_min
    scaled = saturating_rounding_doubling_high_mul(wrap32(diff * (1 << shift)), multiplier)
    exps = exp_on_negative_values(scaled, SOFTMAX_DIFF_INTEGER_BITS)                        # Q0.31
    terms = rounding_divide_by_pot(exps, SOFTMAX_SUM_INTEGER_BITS)                          # Q12.19
    total = wrap32(np.where(counts, terms, 0).sum(axis=1, keepdims=True))
    headroom = count_leading_zeros32(total)
    bits_over_unit = SOFTMAX_SUM_INTEGER_BITS - headroom
    reciprocal = one_over_one_plus_x_for_x_in_0_1(wrap32((total << headroom) - (1 << 31)))
    exponent = bits_over_unit + 31 - 8
    if (exponent > 31).any():
        raise SoftmaxAbort("the exponentials of a row sum to 512 or more, where TFLM's int8 softmax fails a "
                           "TFLITE_CHECK: it has no output for this input")
    out = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, exps), exponent) - 128
    out = np.where(counts, np.clip(out, -128, 127), -128)
    return out.astype(np.int8).reshape(x.shape)


def _logistic(x: np.ndarray, inp: TensorInfo) -> np.ndarray:
    """TFLM's integer logistic: inputs beyond +-radius saturate, the rest are rescaled to Q4.27,
    go through gemmlowp's fixed-point logistic and are rounded to 1/256 steps from -128."""
    multiplier, shift, radius = logistic_input_params(inp.scale)
    v = x.astype(np.int64) - inp.zero_point
    saturated = np.where(v <= -radius, -128, 127)  # input 0 with radius 0 lands on -128, as in TFLM
    if radius == 0:
        return saturated.astype(np.int8)
    inside = np.clip(v, 1 - radius, radius - 1)  # |v| < radius keeps the Q4.27 rescale within int32
    q = logistic_q(multiply_by_quantized_multiplier(inside, multiplier, shift), LOGISTIC_INPUT_INTEGER_BITS)
    mid = np.clip(rounding_divide_by_pot(q, 31 - 8) - 128, -128, 127)
    return np.where((v > -radius) & (v < radius), mid, saturated).astype(np.int8)


def _mean(x: np.ndarray, layer: Mean, inp: TensorInfo) -> np.ndarray:
    """TFLM's int8 MEAN over H and W: the int32 sum of each channel minus n x input zero point,
    requantized with 1/n folded into the multiplier (``mean_multiplier``), plus the output zero point."""
    n = inp.shape[0] * inp.shape[1]
    centered = wrap32(x.astype(np.int64).sum(axis=(1, 2)) - inp.zero_point * n)
    multiplier, shift = mean_multiplier(inp, layer.output)
    out = multiply_by_quantized_multiplier(centered, multiplier, shift) + layer.output.zero_point
    return np.clip(out, -128, 127).astype(np.int8).reshape((len(x),) + layer.output.shape)


def _pad_op(x: np.ndarray, layer: Pad) -> np.ndarray:
    """Constant padding with the output zero point (TFLM's PAD without a constant_values input)."""
    return np.pad(x, ((0, 0), *layer.paddings), constant_values=layer.output.zero_point)


def _quantize(x: np.ndarray, layer: Quantize, inp: TensorInfo) -> np.ndarray:
    """float32 -> int8: round(x / scale) (float32 division, half away from zero) + zero point, clamped;
    int8 -> int8: TFLM's Requantize with the multiplier of input scale / output scale."""
    out = layer.output
    if inp.is_float:
        with np.errstate(invalid="ignore", over="ignore"):
            q = round_half_away(x.astype(np.float32) / np.float32(out.scale))
            # TFLM casts the rounded float to int32: undefined in C++ when out of range (or NaN); on the
            # x86 host the oracle runs on, that yields INT32_MIN, which the zero point then wraps
            v = np.where((q >= -(2.0**31)) & (q < 2.0**31), q, -(2.0**31)).astype(np.int64)
        return np.clip(wrap32(v + out.zero_point), -128, 127).astype(np.int8)
    multiplier, shift = requantize_multiplier(inp, out)
    v = multiply_by_quantized_multiplier(x.astype(np.int64) - inp.zero_point, multiplier, shift) + out.zero_point
    return np.clip(v, -128, 127).astype(np.int8)


# --- float32, in TFLM's order of operations ---------------------------------------------------------

F32_LOWEST = np.float32(-np.finfo(np.float32).max)


def _activate_f32(x: np.ndarray, act) -> np.ndarray:
    """TFLM's ActivationFunctionWithMinMax: min(max(x, lo), hi) with std::max(a, b) = a < b ? b : a and
    std::min(a, b) = b < a ? b : a, which decide signed zeros and NaN as numpy's maximum would not."""
    lo, hi = np.float32(act.min), np.float32(act.max)
    x = np.where(x < lo, lo, x)
    return np.where(hi < x, hi, x).astype(np.float32)


def _conv_f32(x: np.ndarray, layer: Conv2D | DepthwiseConv2D, inp: TensorInfo) -> np.ndarray:
    depthwise = isinstance(layer, DepthwiseConv2D)
    kh, kw = layer.weights.shape[1:3]
    out_c = layer.output.shape[2]
    win = _windows(_pad(x, layer, kh, kw, 0.0), kh, kw, layer.stride)       # N, OH, OW, C, KH, KW
    acc = np.zeros(win.shape[:3] + (out_c,), np.float32)
    if depthwise:  # one tap per output channel: channel o reads input channel o // multiplier
        src = np.arange(out_c) // (out_c // inp.shape[2])
        for ky in range(kh):
            for kx in range(kw):
                acc += win[:, :, :, src, ky, kx] * layer.weights[0, ky, kx]
    else:  # TFLM's tap order: filter y, filter x, input channel
        for ky in range(kh):
            for kx in range(kw):
                for ic in range(inp.shape[2]):
                    acc += win[:, :, :, ic, ky, kx, None] * layer.weights[:, ky, kx, ic]
    return _activate_f32(acc + layer.bias, layer.activation)


def _fully_connected_f32(x: np.ndarray, layer: FullyConnected) -> np.ndarray:
    xs = x.reshape(len(x), -1)
    acc = np.zeros((len(x), layer.weights.shape[0]), np.float32)
    for d in range(xs.shape[1]):
        acc += xs[:, d, None] * layer.weights[:, d]
    return _activate_f32(acc + layer.bias, layer.activation)


def _pool_f32(x: np.ndarray, layer: Pool2D) -> np.ndarray:
    """TFLM clamps the window to the image; a pad that can never win (max) or adds +0 (average) is the
    same, and the average divides by the number of real taps."""
    kh, kw = layer.size
    if layer.kind == "MAX":
        win = _windows(_pad(x, layer, kh, kw, -np.inf), kh, kw, layer.stride)
        out = np.full(win.shape[:4], F32_LOWEST, np.float32)
        for ky in range(kh):
            for kx in range(kw):
                v = win[..., ky, kx]
                out = np.where(out < v, v, out)
    else:
        win = _windows(_pad(x, layer, kh, kw, 0.0), kh, kw, layer.stride)
        valid = _windows(_pad(np.ones(x.shape[:3] + (1,), np.float32), layer, kh, kw, 0.0), kh, kw, layer.stride)
        total = np.zeros(win.shape[:4], np.float32)
        for ky in range(kh):
            for kx in range(kw):
                total += win[..., ky, kx]
        out = total / valid.sum(axis=(4, 5), dtype=np.float32)
    return _activate_f32(out, layer.activation)


@functools.cache
def _libm_expf():
    name = ctypes.util.find_library("m") or "libm.so.6"
    f = ctypes.CDLL(name).expf
    f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    return f


def expf(x: np.ndarray) -> np.ndarray:
    """The C library's expf element by element (numpy's own float32 exp rounds differently)."""
    f = _libm_expf()
    flat = np.asarray(x, np.float32).ravel()
    return np.fromiter((f(float(v)) for v in flat), np.float32, len(flat)).reshape(np.shape(x))


def softmax_arguments(x: np.ndarray, beta: float) -> np.ndarray:
    """What TFLM's float softmax passes to expf, row by row over the last axis: (x - row max) * beta."""
    rows = x.reshape(-1, x.shape[-1])
    top = np.full(len(rows), F32_LOWEST, np.float32)
    for c in range(rows.shape[1]):
        top = np.where(top < rows[:, c], rows[:, c], top)
    return (rows - top[:, None]) * np.float32(beta)


def softmax_from_exponentials(e: np.ndarray) -> np.ndarray:
    """The rest of TFLM's float softmax: the exponentials (rows x depth) summed in order, each divided."""
    total = np.zeros(len(e), np.float32)
    for c in range(e.shape[1]):
        total += e[:, c]
    return e / total[:, None]


def _softmax_f32(x: np.ndarray, layer: Softmax) -> np.ndarray:
    return softmax_from_exponentials(expf(softmax_arguments(x, layer.beta))).reshape(x.shape)


def _run_layer_f32(x: np.ndarray, layer: Layer, inp: TensorInfo) -> np.ndarray:
    if isinstance(layer, Conv2D | DepthwiseConv2D):
        return _conv_f32(x, layer, inp)
    if isinstance(layer, FullyConnected):
        return _fully_connected_f32(x, layer)
    if isinstance(layer, Pool2D):
        return _pool_f32(x, layer)
    if isinstance(layer, Softmax):
        return _softmax_f32(x, layer)
    if isinstance(layer, Reshape):
        return x.reshape((len(x),) + layer.output.shape)
    raise TypeError(f"no float32 reference kernel for {type(layer).__name__}")


def run_layer(x: np.ndarray, layer: Layer, inp: TensorInfo) -> np.ndarray:
    """One layer on a batch of int8 (or float32) NHWC (or N, features) tensors. A layer that reads and
    writes float32 belongs to a float32 graph and runs TFLM's float kernels; QUANTIZE and DEQUANTIZE
    (float32 on one side only) are int8 layers at a float boundary."""
    if inp.is_float and layer.output.is_float:
        return _run_layer_f32(x, layer, inp)
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
    if isinstance(layer, Softmax):
        return _softmax(x, layer, inp)
    if isinstance(layer, Logistic):
        return _logistic(x, inp)
    if isinstance(layer, Mean):
        return _mean(x, layer, inp)
    if isinstance(layer, Pad):
        return _pad_op(x, layer)
    if isinstance(layer, Quantize):
        return _quantize(x, layer, inp)
    if isinstance(layer, Dequantize):
        # scale x (q - zero point) as one float32 multiplication, as TFLM's reference Dequantize
        return (np.float32(inp.scale) * (x.astype(np.float32) - np.float32(inp.zero_point))).astype(np.float32)
    raise TypeError(f"no reference kernel for {type(layer).__name__}")


def run(graph: Graph, x: np.ndarray, batch: int = BATCH) -> np.ndarray:
    """Inputs (N, *input shape) -> outputs (N, *output shape): int8 (float32 at an int8 model's float
    boundary), or float32 throughout for a float32 graph."""
    x = np.asarray(x)
    if x.dtype != graph.input.np_dtype:
        raise TypeError(f"reference input must be {graph.input.dtype}, got {x.dtype}; convert with "
                        "graph.input.quantize")
    if x.shape[1:] != graph.input.shape:
        raise ValueError(f"input shape {x.shape[1:]} does not match the model's {graph.input.shape}")
    outs = [_run_batch(graph, x[i:i + batch]) for i in range(0, len(x), batch)]
    if not outs:
        return np.zeros((0,) + graph.output.shape, graph.output.np_dtype)
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
            try:
                y = run_layer(args[0], layer, inp)
            except SoftmaxAbort as exc:
                raise SoftmaxAbort(f"layer {i} ({layer.op}): {exc}") from None
        for t in set(graph.reads[i]):
            if last[t] == i:
                del values[t]
        values[i + 1] = y
    return values[len(graph.layers)]
