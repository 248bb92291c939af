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
