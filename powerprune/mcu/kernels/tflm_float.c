/* Kernel sets "tflm-ref" and "tflm-skip", float32: TFLM's float reference kernels as the paper ran them.
 *
 * Written from the published behaviour of TFLM's float reference kernels (reference_ops Conv,
 * DepthwiseConv, FullyConnected, AveragePool, MaxPool, Softmax), not copied: the same loop nests, the
 * same order of every floating-point operation, so the results are bit-identical to TFLM's:
 * - a sum starts at +0.0f and adds input * weight one tap at a time, in TFLM's tap order; then the bias;
 * - the fused activation is TFLM's ActivationFunctionWithMinMax, min(max(x, lo), hi) with
 *   std::max(a, b) = a < b ? b : a (so NaN and the sign of a zero come out as in TFLM);
 * - average pooling counts its taps in a float and divides once; max pooling starts at -FLT_MAX;
 * - softmax subtracts the row maximum, calls expf (newlib's here), sums in order and divides.
 *
 * The Cortex-M0+ has no FPU: every float operation is a call into libgcc's soft-float routines
 * (__aeabi_fmul, __aeabi_fadd, __aeabi_fcmplt, __aeabi_fdiv, ...), which round as IEEE 754 single
 * precision requires. A multiply-accumulate is two such calls, which is why skipping it pays here.
 *
 * tflm-skip (the paper's adapted TFLM) is the same loops with one test: a weight that is +0 or -0
 * skips its input load, multiply and add. For finite inputs that changes nothing (a zero product added
 * to a sum leaves it as it was: the sum starts at +0 and is never -0); an infinite or NaN input times a
 * zero weight would be NaN in the stock kernel and is skipped here, as in the paper's runtime. Each
 * loop nest is written once, as an always-inlined function with a `skip` flag, and instantiated twice
 * with a constant flag, so the stock kernels contain no trace of the test. */
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "pp_kernels.h"
#include "pp_tflm.h"

#define PP_INLINE static inline __attribute__((always_inline))

static const float kLowest = -FLT_MAX;  /* std::numeric_limits<float>::lowest() */

/* TFLM's ActivationFunctionWithMinMax for float */
PP_INLINE float act_f32(float x, float lo, float hi) {
    x = x < lo ? lo : x;
    return hi < x ? hi : x;
}

/* w == 0.0f (either sign) decided on the bits: the same truth value for every float, NaN included,
 * without a soft-float comparison call. */
PP_INLINE int is_zero_f32(float w) {
    union { float f; uint32_t u; } b = {w};
    return (b.u << 1) == 0;
}

PP_INLINE void conv_f32(const pp_conv_f32_t *p, const float *in, float *out, const int skip) {
    const shape4 in_s = {{1, p->in_h, p->in_w, p->in_c}};
    const shape4 w_s = {{p->out_c, p->k_h, p->k_w, p->in_c}};
    const shape4 out_s = {{1, p->out_h, p->out_w, p->out_c}};
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t in_y0 = oy * p->stride_h - p->pad_h;
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t in_x0 = ox * p->stride_w - p->pad_w;
            for (int32_t oc = 0; oc < p->out_c; ++oc) {
                float total = 0.0f;
                for (int32_t ky = 0; ky < p->k_h; ++ky) {
                    const int32_t iy = in_y0 + ky;
                    for (int32_t kx = 0; kx < p->k_w; ++kx) {
                        const int32_t ix = in_x0 + kx;
                        const int inside = ix >= 0 && ix < p->in_w && iy >= 0 && iy < p->in_h;
                        if (!inside) continue;
                        for (int32_t ic = 0; ic < p->in_c; ++ic) {
                            const float fv = p->weights[offset4(&w_s, oc, ky, kx, ic)];
                            if (skip && is_zero_f32(fv)) continue;
                            const float iv = in[offset4(&in_s, 0, iy, ix, ic)];
                            total += iv * fv;
                        }
                    }
                }
                out[offset4(&out_s, 0, oy, ox, oc)] = act_f32(total + p->bias[oc], p->act_min, p->act_max);
            }
        }
    }
}

PP_INLINE void depthwise_f32(const pp_conv_f32_t *p, const float *in, float *out, const int skip) {
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
                    float total = 0.0f;
                    for (int32_t ky = 0; ky < p->k_h; ++ky) {
                        for (int32_t kx = 0; kx < p->k_w; ++kx) {
                            const int32_t iy = in_y0 + ky, ix = in_x0 + kx;
                            if (ix >= 0 && ix < p->in_w && iy >= 0 && iy < p->in_h) {
                                const float fv = p->weights[offset4(&w_s, 0, ky, kx, oc)];
                                if (skip && is_zero_f32(fv)) continue;
                                total += in[offset4(&in_s, 0, iy, ix, ic)] * fv;
                            }
                        }
                    }
                    out[offset4(&out_s, 0, oy, ox, oc)] = act_f32(total + p->bias[oc], p->act_min, p->act_max);
                }
            }
        }
    }
}

PP_INLINE void fc_f32(const pp_fc_f32_t *p, const float *in, float *out, const int skip) {
    const int32_t depth = p->in_size;
    for (int32_t oc = 0; oc < p->out_size; ++oc) {
        float total = 0.0f;
        for (int32_t d = 0; d < depth; ++d) {
            const float fv = p->weights[oc * depth + d];
            if (skip && is_zero_f32(fv)) continue;
            total += in[d] * fv;
        }
        out[oc] = act_f32(total + p->bias[oc], p->act_min, p->act_max);
    }
}

void pp_conv2d_f32_tflmref(const pp_conv_f32_t *p, const float *in, float *out, int8_t *scratch) {
    (void)scratch;
    conv_f32(p, in, out, 0);
}

void pp_conv2d_f32_tflmskip(const pp_conv_f32_t *p, const float *in, float *out, int8_t *scratch) {
    (void)scratch;
    conv_f32(p, in, out, 1);
}

void pp_depthwise_f32_tflmref(const pp_conv_f32_t *p, const float *in, float *out, int8_t *scratch) {
    (void)scratch;
    depthwise_f32(p, in, out, 0);
}

void pp_depthwise_f32_tflmskip(const pp_conv_f32_t *p, const float *in, float *out, int8_t *scratch) {
    (void)scratch;
    depthwise_f32(p, in, out, 1);
}

void pp_fc_f32_tflmref(const pp_fc_f32_t *p, const float *in, float *out, int8_t *scratch) {
    (void)scratch;
    fc_f32(p, in, out, 0);
}

void pp_fc_f32_tflmskip(const pp_fc_f32_t *p, const float *in, float *out, int8_t *scratch) {
    (void)scratch;
    fc_f32(p, in, out, 1);
}

static inline int32_t max32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

void pp_maxpool_f32_tflmref(const pp_pool_f32_t *p, const float *in, float *out, int8_t *scratch) {
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
                float m = kLowest;
                for (int32_t fy = fy0; fy < fy1; ++fy)
                    for (int32_t fx = fx0; fx < fx1; ++fx) {
                        const float v = in[offset4(&in_s, 0, in_y0 + fy, in_x0 + fx, c)];
                        m = m < v ? v : m;  /* std::max(m, v) */
                    }
                out[offset4(&out_s, 0, oy, ox, c)] = act_f32(m, p->act_min, p->act_max);
            }
        }
    }
}

void pp_avgpool_f32_tflmref(const pp_pool_f32_t *p, const float *in, float *out, int8_t *scratch) {
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
                float total = 0.0f, count = 0.0f;  /* TFLM counts the taps in a float */
                for (int32_t fy = fy0; fy < fy1; ++fy)
                    for (int32_t fx = fx0; fx < fx1; ++fx) {
                        total += in[offset4(&in_s, 0, in_y0 + fy, in_x0 + fx, c)];
                        count += 1.0f;
                    }
                out[offset4(&out_s, 0, oy, ox, c)] = act_f32(total / count, p->act_min, p->act_max);
            }
        }
    }
}

void pp_softmax_f32_tflmref(const pp_softmax_f32_t *p, const float *in, float *out, int8_t *scratch) {
    (void)scratch;
    const int32_t depth = p->depth;
    for (int32_t i = 0; i < p->rows; ++i) {
        const float *x = in + i * depth;
        float *y = out + i * depth;
        float top = kLowest;
        for (int32_t c = 0; c < depth; ++c) top = top < x[c] ? x[c] : top;
        float sum = 0.0f;
        for (int32_t c = 0; c < depth; ++c) {
            const float e = expf((x[c] - top) * p->beta);
            y[c] = e;
            sum += e;
        }
        for (int32_t c = 0; c < depth; ++c) y[c] = y[c] / sum;
    }
}
