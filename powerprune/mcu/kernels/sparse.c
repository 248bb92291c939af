/* Kernel set "sparse": work only for nonzero weights.
 *
 * Per output channel the number of nonzeros, then for each nonzero its int8 value and the byte
 * offset of the input it multiplies (relative to the window origin in the pre-padded input). The
 * input offset is folded into the bias as in "dense", so the inner loop is: load entry, load input,
 * multiply, add. Two encodings, chosen by what each layer's weights cost to fetch:
 *   convolutions: one 32-bit word per nonzero, offset << 8 | value. Conv weights are few and stay
 *     in the XIP cache, so the wider entry costs nothing and saves an instruction per nonzero
 *     (ARMv6-M has no immediate-offset LDRSB; a word load plus SXTB/LSRS is cheaper).
 *   fully connected: 16-bit offsets and 8-bit values in two arrays, 3 bytes per nonzero, because
 *     FC weights stream from flash and every byte fetched costs XIP cache misses. */
#include "pp_common.h"

/* The input of a generated sparse convolution (powerprune/mcu/sparsegen.py): padded to exactly the
 * rows and columns the windows touch (pads hold the input zero point) and with every sign bit flipped
 * (u = x + 128), so the generated code can read it with immediate-offset LDRB. Returns the window
 * origin of output pixel (0, 0); a row is pp_padded_w(p) * in_c bytes. */
const uint8_t *pp_conv_flipped(const pp_conv_t *p, const int8_t *in, int8_t *scratch) {
    const int32_t hp = pp_padded_h(p), wp = pp_padded_w(p), c = p->in_c;
    const uint8_t pad = (uint8_t)(-p->input_offset) ^ 0x80u;
    uint8_t *dst = (uint8_t *)scratch;
    for (int32_t py = 0; py < hp; ++py) {
        const int32_t y = py - p->pad_h;
        for (int32_t px = 0; px < wp; ++px) {
            const int32_t x = px - p->pad_w;
            if (y >= 0 && y < p->in_h && x >= 0 && x < p->in_w) {
                const int8_t *src = in + (y * p->in_w + x) * c;
                for (int32_t ch = 0; ch < c; ++ch) *dst++ = (uint8_t)src[ch] ^ 0x80u;
            } else {
                for (int32_t ch = 0; ch < c; ++ch) *dst++ = pad;
            }
        }
    }
    return (const uint8_t *)scratch;
}

static inline int32_t sparse_dot(const int8_t *win, const int8_t *v, const uint16_t *off, int32_t n) {
    int32_t acc = 0;
    while (n >= 4) {
        acc += v[0] * win[off[0]];
        acc += v[1] * win[off[1]];
        acc += v[2] * win[off[2]];
        acc += v[3] * win[off[3]];
        v += 4;
        off += 4;
        n -= 4;
    }
    while (n-- > 0) acc += *v++ * win[*off++];
    return acc;
}

static inline int32_t packed_dot(const int8_t *win, const uint32_t *e, int32_t n) {
    int32_t acc = 0;
    while (n >= 4) {
        acc += (int8_t)e[0] * win[e[0] >> 8];
        acc += (int8_t)e[1] * win[e[1] >> 8];
        acc += (int8_t)e[2] * win[e[2] >> 8];
        acc += (int8_t)e[3] * win[e[3] >> 8];
        e += 4;
        n -= 4;
    }
    while (n-- > 0) {
        acc += (int8_t)*e * win[*e >> 8];
        ++e;
    }
    return acc;
}

/* Two neighbouring output pixels at once: each entry is decoded once and used twice, which takes
 * the inner loop from ~8 to ~6.5 cycles per nonzero and halves the per-channel bookkeeping. */
static inline void packed_dot2(const int8_t *w0, const int8_t *w1, const uint32_t *e, int32_t n,
                               int32_t *a0, int32_t *a1) {
    int32_t acc0 = *a0, acc1 = *a1;
    while (n >= 2) {
        const uint32_t x0 = e[0], x1 = e[1];
        acc0 += (int8_t)x0 * w0[x0 >> 8];
        acc1 += (int8_t)x0 * w1[x0 >> 8];
        acc0 += (int8_t)x1 * w0[x1 >> 8];
        acc1 += (int8_t)x1 * w1[x1 >> 8];
        e += 2;
        n -= 2;
    }
    if (n) {
        acc0 += (int8_t)*e * w0[*e >> 8];
        acc1 += (int8_t)*e * w1[*e >> 8];
    }
    *a0 = acc0;
    *a1 = acc1;
}

void pp_conv2d_sparse(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    int32_t row;
    const int8_t *src = pp_padded_input(p, in, scratch, &row);
    /* descriptor fields in locals: stores through `out` could alias the descriptor as far as the
     * compiler knows, so reading p-> inside the loops would reload every field per output */
    const int32_t step_x = p->stride_w * p->in_c, step_y = p->stride_h * row;
    const int32_t oc_n = p->out_c, out_w = p->out_w, out_h = p->out_h;
    const uint16_t *const counts = p->nz_count;
    const uint32_t *const entries = p->nz_packed;
    const int32_t *const bias = p->bias, *const mult = p->multiplier, *const shift = p->shift;
    const int32_t out_offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        const int8_t *win = src + oy * step_y;
        int32_t ox = 0;
        for (; ox + 2 <= out_w; ox += 2, win += 2 * step_x, out += 2 * oc_n) {
            const uint32_t *e = entries;
            for (int32_t oc = 0; oc < oc_n; ++oc) {
                const int32_t n = counts[oc];
                int32_t acc0 = bias[oc], acc1 = bias[oc];
                packed_dot2(win, win + step_x, e, n, &acc0, &acc1);
                e += n;
                const int32_t m = mult[oc], s = shift[oc];
                out[oc] = pp_output8(acc0, m, s, out_offset, lo, hi);
                out[oc_n + oc] = pp_output8(acc1, m, s, out_offset, lo, hi);
            }
        }
        for (; ox < out_w; ++ox, win += step_x) {  /* an odd last column */
            const uint32_t *e = entries;
            for (int32_t oc = 0; oc < oc_n; ++oc) {
                const int32_t n = counts[oc];
                const int32_t acc = bias[oc] + packed_dot(win, e, n);
                e += n;
                *out++ = pp_output8(acc, mult[oc], shift[oc], out_offset, lo, hi);
            }
        }
    }
}

void pp_fc_sparse(const pp_fc_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    (void)scratch;
    const int32_t out_n = p->out_size, per_channel = p->per_channel;
    const uint16_t *const counts = p->nz_count;
    const int32_t *const bias = p->bias, *const mult = p->multiplier, *const shift = p->shift;
    const int32_t out_offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int8_t *v = p->weights;
    const uint16_t *off = p->nz_offset;
    for (int32_t oc = 0; oc < out_n; ++oc) {
        const int32_t n = counts[oc];
        const int32_t ch = per_channel ? oc : 0;
        const int32_t acc = bias[oc] + sparse_dot(in, v, off, n);
        v += n;
        off += n;
        out[oc] = pp_output8(acc, mult[ch], shift[ch], out_offset, lo, hi);
    }
}
