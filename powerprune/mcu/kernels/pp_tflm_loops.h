/* The loops of TFLM's reference int8 CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED kernels,
 * written once for the two kernel sets that run them (a template: include it, never compile it alone).
 *
 * The includer defines
 *   PP_TFLM_FN(op)        the function name of an op's kernel in its set (pp_conv2d -> pp_conv2d_tflmref)
 *   PP_SKIP_ZERO_WEIGHTS  0 for "tflm-ref" (tflm_ref.c): every weight is multiplied, zero or not;
 *                         1 for "tflm-skip" (tflm_skip.c): the paper's adaptation, a multiplication by
 *                         a zero weight is skipped at run time, and nothing else changes.
 * With 0 the compiler drops the test, so tflm-ref is exactly the stock loop; with 1 the weight is
 * loaded first and, when zero, neither the input load nor the multiply-accumulate happens: a zero
 * still costs its iteration, offset arithmetic, a load and a branch. Both give the same sums (a zero
 * weight adds nothing to an integer sum), so the two sets are bit-identical.
 *
 * The loop nest follows TFLM's: output y, x, channel, then filter y, x, input channel, a bounds check
 * per filter tap for padding, a 4-D offset recomputed for every element access, the input offset
 * added per MAC, per-channel requantization. */
#include "pp_kernels.h"
#include "pp_fixedpoint.h"
#include "pp_tflm.h"

/* The two loads of one multiply-accumulate, input value iv and weight fv. tflm-skip loads the weight
 * first, to test it; tflm-ref keeps the stock order (input, then weight), the order its published
 * baseline cycles were measured with (gcc schedules the depthwise and conv loops differently for
 * the other order: 0.45 % fewer cycles on kws). */
#if PP_SKIP_ZERO_WEIGHTS
#define PP_TFLM_LOADS(iv, iv_expr, fv, fv_expr) \
    const int32_t fv = (fv_expr);               \
    if (fv == 0) continue; /* the adaptation */ \
    const int32_t iv = (iv_expr)
#else
#define PP_TFLM_LOADS(iv, iv_expr, fv, fv_expr) \
    const int32_t iv = (iv_expr);               \
    const int32_t fv = (fv_expr)
#endif

void PP_TFLM_FN(pp_conv2d)(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
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
                            PP_TFLM_LOADS(iv, in[offset4(&in_s, 0, iy, ix, ic)],
                                          fv, p->weights[offset4(&w_s, oc, ky, kx, ic)]);
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

void PP_TFLM_FN(pp_depthwise)(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
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
                                PP_TFLM_LOADS(iv, in[offset4(&in_s, 0, iy, ix, ic)],
                                              fv, p->weights[offset4(&w_s, 0, ky, kx, oc)]);
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

void PP_TFLM_FN(pp_fc)(const pp_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t depth = p->in_size;
    for (int32_t oc = 0; oc < p->out_size; ++oc) {
        int32_t acc = 0;
        for (int32_t d = 0; d < depth; ++d) {
            PP_TFLM_LOADS(iv, in[d], fv, p->weights[oc * depth + d]);
            acc += fv * (iv + p->input_offset);   /* filter offset is 0 for int8 weights */
        }
        if (p->bias) acc += p->bias[oc];
        const int32_t ch = p->per_channel ? oc : 0;
        acc = pp_requantize(acc, p->multiplier[ch], p->shift[ch]);
        acc += p->output_offset;
        out[oc] = pp_clamp8(acc, p->act_min, p->act_max);
    }
}
