/* TFLite's int8 requantization in C: the double-rounding MultiplyByQuantizedMultiplier that TFLM
 * uses by default. Shared by every kernel set so they all round identically. */
#ifndef PP_FIXEDPOINT_H
#define PP_FIXEDPOINT_H

#include <stdint.h>

/* (a * b * 2) >> 32 with rounding, saturating the one overflowing case. */
static inline int32_t pp_srdhm(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / (1ll << 31));
}

/* x / 2^e rounded to nearest, ties away from zero (0 <= e <= 31). */
static inline int32_t pp_rounding_divide_by_pot(int32_t x, int e) {
    int32_t mask = (int32_t)((1u << e) - 1u);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (remainder > threshold ? 1 : 0);
}

static inline int32_t pp_requantize(int32_t acc, int32_t multiplier, int32_t shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    /* the left shift wraps in 32 bits exactly like TFLM's int32 multiply does */
    int32_t shifted = (int32_t)((uint32_t)acc << left);
    return pp_rounding_divide_by_pot(pp_srdhm(shifted, multiplier), right);
}

/* The same result as pp_srdhm without a 64-bit multiply: the Cortex-M0+ has only a 32x32->32
 * multiplier, so libgcc's __aeabi_lmul costs dozens of cycles. |a| * |b| is built from four 16x16
 * products, then rounded exactly as the signed version rounds. */
static inline int32_t pp_srdhm_fast(int32_t a, int32_t b) {
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    const int negative = (a < 0) != (b < 0);
    const uint32_t ua = a < 0 ? 0u - (uint32_t)a : (uint32_t)a;
    const uint32_t ub = b < 0 ? 0u - (uint32_t)b : (uint32_t)b;
    const uint32_t a0 = ua & 0xffffu, a1 = ua >> 16, b0 = ub & 0xffffu, b1 = ub >> 16;
    const uint32_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    /* 64-bit |a*b| = hi:lo */
    uint32_t mid = p01 + p10;
    uint32_t hi = p11 + (mid < p01 ? 0x10000u : 0u) + (mid >> 16);
    uint32_t lo = p00 + (mid << 16);
    hi += lo < p00;
    /* positive: (P + 2^30) >> 31; negative: -((P + 2^30 - 1) >> 31) */
    const uint32_t nudge = negative ? 0x3fffffffu : 0x40000000u;
    const uint32_t lo2 = lo + nudge;
    hi += lo2 < lo;
    const uint32_t q = (hi << 1) | (lo2 >> 31);
    return negative ? -(int32_t)q : (int32_t)q;
}

static inline int32_t pp_requantize_fast(int32_t acc, int32_t multiplier, int32_t shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    int32_t shifted = (int32_t)((uint32_t)acc << left);
    return pp_rounding_divide_by_pot(pp_srdhm_fast(shifted, multiplier), right);
}

/* --- gemmlowp's fixed-point exp, 1/(1+x) and logistic, as TFLM's int8 SOFTMAX and LOGISTIC use them ---
 *
 * A raw int32 v in format Q<ib>.<31-ib> stands for v / 2^(31-ib). Every step below rounds exactly as
 * TFLM's (gemmlowp's) version does, which is what makes the results bit-exact; powerprune/fixedpoint.py
 * is the Python twin and tests/test_fixedpoint_c.py compares the two. Additions that TFLM performs in
 * plain int32 wrap here too (through uint32, which C defines). The 64-bit pp_srdhm is used rather than
 * pp_srdhm_fast: these are the stock kernels, and they do what TFLM's reference code does. */

/* x * 2^e for 0 < e < 31, saturating to the int32 range */
static inline int32_t pp_saturating_shift_left(int32_t x, int e) {
    const int32_t limit = (int32_t)((1u << (31 - e)) - 1u);
    if (x > limit) return INT32_MAX;
    if (x < -limit) return INT32_MIN;
    return (int32_t)((uint32_t)x << e);
}

static inline int32_t pp_add_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t pp_sub_wrap(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }

/* (a + b) / 2, rounded half away from zero, without overflowing */
static inline int32_t pp_rounding_half_sum(int32_t a, int32_t b) {
    int64_t s = (int64_t)a + (int64_t)b;
    s += s >= 0 ? 1 : -1;
    return (int32_t)(s / 2);
}

/* Q0.31 constants, each round(value * 2^31): exp(-1/8), 1/3, and exp(-2^k) for k = -2 .. 4 */
#define PP_Q31_EXP_MINUS_ONE_EIGHTH 1895147668
#define PP_Q31_ONE_THIRD 715827883
static const int32_t pp_q31_exp_minus_pow2[7] = {
    1672461947, /* exp(-1/4) */ 1302514674, /* exp(-1/2) */ 790015084, /* exp(-1) */
    290630308, /* exp(-2) */ 39332535, /* exp(-4) */ 720401, /* exp(-8) */ 242 /* exp(-16) */
};
/* Q2.29: the initial Newton-Raphson guess 48/17 - 32/17 x for 1 / (1 + x) */
#define PP_Q29_48_OVER_17 1515870810
#define PP_Q29_MINUS_32_OVER_17 (-1010580540)

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: a Taylor polynomial around -1/8 */
static inline int32_t pp_exp_on_interval_minus_quarter_to_0(int32_t a) {
    const int32_t x = pp_add_wrap(a, 1 << 28); /* x = a + 1/8 */
    const int32_t x2 = pp_srdhm(x, x);
    const int32_t x3 = pp_srdhm(x2, x);
    const int32_t x4 = pp_srdhm(x2, x2);
    const int32_t x4_over_4 = pp_rounding_divide_by_pot(x4, 2);
    const int32_t poly = pp_rounding_divide_by_pot(
        pp_add_wrap(pp_srdhm(pp_add_wrap(x4_over_4, x3), PP_Q31_ONE_THIRD), x2), 1);
    return pp_add_wrap(PP_Q31_EXP_MINUS_ONE_EIGHTH, pp_srdhm(PP_Q31_EXP_MINUS_ONE_EIGHTH, pp_add_wrap(x, poly)));
}

/* exp(a) for a <= 0 in Q<integer_bits> (0 < integer_bits < 30), result in Q0.31. a = -(k/4 + r) with r in
 * (0, 1/4]: exp(-r) by the polynomial, then a multiplication by exp(-2^j) for every bit j set in k. */
static inline int32_t pp_exp_on_negative_values(int32_t a, int integer_bits) {
    const int frac_bits = 31 - integer_bits;
    const int32_t quarter = (int32_t)1 << (frac_bits - 2);
    const int32_t a_mod = (a & (quarter - 1)) - quarter;
    int32_t result = pp_exp_on_interval_minus_quarter_to_0(pp_saturating_shift_left(a_mod, integer_bits));
    const int32_t remainder = pp_sub_wrap(a_mod, a);
    for (int k = -2; k <= 4; ++k) {
        if (integer_bits > k && (remainder & ((int32_t)1 << (frac_bits + k))))
            result = pp_srdhm(result, pp_q31_exp_minus_pow2[k + 2]);
    }
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) result = 0;  /* below -32 */
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31: three Newton-Raphson steps on the half denominator (Q2.29) */
static inline int32_t pp_one_over_one_plus_x(int32_t a) {
    const int32_t half_denominator = pp_rounding_half_sum(a, INT32_MAX);
    int32_t x = pp_add_wrap(PP_Q29_48_OVER_17, pp_srdhm(half_denominator, PP_Q29_MINUS_32_OVER_17));
    for (int i = 0; i < 3; ++i) {
        const int32_t one_minus = pp_sub_wrap(1 << 29, pp_srdhm(half_denominator, x));
        x = pp_add_wrap(x, pp_saturating_shift_left(pp_srdhm(x, one_minus), 2));
    }
    return pp_saturating_shift_left(x, 1); /* x / 2 in Q1.30, read as Q0.31 */
}

/* 1 / (1 + exp(-a)) for any a in Q<integer_bits>, Q0.31 result; exactly 1/2 at 0 */
static inline int32_t pp_logistic_q(int32_t a, int integer_bits) {
    if (a == 0) return 1 << 30;
    const int32_t abs_a = a > 0 ? a : pp_sub_wrap(0, a);
    const int32_t positive = pp_one_over_one_plus_x(pp_exp_on_negative_values(pp_sub_wrap(0, abs_a), integer_bits));
    return a > 0 ? positive : pp_sub_wrap(INT32_MAX, positive);
}

/* leading zero bits of x (32 for 0); the M0+ has no CLZ instruction, so a binary search */
static inline int pp_clz32(uint32_t x) {
    if (x == 0) return 32;
    int n = 0;
    if (x <= 0x0000ffffu) { n += 16; x <<= 16; }
    if (x <= 0x00ffffffu) { n += 8; x <<= 8; }
    if (x <= 0x0fffffffu) { n += 4; x <<= 4; }
    if (x <= 0x3fffffffu) { n += 2; x <<= 2; }
    if (x <= 0x7fffffffu) { n += 1; }
    return n;
}

static inline int8_t pp_clamp8(int32_t v, int32_t lo, int32_t hi) {
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int8_t)v;
}

/* The last step of every optimized kernel: requantize, add the output zero point, clamp. */
static inline int8_t pp_output8(int32_t acc, int32_t multiplier, int32_t shift, int32_t offset, int32_t lo,
                                int32_t hi) {
    return pp_clamp8(pp_requantize_fast(acc, multiplier, shift) + offset, lo, hi);
}

#endif
