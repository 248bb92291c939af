"""TFLite's integer requantization arithmetic, vectorized in numpy.

These few functions decide bit-exactness: every int8 layer ends with
``MultiplyByQuantizedMultiplier`` (TFLM's default, double-rounding variant), and the multiplier and
shift come from ``QuantizeMultiplier`` applied to float scales exactly as TFLM computes them at
Prepare time. The host reference, the exporter and the C code generator all take their numbers here.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def round_half_away(x):
    """Round to nearest, ties away from zero (C's std::round, which TFLite uses everywhere)."""
    return np.floor(np.abs(x) + 0.5) * np.sign(x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(q31 significand, power-of-two exponent) with real = q * 2**(shift - 31), TFLM's rounding."""
    if real == 0.0:
        return 0, 0
    frac, shift = math.frexp(real)
    q = math.floor(abs(frac) * (1 << 31) + 0.5)  # std::round: half away from zero
    q = q if frac >= 0 else -q
    if q == (1 << 31):
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q), int(shift)


def real_multiplier(input_scale: float, weight_scale: float, output_scale: float) -> float:
    """Effective scale input x weight / output as TFLM's Prepare forms it for every weighted op.

    The scales are float32 in the flatbuffer; TFLM widens each to double *before* multiplying
    (``GetQuantizedConvolutionMultipler``, shared by CONV_2D, DEPTHWISE_CONV_2D and
    FULLY_CONNECTED). Forming the product in float32 instead changes the last bits of the q31
    multiplier, and an accumulator near a rounding tie then lands one step off.
    """
    return float(np.float32(input_scale)) * float(np.float32(weight_scale)) / float(np.float32(output_scale))


# TFLM's int8 ADD first moves both inputs 20 bits up, so that rescaling them to a common scale (a
# multiplier < 1) loses no precision: |x - zero point| <= 255 keeps the shifted value below 2^28.
ADD_LEFT_SHIFT = 20


def add_real_multipliers(scale1: float, scale2: float, output_scale: float) -> tuple[float, float, float]:
    """(input 1, input 2, output) real multipliers of an int8 ADD as TFLM's Prepare forms them.

    Both inputs go to a common scale of twice the larger input scale (so each multiplier is at most
    1/2), and the sum comes back from that scale, 2^20 finer, to the output's. The larger scale is
    picked among the float32 scales and only then widened to double, as TFLM does.
    """
    s1, s2, so = (float(np.float32(s)) for s in (scale1, scale2, output_scale))
    twice_max = 2.0 * max(s1, s2)
    return s1 / twice_max, s2 / twice_max, twice_max / (float(1 << ADD_LEFT_SHIFT) * so)


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def saturating_rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    high = np.where(s >= 0, s >> 31, -((-s) >> 31))  # C integer division truncates toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x: np.ndarray, multiplier: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """TFLM's double-rounding requantization of int32 accumulators (broadcasts per channel)."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap32(np.asarray(x, dtype=np.int64) * (np.int64(1) << left))  # int32 in C
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)
