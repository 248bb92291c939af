"""Rounding ties built on purpose: host == TFLM == every kernel set on the virtual Pico.

A test on trained weights finds a rounding fault only when the weights happen to put an accumulator
next to a tie; a fresh machine trains other weights. These cases are constructed so that the fault
cannot hide:

* *near ties*: float32 scales for which the scale product formed in float32 and in double give
  different q31 multipliers, and biases that put each channel's accumulator where the two
  multipliers round to different int8 outputs. The test first checks that the case discriminates
  (the float32 product really gives other outputs), then that host, TFLM and firmware agree.
* *exact ties*: power-of-two effective scales 2^-1 ... 2^-6, where half-way results are exact, with
  accumulators of both signs at every tie; TFLM rounds these in two steps (rounding doubling high
  multiply, then rounding right shift), which is where a kernel taking a shortcut goes wrong.

FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D each get both kinds.
"""

from __future__ import annotations

import numpy as np
import pytest

from powerprune.fixedpoint import multiply_by_quantized_multiplier, quantize_multiplier, real_multiplier
from powerprune.ir import Activation, Conv2D, DepthwiseConv2D, FullyConnected, Graph, Reshape, TensorInfo
from powerprune.mcu.codegen import KERNEL_SETS
from powerprune.mcu.profile import run_on_rp2040
from powerprune.oracle import tflm_run
from powerprune.reference import run
from powerprune.tflite import export_tflite

pytestmark = pytest.mark.slow  # every case runs on every kernel set on the virtual Pico

OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
NO_CLAMP = Activation("NONE", -128, 127)
WINDOW = 3     # conv cases: a 3x3 kernel over a 3x3 input, one output pixel per channel
FC_TAPS = 16


def float32_product_multiplier(s_in: float, s_w: float, s_out: float) -> tuple[int, int]:
    """The multiplier a kernel gets if it multiplies input and weight scale in float32 first."""
    return quantize_multiplier(float(np.float32(s_in) * np.float32(s_w)) / float(np.float32(s_out)))


def requantize(acc: np.ndarray, pair: tuple[int, int]) -> np.ndarray:
    return multiply_by_quantized_multiplier(acc, np.int64(pair[0]), np.int64(pair[1]))


def near_tie_accumulators(s_in: float, s_w: float, s_out: float) -> np.ndarray:
    """Accumulators (results within +-90) that the float32 and the double scale product round apart."""
    exact = quantize_multiplier(real_multiplier(s_in, s_w, s_out))
    old = float32_product_multiplier(s_in, s_w, s_out)
    halves = (np.arange(-90, 90) + 0.5) / real_multiplier(s_in, s_w, s_out)
    acc = np.round(halves[:, None] + np.arange(-64, 65)[None, :]).astype(np.int64).ravel()
    acc = acc[np.abs(acc) < 2**24]
    return acc[requantize(acc, exact) != requantize(acc, old)]


def window_shape(op: str, channels: int) -> tuple[int, ...]:
    if op == "FULLY_CONNECTED":
        return (FC_TAPS,)
    return (WINDOW, WINDOW, channels if op == "DEPTHWISE_CONV_2D" else 1)


def dot(op: str, x: np.ndarray, zero_point: int, weights: np.ndarray) -> np.ndarray:
    """Accumulators without bias, (rows, channels), for weights given as (channels, taps)."""
    xs = x.astype(np.int64) - zero_point
    if op == "DEPTHWISE_CONV_2D":  # output channel c reads only input channel c
        return np.einsum("ntc,ct->nc", xs.reshape(len(x), -1, weights.shape[0]), weights.astype(np.int64))
    return xs.reshape(len(x), -1) @ weights.astype(np.int64).T


def build(op: str, weights: np.ndarray, bias: np.ndarray, scales: np.ndarray, inp: TensorInfo,
          s_out: float) -> Graph:
    """One ``op`` layer with weights given as (channels, taps), followed by a flatten for convs."""
    channels = len(bias)
    if op == "FULLY_CONNECTED":
        out = TensorInfo((channels,), s_out, 0)
        return Graph(inp, [FullyConnected(weights, bias, scales, NO_CLAMP, out)])
    out = TensorInfo((1, 1, channels), s_out, 0)
    if op == "CONV_2D":
        layer = Conv2D(weights.reshape(channels, WINDOW, WINDOW, 1), bias, scales, (1, 1), "VALID", NO_CLAMP, out)
    else:
        layer = DepthwiseConv2D(np.ascontiguousarray(weights.T).reshape(1, WINDOW, WINDOW, channels), bias,
                                scales, (1, 1), "VALID", NO_CLAMP, out)
    return Graph(inp, [layer, Reshape(TensorInfo((channels,), s_out, 0))])


def near_tie_case(op: str, seed: int, channels: int = 12) -> tuple[Graph, np.ndarray, np.ndarray]:
    """(graph, inputs, what the float32 product would output for row 0). Row 0 puts every channel
    at a discriminating near tie; rows 1.. are random."""
    rng = np.random.default_rng(seed)
    s_in, s_out = float(np.float32(10 ** rng.uniform(-3, -1))), float(np.float32(10 ** rng.uniform(-2, 0)))
    zero_point = int(rng.integers(-20, 20))
    # converters write FC with one weight scale (per tensor); convs get one per channel
    n_scales = 1 if op == "FULLY_CONNECTED" else channels
    scales: list[float] = []
    targets: list[int] = []
    while len(scales) < n_scales:
        s_w = float(np.float32(10 ** rng.uniform(-4, -1.5)))
        ties = near_tie_accumulators(s_in, s_w, s_out)
        if len(ties):
            scales.append(s_w)
            targets += [int(t) for t in rng.choice(ties, size=channels // n_scales)]
    taps = int(np.prod(window_shape(op, channels))) // (channels if op == "DEPTHWISE_CONV_2D" else 1)
    weights = rng.integers(-127, 128, size=(channels, taps)).astype(np.int8)
    x = rng.integers(-128, 128, size=(8,) + window_shape(op, channels)).astype(np.int8)
    bias = (np.array(targets) - dot(op, x[:1], zero_point, weights)[0]).astype(np.int32)
    graph = build(op, weights, bias, np.array(scales, np.float32), TensorInfo(x.shape[1:], s_in, zero_point), s_out)
    old = np.array([requantize(np.array([t]), float32_product_multiplier(s_in, scales[c % n_scales], s_out))[0]
                    for c, t in enumerate(targets)])
    return graph, x, old


def exact_tie_case(op: str, seed: int, channels: int = 6) -> tuple[Graph, np.ndarray, np.ndarray]:
    """(graph, inputs, accumulators): channel c has effective scale 2^-(c+1), so every accumulator
    that is an odd multiple of 2^c is an exact half-way case."""
    rng = np.random.default_rng(seed)
    s_in, s_out = 2.0**-4, 2.0**-8
    scales = np.array([2.0 ** -(c + 5) for c in range(channels)], np.float32)  # s_in * s_w / s_out = 2^-(c+1)
    taps = FC_TAPS if op == "FULLY_CONNECTED" else WINDOW * WINDOW
    weights = rng.integers(-4, 5, size=(channels, taps)).astype(np.int8)
    zero_point = int(rng.integers(-20, 20))
    x = (zero_point + rng.integers(-7, 8, size=(256,) + window_shape(op, channels))).astype(np.int8)
    bias = np.zeros(channels, np.int32)
    graph = build(op, weights, bias, scales, TensorInfo(x.shape[1:], s_in, zero_point), s_out)
    return graph, x, dot(op, x, zero_point, weights)


def agree_everywhere(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Host reference; asserts TFLM and every kernel set on the virtual Pico give the same bytes."""
    ours = run(graph, x).reshape(len(x), -1)
    theirs = tflm_run(export_tflite(graph), x).reshape(len(x), -1)
    assert np.array_equal(ours, theirs), f"host vs TFLM: {(ours != theirs).sum()} bytes differ"
    for kernels in KERNEL_SETS:
        pico = run_on_rp2040(graph, x, kernels=kernels).outputs.reshape(len(x), -1)
        assert np.array_equal(pico, ours), f"{kernels} vs host: {(pico != ours).sum()} bytes differ"
    return ours


@pytest.mark.parametrize("op", OPS)
def test_near_ties_where_a_float32_scale_product_rounds_apart_are_bit_exact(op):
    graph, x, old = near_tie_case(op, seed=OPS.index(op))
    ours = agree_everywhere(graph, x)
    # the case discriminates: a float32 scale product gives another answer on every channel
    assert np.all(ours[0] != old), "constructed case does not discriminate"


@pytest.mark.parametrize("op", OPS)
def test_exact_half_way_ties_of_both_signs_are_bit_exact(op):
    graph, x, acc = exact_tie_case(op, seed=10 + OPS.index(op))
    for c in range(acc.shape[1]):
        at_tie = acc[:, c] % 2 ** (c + 1) == 2**c
        assert (acc[at_tie, c] > 0).any() and (acc[at_tie, c] < 0).any(), f"channel {c} misses a tie sign"
    ours = agree_everywhere(graph, x)
    assert np.abs(ours.astype(int)).max() < 127, "a clamp would hide the rounding"
