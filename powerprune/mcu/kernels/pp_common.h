/* Helpers shared by the optimized kernel sets (dense, sparse). */
#ifndef PP_COMMON_H
#define PP_COMMON_H

#include <stdint.h>

#include "pp_fixedpoint.h"
#include "pp_kernels.h"

/* The input as the windows see it: either the input itself (no padding needed: scratch_bytes is 0) or
 * a copy in scratch with a border holding the input zero point, which contributes zero once the
 * offset is folded into the bias. The layout (row_bytes apart, ...) is the descriptor's. */
static inline const int8_t *pp_padded_input(const pp_conv_t *p, const int8_t *in, int8_t *scratch) {
    /* fields in locals: the stores below could alias the descriptor as far as the compiler knows */
    const int32_t words = p->scratch_bytes >> 2;
    if (words == 0) return in;
    const int8_t pad = (int8_t)(-p->input_offset);
    const uint32_t fill = (uint8_t)pad * 0x01010101u;
    const int32_t row = p->row_bytes, rows = p->padded_rows, cols = p->row_copy, lead = p->row_lead;
    const int32_t in_row = p->in_w * p->in_c, in_h = p->in_h, pad_h = p->pad_h;
    uint32_t *w32 = (uint32_t *)scratch;  /* scratch is word aligned and sized to a word multiple */
    for (int32_t i = 0; i < words; ++i) w32[i] = fill;
    for (int32_t y = 0; y < in_h; ++y) {
        const int32_t py = y + pad_h;
        if (py >= rows) break;
        const int8_t *src = in + y * in_row;
        int8_t *dst = scratch + py * row + lead;
        for (int32_t i = 0; i < cols; ++i) dst[i] = src[i];
    }
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
