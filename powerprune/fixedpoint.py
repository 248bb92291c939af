"""TFLite's integer requantization arithmetic, vectorized in numpy.

These few functions decide bit-exactness: every int8 layer ends with
``MultiplyByQuantizedMultiplier`` (TFLM's default, double-rounding variant), and the multiplier and
shift come from ``QuantizeMultiplier`` applied to float scales exactly as TFLM computes them at
Prepare time. The host reference, the exporter and the C code generator all take their numbers here.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

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


# --- gemmlowp's fixed-point transcendental functions (what TFLM's int8 SOFTMAX and LOGISTIC use) ----
#
# A raw int32 ``v`` in the format Q``ib``.``31 - ib`` stands for v / 2**(31 - ib). TFLM evaluates exp and
# 1 / (1 + x) on such numbers with gemmlowp's polynomial and Newton-Raphson recipes; every step rounds
# in a particular way, so the host has to take exactly the same steps to produce the same bits. The
# functions below work elementwise on int64 arrays holding int32 values and wrap where the C code adds
# or subtracts plain int32s. The C twin is kernels/pp_fixedpoint.h (tests/test_fixedpoint_c.py).


def q_constant(value: float, integer_bits: int) -> int:
    """``value`` as a raw Q``integer_bits`` number, rounded to nearest (how gemmlowp writes its constants)."""
    return int(round(value * 2.0 ** (31 - integer_bits)))


# exp(-1/8) and 1/3 (Taylor series around -1/8), exp(-2**k) for the barrel shifter, and the initial
# Newton-Raphson guess 48/17 - 32/17 x for 1 / (1 + x) in Q2.29
EXP_MINUS_ONE_EIGHTH = q_constant(math.exp(-1 / 8), 0)
ONE_THIRD = q_constant(1 / 3, 0)
EXP_MINUS_POW2 = {k: q_constant(math.exp(-(2.0**k)), 0) for k in range(-2, 5)}
FORTY_EIGHT_OVER_17 = q_constant(48 / 17, 2)
MINUS_32_OVER_17 = q_constant(-32 / 17, 2)


def wrap32(x: np.ndarray) -> np.ndarray:
    """int32 two's-complement wrap-around of an int64 array (what a C int32 addition does)."""
    return _wrap32(np.asarray(x))


def saturating_rounding_multiply_by_pot(x: np.ndarray, exponent: int) -> np.ndarray:
    """x * 2**exponent: a saturating left shift for exponent > 0, a rounding right shift for < 0."""
    x = np.asarray(x, dtype=np.int64)
    if exponent > 0:
        limit = (1 << (31 - exponent)) - 1
        return np.where(x > limit, INT32_MAX, np.where(x < -limit, INT32_MIN, x << exponent))
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    return x


def rounding_half_sum(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a + b) / 2 rounded half away from zero, in 64 bits so the sum cannot overflow."""
    s = np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)
    s = s + np.where(s >= 0, 1, -1)
    return np.where(s >= 0, s // 2, -((-s) // 2))  # C division truncates toward zero


def _exp_on_interval_minus_quarter_to_0(a: np.ndarray) -> np.ndarray:
    """exp(a) for a in [-1/4, 0), a and result in Q0.31: a Taylor polynomial around -1/8."""
    srdhm = saturating_rounding_doubling_high_mul
    x = wrap32(a + (1 << 28))  # x = a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(wrap32(srdhm(wrap32(x4_over_4 + x3), ONE_THIRD) + x2), -1)
    return wrap32(EXP_MINUS_ONE_EIGHTH + srdhm(EXP_MINUS_ONE_EIGHTH, wrap32(x + poly)))


def exp_on_negative_values(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """exp(a) for a <= 0 given in Q``integer_bits``; the result is Q0.31 (exp(0) saturates to the
    largest raw value). a = -(k/4 + r) with r in (0, 1/4]: exp(-r) by the polynomial, then one
    multiplication by exp(-2**j) for every bit j set in k."""
    a = np.asarray(a, dtype=np.int64)
    frac_bits = 31 - integer_bits
    quarter = 1 << (frac_bits - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_on_interval_minus_quarter_to_0(saturating_rounding_multiply_by_pot(a_mod, integer_bits))
    remainder = wrap32(a_mod - a)
    for k, multiplier in EXP_MINUS_POW2.items():
        if integer_bits > k:
            bit = np.int64(1) << (frac_bits + k)
            result = np.where(remainder & bit, saturating_rounding_doubling_high_mul(result, multiplier), result)
    if integer_bits > 5:  # below -32 the result is 0 (only formats with more than 5 integer bits reach it)
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a: np.ndarray) -> np.ndarray:
    """1 / (1 + a) for a in [0, 1) in Q0.31, by three Newton-Raphson steps on the half denominator
    (intermediates in Q2.29)."""
    srdhm = saturating_rounding_doubling_high_mul
    half_denominator = rounding_half_sum(a, INT32_MAX)
    x = wrap32(FORTY_EIGHT_OVER_17 + srdhm(half_denominator, MINUS_32_OVER_17))
    for _ in range(3):
        one_minus = wrap32((1 << 29) - srdhm(half_denominator, x))
        x = wrap32(x + saturating_rounding_multiply_by_pot(srdhm(x, one_minus), 2))
    return saturating_rounding_multiply_by_pot(x, 1)  # x / 2 (Q1.30) read as Q0.31


def logistic_q(a: np.ndarray, integer_bits: int) -> np.ndarray:
    """1 / (1 + exp(-a)) for any a in Q``integer_bits``, result in Q0.31: computed for |a| and
    mirrored as 1 - f(|a|) for negative a; logistic(0) is exactly 1/2."""
    a = np.asarray(a, dtype=np.int64)
    abs_a = np.where(a > 0, a, wrap32(-a))
    positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(wrap32(-abs_a), integer_bits))
    result = np.where(a > 0, positive, wrap32(INT32_MAX - positive))
    return np.where(a == 0, 1 << 30, result)


def count_leading_zeros32(x: np.ndarray) -> np.ndarray:
    """Leading zero bits of x read as uint32 (32 for 0)."""
    u = np.asarray(x, dtype=np.int64) & 0xFFFFFFFF
    bits = np.zeros(u.shape, dtype=np.int64)
    for shift in (16, 8, 4, 2, 1):
        small = u < (np.int64(1) << (32 - shift))
        bits = bits + np.where(small, shift, 0)
        u = np.where(small, u << shift, u)
    return np.where(np.asarray(x, dtype=np.int64) & 0xFFFFFFFF == 0, 32, bits)


# --- Prepare-time parameters of SOFTMAX and LOGISTIC, derived from the scales as TFLM derives them ----

SOFTMAX_DIFF_INTEGER_BITS = 5     # input differences are rescaled to Q5.26 before exp
SOFTMAX_SUM_INTEGER_BITS = 12     # the sum of exps accumulates in Q12.19
LOGISTIC_INPUT_INTEGER_BITS = 4   # logistic inputs are rescaled to Q4.27


def input_radius(integer_bits: int, left_shift: int) -> int:
    """CalculateInputRadius: the largest |input| whose rescaled value still fits Q``integer_bits``
    (TFLM forms it in double and floors; for left_shift >= 0 that is this exact integer shift)."""
    return (((1 << integer_bits) - 1) << (31 - integer_bits)) >> left_shift


def softmax_real_multiplier(beta: float, input_scale: float) -> float:
    """beta x input scale in Q5.26, formed in double from the float32 values and capped below 2**31
    (PreprocessSoftmaxScaling); TFLM requires it to exceed 1."""
    real = float(np.float32(beta)) * float(np.float32(input_scale)) * 2.0 ** (31 - SOFTMAX_DIFF_INTEGER_BITS)
    return min(real, 2.0**31 - 1.0)


def softmax_input_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(multiplier, left shift, diff_min) of TFLM's int8 softmax: the Q5.26 input multiplier and the
    most negative input difference that still counts."""
    multiplier, shift = quantize_multiplier(softmax_real_multiplier(beta, input_scale))
    return multiplier, shift, -input_radius(SOFTMAX_DIFF_INTEGER_BITS, shift)


def logistic_input_params(input_scale: float) -> tuple[int, int, int]:
    """(multiplier, shift, input radius) of TFLM's int8 logistic: the input scale as a Q4.27
    multiplier. TFLM rounds frexp's significand without QuantizeMultiplier's overflow guard; for a
    float32 scale the significand has 24 bits, so the rounding is exact and the guard never matters.
    Needs input_scale >= 2**-28 (shift >= 0), which ``Graph.validate`` checks."""
    frac, shift = math.frexp(float(np.float32(input_scale)) * 2.0 ** (31 - LOGISTIC_INPUT_INTEGER_BITS))
    return int(round_half_away(frac * 2.0**31)), shift, input_radius(LOGISTIC_INPUT_INTEGER_BITS, shift)


# --- TFLM's int16 sigmoid and tanh (what its integer LSTM applies to the gates and the cell state) ----
#
# Both read an int16 input, scale it by 3 (the table's step is 1/24 and the input is Q3.12, so 3 x 2^-12
# per unit lands 2^7 .. 2^9 units per table step), look up a 256-entry table of sigmoid at multiples of
# 1/24 in unsigned 0.16 and interpolate linearly in the fractional bits; tanh uses tanh(x) = 2 sigmoid(2x)
# - 1, i.e. the same table read at twice the step. The table is not a plain rounding of sigmoid(i/24)
# (44 of its 256 entries are one above it: TFLM tuned it for the interpolation), so it cannot be
# recomputed from the formula. It is not written out here either (it is TFLM's data, not ours): it is read
# from the kernels compiled into the tflite-micro wheel, the same binary the tests hold us to. It is found
# by what it is: the 256 little-endian uint16 values within one unit of 65536 sigmoid(i/24), from 32768.


@functools.cache
def sigmoid_table_uint16() -> np.ndarray:
    """TFLM's int16 sigmoid table (256 entries, unsigned 0.16), as the tflite-micro wheel's kernels hold it.
    The binary holds it more than once; every copy must agree."""
    from tflite_micro.python.tflite_micro import runtime

    binary = (Path(runtime.__file__).parent / "_runtime.so").read_bytes()
    near = np.array([min(65535, round(65536 / (1 + math.exp(-i / 24)))) for i in range(256)], np.int64)
    found = set()
    for start in (0, 1):  # the table is 2-byte aligned, but the file offset of its section may not be
        values = np.frombuffer(binary, dtype="<u2", count=(len(binary) - start) // 2, offset=start)
        for at in np.flatnonzero(values[:len(values) - 255] == near[0]):
            window = values[at:at + 256].astype(np.int64)
            if np.all(np.abs(window - near) <= 1):
                found.add(tuple(window.tolist()))
    if len(found) != 1:
        raise RuntimeError(f"the tflite-micro wheel's kernels hold {len(found)} candidate int16 sigmoid tables, "
                           "not one: the LSTM and SVDF reference needs the pinned tflite-micro (see pyproject.toml)")
    return np.array(found.pop(), dtype=np.int64)


def _sigmoid_table_lookup(abs_x: np.ndarray, step_bits: int) -> np.ndarray:
    """The table interpolated at abs_x / 2^step_bits (abs_x >= 0): the integer part picks an entry, the
    low ``step_bits`` bits weigh the next one in; from entry 255 on the result saturates."""
    index = abs_x >> step_bits
    low = sigmoid_table_uint16()[np.minimum(index, 254)]
    high = sigmoid_table_uint16()[np.minimum(index, 254) + 1]
    frac = abs_x & ((1 << step_bits) - 1)
    saturated = (0x7FFF << 10) if step_bits == 9 else (0xFFFF << 8)
    return np.where(index >= 255, saturated, (low << step_bits) + frac * (high - low))


def sigmoid_int16(x: np.ndarray) -> np.ndarray:
    """TFLM's int16 logistic on Q3.12 inputs (the power-of-two case its LSTM uses), output Q0.15: the
    table read at 3x / 2^9 and rounded to 16 bits, mirrored as 1 - f(|x|) for negative inputs."""
    v = np.asarray(x, np.int64) * 3
    r = _sigmoid_table_lookup(np.abs(v), 9)
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return (r >> 10).astype(np.int16)


def tanh_int16(x: np.ndarray, input_scale_power: int) -> np.ndarray:
    """TFLM's int16 tanh of an input with scale 2^``input_scale_power`` (-12 for a gate, the cell state's
    power for the cell), output Q0.15. The input is first brought to Q3.12 x 3: multiplied by 3 << s
    for s = 12 + power >= 0, else multiplied by 3 and shifted right by -s with rounding."""
    shift = 12 + input_scale_power
    v = np.asarray(x, np.int64)
    if shift >= 0:
        v = v * (3 << shift)
    else:
        v = (v * 3 + (1 << (-shift - 1))) >> -shift
    r = _sigmoid_table_lookup(np.abs(v), 8)
    r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1)
    return (r >> 8).astype(np.int16)
