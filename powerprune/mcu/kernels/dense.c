/* Kernel set "dense": the fastest correct dense int8 kernels we have for the Cortex-M0+.
 *
 * Compared with tflm-ref: the input is padded once instead of bounds-checking every tap; the input
 * offset is folded into the bias at code-generation time (bias' = bias + offset * sum(w)), so the
 * inner loop is a plain int8 dot product; a window row (k_w * in_c bytes) is contiguous in NHWC and
 * OHWI, so the dot product runs over contiguous memory, unrolled by four. */
#include "pp_common.h"

static inline int32_t dot(const int8_t *x, const int8_t *w, int32_t n) {
    int32_t acc = 0;
    while (n >= 4) {
        acc += x[0] * w[0];
        acc += x[1] * w[1];
        acc += x[2] * w[2];
        acc += x[3] * w[3];
        x += 4;
        w += 4;
        n -= 4;
    }
    while (n-- > 0) acc += *x++ * *w++;
    return acc;
}

/* Two gathered windows against one filter: each weight is loaded once for two output pixels. */
static inline void dot2(const int8_t *x0, const int8_t *x1, const int8_t *w, int32_t n, int32_t *a0, int32_t *a1) {
    int32_t acc0 = *a0, acc1 = *a1;
    while (n >= 2) {
        const int32_t wa = w[0], wb = w[1];
        acc0 += x0[0] * wa;
        acc1 += x1[0] * wa;
        acc0 += x0[1] * wb;
        acc1 += x1[1] * wb;
        x0 += 2;
        x1 += 2;
        w += 2;
        n -= 2;
    }
    if (n) {
        acc0 += *x0 * *w;
        acc1 += *x1 * *w;
    }
    *a0 = acc0;
    *a1 = acc1;
}

static inline void gather(int8_t *dst, const int8_t *win, int32_t kh, int32_t wrow, int32_t row) {
    for (int32_t ky = 0; ky < kh; ++ky, win += row)
        for (int32_t i = 0; i < wrow; ++i) *dst++ = win[i];
}

void pp_conv2d_dense(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    int32_t row;
    const int8_t *src = pp_padded_input(p, in, scratch, &row);
    /* the windows of two neighbouring output pixels, gathered once (im2col) and reused by every
     * output channel, so each channel is one contiguous two-pixel dot product of k_h*k_w*in_c bytes */
    int8_t *col = scratch + pp_padded_bytes(p);
    /* descriptor fields in locals: stores through `out` could alias the descriptor as far as the
     * compiler knows, so reading p-> inside the loops would reload every field per output */
    const int32_t kh = p->k_h, oc_n = p->out_c, out_w = p->out_w, out_h = p->out_h;
    const int32_t wrow = p->k_w * p->in_c, depth = kh * wrow;
    const int32_t step_x = p->stride_w * p->in_c, step_y = p->stride_h * row;
    const int8_t *const weights = p->weights;
    const int32_t *const bias = p->bias, *const mult = p->multiplier, *const shift = p->shift;
    const int32_t out_offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    int8_t *col1 = col + ((depth + 3) & ~3);  /* second window for the two-pixel loop */
    for (int32_t oy = 0; oy < out_h; ++oy) {
        const int8_t *win = src + oy * step_y;
        int32_t ox = 0;
        for (; ox + 2 <= out_w; ox += 2, win += 2 * step_x, out += 2 * oc_n) {
            gather(col, win, kh, wrow, row);
            gather(col1, win + step_x, kh, wrow, row);
            const int8_t *w = weights;
            for (int32_t oc = 0; oc < oc_n; ++oc, w += depth) {
                int32_t acc0 = bias[oc], acc1 = bias[oc];
                dot2(col, col1, w, depth, &acc0, &acc1);
                const int32_t m = mult[oc], s = shift[oc];
                out[oc] = pp_output8(acc0, m, s, out_offset, lo, hi);
                out[oc_n + oc] = pp_output8(acc1, m, s, out_offset, lo, hi);
            }
        }
        for (; ox < out_w; ++ox, win += step_x) {  /* an odd last column */
            gather(col, win, kh, wrow, row);
            const int8_t *w = weights;
            for (int32_t oc = 0; oc < oc_n; ++oc, w += depth) {
                const int32_t acc = bias[oc] + dot(col, w, depth);
                *out++ = pp_output8(acc, mult[oc], shift[oc], out_offset, lo, hi);
            }
        }
    }
}

void pp_fc_dense(const pp_fc_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    (void)scratch;
    const int32_t n = p->in_size, out_n = p->out_size, per_channel = p->per_channel;
    const int32_t *const bias = p->bias, *const mult = p->multiplier, *const shift = p->shift;
    const int32_t out_offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    const int8_t *w = p->weights;
    for (int32_t oc = 0; oc < out_n; ++oc, w += n) {
        const int32_t ch = per_channel ? oc : 0;
        const int32_t acc = bias[oc] + dot(in, w, n);
        out[oc] = pp_output8(acc, mult[ch], shift[ch], out_offset, lo, hi);
    }
}

void pp_maxpool_dense(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    /* VALID windows only (the code generator falls back to tflm-ref for padded pooling) */
    (void)scratch;
    const int32_t c = p->channels, row = p->in_w * c;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int8_t *base = in + (oy * p->stride_h) * row + (ox * p->stride_w) * c;
            for (int32_t ch = 0; ch < c; ++ch) {
                int32_t m = -128;
                const int8_t *r = base + ch;
                for (int32_t fy = 0; fy < p->k_h; ++fy, r += row)
                    for (int32_t fx = 0; fx < p->k_w; ++fx) {
                        const int32_t v = r[fx * c];
                        if (v > m) m = v;
                    }
                *out++ = pp_clamp8(m, p->act_min, p->act_max);
            }
        }
    }
}
