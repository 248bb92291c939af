/* Kernel set "tflm-ref": the paper's "stock TFLM" baseline.
 *
 * Written from the published behaviour of TFLM's reference int8 kernels, not copied: the same loop
 * nest (output y, x, channel, then filter y, x, input channel), a bounds check per filter tap for
 * padding, a 4-D offset recomputed for every element access, the input offset added per MAC, and
 * per-channel requantization. Every weight is visited, zero or not, which is why unstructured
 * pruning saves nothing here. */
#include "pp_kernels.h"
#include "pp_fixedpoint.h"
#include "pp_tflm.h"

void pp_conv2d_tflmref(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const shape4 in_s = {{1, p->in_h, p->in_w, p->in_c}};
    const shape4 w_s = {{p->out_c, p->k_h, p->k_w, p->in_c}};
    const shape4 out_s = {{1, p->out_h, p->out_w, p->out_c}};
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t in_y0 = oy * p->stride_h - p->pad_h;
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t in_x0 = ox * p->stride_w - p->pad_w;
            for (int32_t oc = 0; oc < p->out_c; ++oc) {
                int32_t acc = 0;
                for (int32_t ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = in_y0 + ky;
                    for (int32_t kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = in_x0 + kx;
                        const int inside = ix >= 0 && ix < p->in_w && iy >= 0 && iy < p->in_h;
                        if (!inside) continue;
                        for (int32_t ic = 0; ic < p->in_c; ++ic) {
                            const int32_t iv = in[offset4(&in_s, 0, iy, ix, ic)];
                            const int32_t fv = p->weights[offset4(&w_s, oc, ky, kx, ic)];
                            acc += fv * (iv + p->input_offset);
                        }
                    }
                }
                if (p->bias) acc += p->bias[oc];
                acc = pp_requantize(acc, p->multiplier[oc], p->shift[oc]);
                acc += p->output_offset;
                out[offset4(&out_s, 0, oy, ox, oc)] = pp_clamp8(acc, p->act_min, p->act_max);
            }
        }
    }
}

void pp_depthwise_tflmref(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const shape4 in_s = {{1, p->in_h, p->in_w, p->in_c}};
    const shape4 w_s = {{1, p->k_h, p->k_w, p->out_c}};
    const shape4 out_s = {{1, p->out_h, p->out_w, p->out_c}};
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            for (int32_t ic = 0; ic < p->in_c; ++ic) {
                for (int32_t m = 0; m < p->depth_multiplier; ++m) {
                    const int32_t oc = m + ic * p->depth_multiplier;
                    const int32_t in_y0 = oy * p->stride_h - p->pad_h;
                    const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                    int32_t acc = 0;
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t iy = in_y0 + ky, ix = in_x0 + kx;
                            if (ix >= 0 && ix < p->in_w && iy >= 0 && iy < p->in_h) {
                                const int32_t iv = in[offset4(&in_s, 0, iy, ix, ic)];
                                const int32_t fv = p->weights[offset4(&w_s, 0, ky, kx, oc)];
                                acc += fv * (iv + p->input_offset);
                            }
                        }
                    }
                    if (p->bias) acc += p->bias[oc];
                    acc = pp_requantize(acc, p->multiplier[oc], p->shift[oc]);
                    acc += p->output_offset;
                    out[offset4(&out_s, 0, oy, ox, oc)] = pp_clamp8(acc, p->act_min, p->act_max);
                }
            }
        }
    }
}

void pp_fc_tflmref(const pp_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t depth = p->in_size;
    for (int32_t oc = 0; oc < p->out_size; ++oc) {
        int32_t acc = 0;
        for (int32_t d = 0; d < depth; ++d) {
            const int32_t iv = in[d];
            const int32_t fv = p->weights[oc * depth + d];
            acc += fv * (iv + p->input_offset);   /* filter offset is 0 for int8 weights */
        }
        if (p->bias) acc += p->bias[oc];
        const int32_t ch = p->per_channel ? oc : 0;
        acc = pp_requantize(acc, p->multiplier[ch], p->shift[ch]);
        acc += p->output_offset;
        out[oc] = pp_clamp8(acc, p->act_min, p->act_max);
    }
}

static inline int32_t max32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

void pp_maxpool_tflmref(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const shape4 in_s = {{1, p->in_h, p->in_w, p->channels}};
    const shape4 out_s = {{1, p->out_h, p->out_w, p->channels}};
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            for (int32_t c = 0; c < p->channels; ++c) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                const int32_t in_y0 = oy * p->stride_h - p->pad_h;
                const int32_t fx0 = max32(0, -in_x0), fx1 = min32(p->k_w, p->in_w - in_x0);
                const int32_t fy0 = max32(0, -in_y0), fy1 = min32(p->k_h, p->in_h - in_y0);
                int32_t m = -128;
                for (int32_t fy = fy0; fy < fy1; ++fy)
                    for (int32_t fx = fx0; fx < fx1; ++fx)
                        m = max32(m, in[offset4(&in_s, 0, in_y0 + fy, in_x0 + fx, c)]);
                out[offset4(&out_s, 0, oy, ox, c)] = pp_clamp8(m, p->act_min, p->act_max);
            }
        }
    }
}

void pp_avgpool_tflmref(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const shape4 in_s = {{1, p->in_h, p->in_w, p->channels}};
    const shape4 out_s = {{1, p->out_h, p->out_w, p->channels}};
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            for (int32_t c = 0; c < p->channels; ++c) {
                const int32_t in_x0 = ox * p->stride_w - p->pad_w;
                const int32_t in_y0 = oy * p->stride_h - p->pad_h;
                const int32_t fx0 = max32(0, -in_x0), fx1 = min32(p->k_w, p->in_w - in_x0);
                const int32_t fy0 = max32(0, -in_y0), fy1 = min32(p->k_h, p->in_h - in_y0);
                int32_t sum = 0, count = 0;
                for (int32_t fy = fy0; fy < fy1; ++fy)
                    for (int32_t fx = fx0; fx < fx1; ++fx) {
                        sum += in[offset4(&in_s, 0, in_y0 + fy, in_x0 + fx, c)];
                        ++count;
                    }
                if (count == 0) count = 1;
                /* round half away from zero */
                const int32_t avg = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                out[offset4(&out_s, 0, oy, ox, c)] = pp_clamp8(avg, p->act_min, p->act_max);
            }
        }
    }
}
