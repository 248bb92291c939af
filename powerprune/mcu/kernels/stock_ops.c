/* Kernel set "stock": SOFTMAX, LOGISTIC, MEAN, PAD, QUANTIZE and DEQUANTIZE, the same C for every kernel
 * set (tflm-ref, cmsis-nn, dense, sparse and auto all call these).
 *
 * Why one kernel: these ops cost a few operations per value, while the convolutions and fully connected
 * layers around them cost hundreds of MACs per value; softmax typically runs once on 10 or 12 class
 * scores. A second, tuned variant would be a second thing to keep bit-exact for no visible saving.
 *
 * Written from the published behaviour of TFLM's reference int8 kernels, not copied: the same
 * integer-only algorithms and roundings (the fixed-point helpers are in pp_fixedpoint.h), with every
 * parameter TFLM derives at Prepare time (multipliers, shifts, radii) derived by the code generator from
 * the same scales and stored in the descriptor. */
#include "pp_fixedpoint.h"
#include "pp_kernels.h"

/* Softmax, row by row: differences to the row maximum, rescaled by beta x input scale to Q5.26, exp in
 * fixed point, summed in Q12.19, one reciprocal per row, and every exp times the reciprocal rounded to
 * the output's 1/256 steps. Differences below diff_min count as exp = 0 (output -128). The exps are
 * computed twice, as TFLM does, instead of keeping a row of int32 in scratch. */
void pp_softmax_stock(const pp_softmax_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    enum { DIFF_BITS = 5, SUM_BITS = 12 };
    for (int32_t r = 0; r < p->rows; ++r) {
        const int8_t *x = in + r * p->depth;
        int8_t *y = out + r * p->depth;
        int32_t max = -128;
        for (int32_t c = 0; c < p->depth; ++c)
            if (x[c] > max) max = x[c];
        int32_t sum = 0;
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max;
            if (diff < p->diff_min) continue;
            /* |diff| x 2^shift stays below 2^31 for every diff >= diff_min: that is what diff_min is for
             * (the shift goes through uint32, where C defines it even for the shift of 31) */
            const int32_t scaled = pp_srdhm((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
            sum = pp_add_wrap(sum, pp_rounding_divide_by_pot(pp_exp_on_negative_values(scaled, DIFF_BITS),
                                                             SUM_BITS));
        }
        /* sum = 2^bits_over_unit x (1 + f) with f in [0, 1): 1 / (1 + f) by Newton-Raphson */
        const int headroom = pp_clz32((uint32_t)sum);
        const int bits_over_unit = SUM_BITS - headroom;
        const int32_t reciprocal = pp_one_over_one_plus_x((int32_t)(((uint32_t)sum << headroom) - (1u << 31)));
        /* TFLM stops with a failed check when this exceeds 31 (exps summing to 512 or more); the host
         * reference refuses such inputs, here the shift is only kept defined */
        int exponent = bits_over_unit + 31 - 8;
        if (exponent > 31) exponent = 31;
        for (int32_t c = 0; c < p->depth; ++c) {
            const int32_t diff = x[c] - max;
            if (diff < p->diff_min) {
                y[c] = -128;
                continue;
            }
            const int32_t scaled = pp_srdhm((int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
            const int32_t e = pp_exp_on_negative_values(scaled, DIFF_BITS);
            const int32_t v = pp_rounding_divide_by_pot(pp_srdhm(reciprocal, e), exponent) - 128;
            y[c] = pp_clamp8(v, -128, 127);
        }
    }
}

/* Logistic: inputs at or beyond +-radius saturate (checked first, so the Q4.27 rescale below never
 * overflows), the rest go through the fixed-point logistic and are rounded to 1/256 steps from -128. */
void pp_logistic_stock(const pp_logistic_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = in[i] - p->input_zero_point;
        if (v <= -p->input_range_radius) {
            out[i] = -128;
        } else if (v >= p->input_range_radius) {
            out[i] = 127;
        } else {
            const int32_t q4 = pp_requantize(v, p->input_multiplier, p->input_shift);
            const int32_t q0 = pp_logistic_q(q4, 4);
            out[i] = pp_clamp8(pp_rounding_divide_by_pot(q0, 31 - 8) - 128, -128, 127);
        }
    }
}

/* Mean over height and width, channel by channel: the int32 sum minus n x input zero point, requantized
 * with 1/n already folded into multiplier and shift (so no division happens here). TFLM keeps the sum
 * in int32 and the correction in int64 before casting to int32; uint32 arithmetic wraps the same way. */
void pp_mean_stock(const pp_mean_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t n = p->in_h * p->in_w;
    for (int32_t c = 0; c < p->channels; ++c) {
        uint32_t sum = 0;
        for (int32_t i = 0; i < n; ++i) sum += (uint32_t)(int32_t)in[i * p->channels + c];
        const int32_t centered = (int32_t)(sum - (uint32_t)p->input_zero_point * (uint32_t)n);
        const int32_t v = pp_requantize(centered, p->multiplier, p->shift) + p->output_zero_point;
        out[c] = pp_clamp8(v, -128, 127);
    }
}

/* Constant padding: the output is filled with pad_value (the zero point, i.e. real 0) and the input
 * copied into it row by row; input and output share quantization, so values are copied unchanged. */
void pp_pad_stock(const pp_pad_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t total = p->out_h * p->out_w * p->out_c;
    for (int32_t i = 0; i < total; ++i) out[i] = (int8_t)p->pad_value;
    for (int32_t y = 0; y < p->in_h; ++y) {
        for (int32_t x = 0; x < p->in_w; ++x) {
            const int8_t *src = in + (y * p->in_w + x) * p->in_c;
            int8_t *dst = out + ((y + p->pad_top) * p->out_w + x + p->pad_left) * p->out_c + p->pad_front;
            for (int32_t c = 0; c < p->in_c; ++c) dst[c] = src[c];
        }
    }
}

/* int8 -> int8 with other quantization parameters: TFLM's Requantize */
void pp_requantize_stock(const pp_quant_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = pp_requantize(in[i] - p->input_zero_point, p->multiplier, p->shift);
        out[i] = pp_clamp8(v + p->output_zero_point, -128, 127);
    }
}

/* float32 values are read and written through memcpy: the buffers are int8 arrays, and memcpy is the
 * defined way to move their bytes into a float (GCC turns it into loads, byte-wise where the address
 * might be unaligned, which the M0+ requires) */
static inline float load_f32(const int8_t *p) {
    float f;
    __builtin_memcpy(&f, p, sizeof f);
    return f;
}

static inline void store_f32(int8_t *p, float f) { __builtin_memcpy(p, &f, sizeof f); }

/* float32 -> int8: round(x / scale) half away from zero, plus the zero point, clamped. The M0+ has no
 * FPU; libgcc's soft-float division rounds to nearest even like the host's SSE, so the quotient is the
 * same float. TFLM casts the rounded quotient to int32, which C++ leaves undefined out of range (and for
 * NaN); on the x86 host the TFLM oracle runs on, that gives INT32_MIN, which the zero point then wraps.
 * We reproduce that instead of the ARM conversion's saturation, so every backend agrees. */
void pp_quantize_stock(const pp_quant_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    for (int32_t i = 0; i < p->size; ++i) {
        const float q = load_f32(in + 4 * i) / p->scale;
        int32_t v = INT32_MIN;
        if (q >= -2147483648.0f && q < 2147483648.0f) {  /* false for NaN */
            v = (int32_t)q;                          /* truncates toward zero */
            const float frac = q - (float)v;          /* exact: both are within one unit */
            if (frac >= 0.5f) v += 1;
            else if (frac <= -0.5f) v -= 1;
        }
        out[i] = pp_clamp8(pp_add_wrap(v, p->output_zero_point), -128, 127);
    }
}

/* int8 -> float32: scale x (q - zero point), one float multiplication (exact product rounded once,
 * as TFLM's) */
void pp_dequantize_stock(const pp_quant_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    for (int32_t i = 0; i < p->size; ++i) store_f32(out + 4 * i, p->scale * (float)(in[i] - p->input_zero_point));
}
