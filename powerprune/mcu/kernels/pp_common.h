/* Helpers shared by the optimized kernel sets (dense, sparse). */
#ifndef PP_COMMON_H
#define PP_COMMON_H

#include <stdint.h>

#include "pp_fixedpoint.h"
#include "pp_kernels.h"

/* Size of the padded input a convolution reads: exactly the rows and columns its windows touch. */
static inline int32_t pp_padded_h(const pp_conv_t *p) { return (p->out_h - 1) * p->stride_h + p->k_h; }
static inline int32_t pp_padded_w(const pp_conv_t *p) { return (p->out_w - 1) * p->stride_w + p->k_w; }

/* Scratch bytes the padded copy takes (0 when the input is read in place), rounded to words. */
static inline int32_t pp_padded_bytes(const pp_conv_t *p) {
    const int32_t hp = pp_padded_h(p), wp = pp_padded_w(p);
    if (p->pad_h == 0 && p->pad_w == 0 && hp <= p->in_h && wp <= p->in_w) return 0;
    return (hp * wp * p->in_c + 3) & ~3;
}

/* The input as the windows see it: either the input itself (no padding needed) or a copy in scratch
 * with a border holding the input zero point, which contributes zero once the offset is folded into
 * the bias. Sets *row to the padded row length in bytes. */
static inline const int8_t *pp_padded_input(const pp_conv_t *p, const int8_t *in, int8_t *scratch, int32_t *row) {
    const int32_t hp = pp_padded_h(p), wp = pp_padded_w(p), c = p->in_c;
    if (pp_padded_bytes(p) == 0) {
        *row = p->in_w * c;
        return in;
    }
    const int8_t pad = (int8_t)(-p->input_offset);
    const uint32_t fill = (uint8_t)pad * 0x01010101u;
    const int32_t total = hp * wp * c;
    uint32_t *w32 = (uint32_t *)scratch;  /* scratch is word aligned and sized to a word multiple */
    for (int32_t i = 0; i < (total + 3) / 4; ++i) w32[i] = fill;
    const int32_t cols = (p->in_w < wp - p->pad_w ? p->in_w : wp - p->pad_w) * c;
    for (int32_t y = 0; y < p->in_h; ++y) {
        const int32_t py = y + p->pad_h;
        if (py >= hp) break;
        const int8_t *src = in + y * p->in_w * c;
        int8_t *dst = scratch + (py * wp + p->pad_w) * c;
        for (int32_t i = 0; i < cols; ++i) dst[i] = src[i];
    }
    *row = wp * c;
    return scratch;
}

/* dst = src with every sign bit flipped: u = x + 128 as uint8, so kernels can use LDRB (which has an
 * immediate offset, unlike LDRSB); codegen folds the -128 into the bias. Both buffers are word
 * aligned (arena offsets and I/O buffers are), so whole words are flipped at once. */
static inline void pp_flip_sign(const int8_t *src, int8_t *dst, int32_t n) {
    const uint32_t *s = (const uint32_t *)src;
    uint32_t *d = (uint32_t *)dst;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) *d++ = *s++ ^ 0x80808080u;
    for (; i < n; ++i) dst[i] = (int8_t)(src[i] ^ 0x80);
}

#endif
