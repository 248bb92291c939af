/* Kernel set "tflm-skip", int8: the paper's "adapted TFLM".
 *
 * Widmann et al. kept TFLM's reference kernels and the model file as they were and added one test:
 * a multiplication by a zero weight is skipped at run time. These are the loops of tflm_ref.c with
 * that test, nothing else: the same loop nest, bounds checks and offset arithmetic, the weight loaded
 * first and, when it is zero, neither the input load nor the multiply-accumulate. So a zero weight
 * still costs its loop iteration, its offset computation, a load and a branch; what unstructured
 * pruning saves here is exactly the multiply-accumulate. The result is bit-identical to tflm-ref (a
 * zero weight adds nothing to an integer sum). Pooling has no weights: the generator gives pools the
 * tflm-ref kernels under this set. */
#include "pp_kernels.h"
#include "pp_fixedpoint.h"
#include "pp_tflm.h"

void pp_conv2d_tflmskip(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
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
                            const int32_t fv = p->weights[offset4(&w_s, oc, ky, kx, ic)];
                            if (fv == 0) continue;  /* the adaptation */
                            const int32_t iv = in[offset4(&in_s, 0, iy, ix, ic)];
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

void pp_depthwise_tflmskip(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
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
                                const int32_t fv = p->weights[offset4(&w_s, 0, ky, kx, oc)];
                                if (fv == 0) continue;  /* the adaptation */
                                const int32_t iv = in[offset4(&in_s, 0, iy, ix, ic)];
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

void pp_fc_tflmskip(const pp_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t depth = p->in_size;
    for (int32_t oc = 0; oc < p->out_size; ++oc) {
        int32_t acc = 0;
        for (int32_t d = 0; d < depth; ++d) {
            const int32_t fv = p->weights[oc * depth + d];
            if (fv == 0) continue;  /* the adaptation */
            const int32_t iv = in[d];
            acc += fv * (iv + p->input_offset);
        }
        if (p->bias) acc += p->bias[oc];
        const int32_t ch = p->per_channel ? oc : 0;
        acc = pp_requantize(acc, p->multiplier[ch], p->shift[ch]);
        acc += p->output_offset;
        out[oc] = pp_clamp8(acc, p->act_min, p->act_max);
    }
}
