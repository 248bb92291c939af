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

/* x / 2^e rounded to nearest, ties away from zero. */
static inline int32_t pp_rounding_divide_by_pot(int32_t x, int e) {
    int32_t mask = (int32_t)((1ll << e) - 1);
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

static inline int8_t pp_clamp8(int32_t v, int32_t lo, int32_t hi) {
    if (v < lo) v = lo;
    if (v > hi) v = hi;
    return (int8_t)v;
}

#endif
