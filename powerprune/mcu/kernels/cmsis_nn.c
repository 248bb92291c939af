/* Kernel set "cmsis-nn": the second stock baseline, what Pico users run with pico-tflmicro.
 *
 * Our own implementation, written from the documented behaviour of Arm's CMSIS-NN int8 kernels on a
 * core without the DSP extension (the Cortex-M0+ takes CMSIS-NN's portable pure-C path): the same
 * algorithm and loop structure, not their code. Each kernel names the CMSIS-NN function it mirrors.
 *
 * - convolution: im2col of two output pixels at a time into int16 with the input offset already added,
 *   then a 2x2-blocked matrix multiply (two output channels x two columns per pass); 1x1 convolutions
 *   with stride 1 skip the im2col and run a 2x2-blocked int8 matrix product directly;
 * - fully connected: three weight rows per pass over the input vector;
 * - depthwise: CMSIS-NN's 3x3 / channel-multiplier-of-4 / generic kernels, chosen as its wrapper does;
 * - pooling: max pool by copy-then-compare of whole channel vectors, average pool per channel.
 *
 * Like CMSIS-NN, every weight is visited (zero or not) and the input offset is added at run time (no
 * folded bias), and support routines that CMSIS-NN compiles as separate library functions are kept out
 * of line here too (noinline), so their call costs are paid as on a real build. Requantization is
 * CMSIS-NN's default double-rounding arm_nn_requantize, which equals TFLM's
 * MultiplyByQuantizedMultiplier for every multiplier TFLM produces (see cmsis_requantize). */
#include "pp_fixedpoint.h"
#include "pp_kernels.h"

#define CMSIS_NOINLINE __attribute__((noinline))

static inline int32_t max32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t min32(int32_t a, int32_t b) { return a < b ? a : b; }

/* Mirrors arm_nn_requantize (CMSIS_NN_USE_SINGLE_ROUNDING off, the default).
 *
 * The high half of the doubled product is taken by adding 2^30 to the 64-bit product and shifting
 * right by 31 (a floor). TFLM instead nudges by 2^30 or 1 - 2^30 depending on the sign and divides
 * (truncating toward zero); for a negative product ceil((ab + 1 - 2^30) / 2^31) equals
 * floor((ab + 2^30) / 2^31), so both give the same value for every product except a = b = INT32_MIN,
 * which TFLM saturates. TFLM's multipliers are never negative (0 or in [2^30, 2^31)), so that case
 * cannot occur and the two roundings are bit-identical. The right shift is the same round-half-away
 * division both libraries use. On the M0+ the 64-bit multiply is a call to libgcc's __aeabi_lmul,
 * exactly as CMSIS-NN's C compiles there. */
static inline int32_t cmsis_requantize(int32_t val, int32_t multiplier, int32_t shift) {
    const int left = shift > 0 ? shift : 0;
    const int right = shift > 0 ? 0 : -shift;
    const int32_t scaled = (int32_t)((uint32_t)val << left);  /* wraps like the int32 multiply it stands for */
    const int64_t product = (int64_t)scaled * multiplier + (1ll << 30);
    return pp_rounding_divide_by_pot((int32_t)(product >> 31), right);
}

static inline int8_t cmsis_output(int32_t acc, int32_t multiplier, int32_t shift, int32_t offset, int32_t lo,
                                  int32_t hi) {
    acc = cmsis_requantize(acc, multiplier, shift) + offset;
    acc = max32(acc, lo);
    acc = min32(acc, hi);
    return (int8_t)acc;
}

/* ---- convolution ------------------------------------------------------------------------------- */

/* Mirrors arm_q7_to_q15_with_offset: widen one pixel's channels to int16 with the input offset added.
 * On a core without SIMD this is one element per iteration. */
static CMSIS_NOINLINE void q7_to_q15_with_offset(const int8_t *src, int16_t *dst, int32_t n, int32_t offset) {
    while (n-- > 0) *dst++ = (int16_t)(*src++ + offset);
}

/* A padded tap: zeros, which after the offset has been added is what padding contributes. */
static CMSIS_NOINLINE void zero_q15(int16_t *dst, int32_t n) {
    while (n-- > 0) *dst++ = 0;
}

/* Mirrors arm_nn_mat_mult_kernel_s8_s16: weights (out_c rows of `depth` int8) times two im2col columns
 * (int16, offset included). Two output channels and both columns per pass, so every weight byte and
 * every column element loaded feeds two multiply-accumulates. Writes out_c outputs for each of the two
 * pixels (the second pixel's block starts out_c bytes after the first) and returns the output pointer
 * past both. */
static CMSIS_NOINLINE int8_t *mat_mult_kernel_s8_s16(const int8_t *weights, const int16_t *col0, int32_t out_c,
                                                     const int32_t *shift, const int32_t *mult, int32_t out_offset,
                                                     int32_t lo, int32_t hi, int32_t depth, const int32_t *bias,
                                                     int8_t *out0) {
    int8_t *out1 = out0 + out_c;
    const int16_t *const col1 = col0 + depth;
    const int8_t *w0 = weights;
    for (int32_t pair = out_c / 2; pair > 0; --pair) {
        const int8_t *w1 = w0 + depth;
        const int16_t *b0 = col0, *b1 = col1;
        int32_t ch0_px0 = 0, ch0_px1 = 0, ch1_px0 = 0, ch1_px1 = 0;
        if (bias) {
            ch0_px0 = ch0_px1 = *bias++;
            ch1_px0 = ch1_px1 = *bias++;
        }
        for (int32_t n = depth; n > 0; --n) {
            const int32_t a0 = *w0++, a1 = *w1++;
            const int32_t x0 = *b0++, x1 = *b1++;
            ch0_px0 += a0 * x0;
            ch0_px1 += a0 * x1;
            ch1_px0 += a1 * x0;
            ch1_px1 += a1 * x1;
        }
        *out0++ = cmsis_output(ch0_px0, mult[0], shift[0], out_offset, lo, hi);
        *out1++ = cmsis_output(ch0_px1, mult[0], shift[0], out_offset, lo, hi);
        *out0++ = cmsis_output(ch1_px0, mult[1], shift[1], out_offset, lo, hi);
        *out1++ = cmsis_output(ch1_px1, mult[1], shift[1], out_offset, lo, hi);
        mult += 2;
        shift += 2;
        w0 = w1;  /* w0 has walked one row; skip the row w1 walked */
    }
    if (out_c & 1) {  /* an odd last channel, still against both columns */
        const int16_t *b0 = col0, *b1 = col1;
        int32_t px0 = 0, px1 = 0;
        if (bias) px0 = px1 = *bias;
        for (int32_t n = depth; n > 0; --n) {
            const int32_t a0 = *w0++;
            px0 += a0 * *b0++;
            px1 += a0 * *b1++;
        }
        *out0++ = cmsis_output(px0, *mult, *shift, out_offset, lo, hi);
        *out1++ = cmsis_output(px1, *mult, *shift, out_offset, lo, hi);
    }
    return out0 + out_c;
}

/* Mirrors arm_nn_mat_mult_nt_t_s8 (pure-C branch), which arm_convolve_1x1_s8_fast calls: a 1x1
 * convolution with stride 1 and no padding is a plain matrix product of the pixels (rows of in_c
 * int8) and the filters, so no im2col is needed. Per pair of output channels the input offset's
 * contribution (offset * sum of the filter row, plus bias) is computed once at run time; then two
 * pixels x two channels per pass accumulate raw int8 products. An odd last channel adds the offset
 * per element instead. */
static CMSIS_NOINLINE void mat_mult_nt_t_s8(const int8_t *lhs, const int8_t *rhs, const int32_t *bias, int8_t *dst,
                                            const int32_t *mult, const int32_t *shift, int32_t lhs_rows,
                                            int32_t rhs_rows, int32_t cols, int32_t lhs_offset, int32_t dst_offset,
                                            int32_t lo, int32_t hi) {
    int32_t r = 0;
    for (; r + 2 <= rhs_rows; r += 2, rhs += 2 * cols, dst += 2) {
        int32_t off0 = 0, off1 = 0;
        for (int32_t i = 0; i < cols; ++i) {
            off0 += rhs[i];
            off1 += rhs[i + cols];
        }
        off0 *= lhs_offset;
        off1 *= lhs_offset;
        if (bias) {
            off0 += bias[r];
            off1 += bias[r + 1];
        }
        const int8_t *x = lhs;
        int8_t *o = dst;
        for (int32_t px = lhs_rows / 2; px > 0; --px) {
            int32_t px0_ch0 = off0, px0_ch1 = off1, px1_ch0 = off0, px1_ch1 = off1;
            const int8_t *w = rhs;
            for (int32_t n = cols; n > 0; --n, ++w, ++x) {
                const int32_t w0 = w[0], w1 = w[cols];
                const int32_t x0 = x[0], x1 = x[cols];
                px0_ch0 += x0 * w0;
                px0_ch1 += x0 * w1;
                px1_ch0 += x1 * w0;
                px1_ch1 += x1 * w1;
            }
            o[0] = cmsis_output(px0_ch0, mult[r], shift[r], dst_offset, lo, hi);
            o[1] = cmsis_output(px0_ch1, mult[r + 1], shift[r + 1], dst_offset, lo, hi);
            o += rhs_rows;
            o[0] = cmsis_output(px1_ch0, mult[r], shift[r], dst_offset, lo, hi);
            o[1] = cmsis_output(px1_ch1, mult[r + 1], shift[r + 1], dst_offset, lo, hi);
            o += rhs_rows;
            x += cols;  /* x walked the first pixel of the pair; skip the second */
        }
        if (lhs_rows & 1) {  /* an odd last pixel */
            int32_t ch0 = off0, ch1 = off1;
            const int8_t *w = rhs;
            for (int32_t n = cols; n > 0; --n, ++w, ++x) {
                ch0 += x[0] * w[0];
                ch1 += x[0] * w[cols];
            }
            o[0] = cmsis_output(ch0, mult[r], shift[r], dst_offset, lo, hi);
            o[1] = cmsis_output(ch1, mult[r + 1], shift[r + 1], dst_offset, lo, hi);
        }
    }
    if (r < rhs_rows) {  /* an odd last output channel, every pixel */
        const int8_t *x = lhs;
        for (int32_t px = 0; px < lhs_rows; ++px, dst += rhs_rows) {
            int32_t acc = bias ? bias[r] : 0;
            const int8_t *w = rhs;
            for (int32_t n = cols; n > 0; --n) acc += (*x++ + lhs_offset) * *w++;
            dst[0] = cmsis_output(acc, mult[r], shift[r], dst_offset, lo, hi);
        }
    }
}

/* Mirrors arm_convolve_wrapper_s8's choice on a core without MVE: arm_convolve_1x1_s8_fast for a 1x1
 * filter with stride 1 and no padding, otherwise arm_convolve_s8 (pure-C branch; the wrapper's
 * 1 x n choice, arm_convolve_1_x_n_s8, falls back to it without MVE). The scratch holds two im2col
 * columns of k_h * k_w * in_c int16 each; the code generator reserves 4 * depth bytes (word-rounded),
 * none for the 1x1 case. */
void pp_conv2d_cmsisnn(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    if (p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 && p->pad_w == 0) {
        mat_mult_nt_t_s8(in, p->weights, p->bias, out, p->multiplier, p->shift, p->out_h * p->out_w, p->out_c,
                         p->in_c, p->input_offset, p->output_offset, p->act_min, p->act_max);
        return;
    }
    int16_t *const buf = (int16_t *)scratch;  /* arena scratch is word aligned */
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c;
    const int32_t k_h = p->k_h, k_w = p->k_w, out_c = p->out_c;
    const int32_t depth = k_h * k_w * in_c;
    const int32_t input_offset = p->input_offset, out_offset = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    int16_t *col = buf;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            /* im2col: this pixel's window as one column, padding as zeros */
            for (int32_t ky = 0; ky < k_h; ++ky) {
                for (int32_t kx = 0; kx < k_w; ++kx) {
                    const int32_t y = y0 + ky, x = x0 + kx;
                    if (y < 0 || y >= in_h || x < 0 || x >= in_w)
                        zero_q15(col, in_c);
                    else
                        q7_to_q15_with_offset(in + (y * in_w + x) * in_c, col, in_c, input_offset);
                    col += in_c;
                }
            }
            if (col == buf + 2 * depth) {  /* two columns ready: one blocked matrix multiply */
                out = mat_mult_kernel_s8_s16(p->weights, buf, out_c, p->shift, p->multiplier, out_offset, lo, hi,
                                             depth, p->bias, out);
                col = buf;
            }
        }
    }
    if (col != buf) {  /* an odd number of output pixels leaves one column */
        const int8_t *w = p->weights;
        for (int32_t oc = 0; oc < out_c; ++oc) {
            int32_t acc = p->bias ? p->bias[oc] : 0;
            const int16_t *x = buf;
            for (int32_t n = depth; n > 0; --n) acc += *w++ * *x++;
            *out++ = cmsis_output(acc, p->multiplier[oc], p->shift[oc], out_offset, lo, hi);
        }
    }
}

/* ---- depthwise convolution -------------------------------------------------------------------- */

/* Mirrors arm_depthwise_conv_3x3_s8 (channel multiplier 1, 3x3 filter, padding at most 1): four
 * channels per pass, the filter rows clipped at the top and bottom, and the left and right filter
 * columns dropped when they fall in the padding (with padding <= 1 only those two can). */
static void depthwise_3x3(const pp_conv_t *p, const int8_t *in, int8_t *out) {
    const int32_t in_h = p->in_h, in_w = p->in_w, ch = p->in_c;
    const int32_t input_offset = p->input_offset, out_offset = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t *const bias = p->bias, *const mult = p->multiplier, *const shift = p->shift;
    const int32_t row = in_w * ch, k_row = 3 * ch;
    for (int32_t oy = 0, y0 = -p->pad_h; oy < p->out_h; ++oy, y0 += p->stride_h) {
        const int32_t ky0 = max32(0, -y0), ky1 = min32(3, in_h - y0);
        for (int32_t ox = 0, x0 = -p->pad_w; ox < p->out_w; ++ox, x0 += p->stride_w) {
            const int left = x0 >= 0, right = in_w - x0 >= 3;  /* first / third filter column inside */
            int32_t c = 0;
            for (; c + 4 <= ch; c += 4) {
                int32_t acc0 = 0, acc1 = 0, acc2 = 0, acc3 = 0;
                if (bias) {
                    acc0 = bias[c];
                    acc1 = bias[c + 1];
                    acc2 = bias[c + 2];
                    acc3 = bias[c + 3];
                }
                const int8_t *x = in + (y0 + ky0) * row + x0 * ch + c;
                const int8_t *w = p->weights + ky0 * k_row + c;
                for (int32_t ky = ky0; ky < ky1; ++ky, x += row, w += k_row) {
                    for (int32_t kx = left ? 0 : 1; kx < (right ? 3 : 2); ++kx) {
                        const int8_t *xx = x + kx * ch, *ww = w + kx * ch;
                        acc0 += (xx[0] + input_offset) * ww[0];
                        acc1 += (xx[1] + input_offset) * ww[1];
                        acc2 += (xx[2] + input_offset) * ww[2];
                        acc3 += (xx[3] + input_offset) * ww[3];
                    }
                }
                *out++ = cmsis_output(acc0, mult[c], shift[c], out_offset, lo, hi);
                *out++ = cmsis_output(acc1, mult[c + 1], shift[c + 1], out_offset, lo, hi);
                *out++ = cmsis_output(acc2, mult[c + 2], shift[c + 2], out_offset, lo, hi);
                *out++ = cmsis_output(acc3, mult[c + 3], shift[c + 3], out_offset, lo, hi);
            }
            for (; c < ch; ++c) {  /* channels left over from the blocks of four */
                int32_t acc = bias ? bias[c] : 0;
                const int8_t *x = in + (y0 + ky0) * row + x0 * ch + c;
                const int8_t *w = p->weights + ky0 * k_row + c;
                for (int32_t ky = ky0; ky < ky1; ++ky, x += row, w += k_row)
                    for (int32_t kx = left ? 0 : 1; kx < (right ? 3 : 2); ++kx)
                        acc += (x[kx * ch] + input_offset) * w[kx * ch];
                *out++ = cmsis_output(acc, mult[c], shift[c], out_offset, lo, hi);
            }
        }
    }
}

/* Mirrors depthwise_conv_s8_mult_4 inside arm_depthwise_conv_s8 (channel multiplier a multiple of 4):
 * the filter window clipped to the input once per pixel, four output channels of one input channel
 * per pass, each input value loaded once for the four. */
static void depthwise_mult4(const pp_conv_t *p, const int8_t *in, int8_t *out) {
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, out_c = p->out_c, dm = p->depth_multiplier;
    const int32_t k_h = p->k_h, k_w = p->k_w;
    const int32_t input_offset = p->input_offset, out_offset = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    for (int32_t oy = 0, y0 = -p->pad_h; oy < p->out_h; ++oy, y0 += p->stride_h) {
        const int32_t ky0 = max32(0, -y0), ky1 = min32(k_h, in_h - y0);
        for (int32_t ox = 0, x0 = -p->pad_w; ox < p->out_w; ++ox, x0 += p->stride_w) {
            const int32_t kx0 = max32(0, -x0), kx1 = min32(k_w, in_w - x0);
            for (int32_t ic = 0, oc = 0; ic < in_c; ++ic) {
                for (int32_t m = 0; m < dm; m += 4, oc += 4) {
                    int32_t acc[4] = {0, 0, 0, 0};
                    if (p->bias) {
                        acc[0] = p->bias[oc];
                        acc[1] = p->bias[oc + 1];
                        acc[2] = p->bias[oc + 2];
                        acc[3] = p->bias[oc + 3];
                    }
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        const int8_t *w = p->weights + (ky * k_w + kx0) * out_c + oc;
                        const int8_t *x = in + ((y0 + ky) * in_w + x0 + kx0) * in_c + ic;
                        for (int32_t kx = kx0; kx < kx1; ++kx, w += out_c, x += in_c) {
                            const int32_t v = *x + input_offset;
                            acc[0] += v * w[0];
                            acc[1] += v * w[1];
                            acc[2] += v * w[2];
                            acc[3] += v * w[3];
                        }
                    }
                    for (int32_t j = 0; j < 4; ++j)
                        *out++ = cmsis_output(acc[j], p->multiplier[oc + j], p->shift[oc + j], out_offset, lo, hi);
                }
            }
        }
    }
}

/* Mirrors depthwise_conv_s8_generic inside arm_depthwise_conv_s8: one output at a time, the filter
 * window clipped to the input (no per-tap bounds check), full index arithmetic per tap. */
static void depthwise_generic(const pp_conv_t *p, const int8_t *in, int8_t *out) {
    const int32_t in_h = p->in_h, in_w = p->in_w, in_c = p->in_c, dm = p->depth_multiplier;
    const int32_t k_h = p->k_h, k_w = p->k_w;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        const int32_t y0 = oy * p->stride_h - p->pad_h;
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t x0 = ox * p->stride_w - p->pad_w;
            for (int32_t ic = 0; ic < in_c; ++ic) {
                for (int32_t m = 0; m < dm; ++m) {
                    const int32_t oc = m + ic * dm;
                    const int32_t kx0 = max32(0, -x0), kx1 = min32(k_w, in_w - x0);
                    const int32_t ky0 = max32(0, -y0), ky1 = min32(k_h, in_h - y0);
                    int32_t acc = p->bias ? p->bias[oc] : 0;
                    for (int32_t ky = ky0; ky < ky1; ++ky) {
                        for (int32_t kx = kx0; kx < kx1; ++kx) {
                            const int32_t xi = ((y0 + ky) * in_w + x0 + kx) * in_c + ic;
                            const int32_t wi = (ky * k_w + kx) * (in_c * dm) + oc;
                            acc += (in[xi] + p->input_offset) * p->weights[wi];
                        }
                    }
                    *out++ = cmsis_output(acc, p->multiplier[oc], p->shift[oc], p->output_offset, p->act_min,
                                          p->act_max);
                }
            }
        }
    }
}

/* Mirrors arm_depthwise_conv_wrapper_s8's choice on a core without DSP/MVE: the 3x3 kernel for
 * multiplier 1 with padding <= 1; otherwise arm_depthwise_conv_s8 (arm_depthwise_conv_s8_opt, the
 * wrapper's other multiplier-1 choice, falls back to it without DSP), which takes the
 * multiple-of-4 path or the generic one. */
void pp_depthwise_cmsisnn(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    if (p->depth_multiplier == 1 && p->k_h == 3 && p->k_w == 3 && p->pad_h <= 1 && p->pad_w <= 1)
        depthwise_3x3(p, in, out);
    else if (p->depth_multiplier % 4 == 0)
        depthwise_mult4(p, in, out);
    else
        depthwise_generic(p, in, out);
}

/* ---- fully connected -------------------------------------------------------------------------- */

/* Mirrors arm_nn_vec_mat_mult_t_s8 (pure-C branch, int8 weights so no weight offset) and, for
 * per-channel quantization, arm_nn_vec_mat_mult_t_per_ch_s8: three weight rows per pass over the
 * input, each input value loaded and offset once for the three rows, then the leftover rows one at
 * a time. */
static CMSIS_NOINLINE void vec_mat_mult_t_s8(const int8_t *lhs, const int8_t *rhs, const int32_t *bias, int8_t *dst,
                                             int32_t lhs_offset, int32_t dst_offset, const int32_t *mult,
                                             const int32_t *shift, int32_t mult_step, int32_t cols, int32_t rows,
                                             int32_t lo, int32_t hi) {
    for (int32_t r = rows / 3; r > 0; --r) {
        const int8_t *x = lhs, *w0 = rhs, *w1 = rhs + cols, *w2 = rhs + 2 * cols;
        int32_t acc0 = 0, acc1 = 0, acc2 = 0;
        if (bias) {
            acc0 = *bias++;
            acc1 = *bias++;
            acc2 = *bias++;
        }
        for (int32_t n = cols; n > 0; --n) {
            const int32_t v = *x++ + lhs_offset;
            acc0 += v * *w0++;
            acc1 += v * *w1++;
            acc2 += v * *w2++;
        }
        *dst++ = cmsis_output(acc0, mult[0], shift[0], dst_offset, lo, hi);
        mult += mult_step;
        shift += mult_step;
        *dst++ = cmsis_output(acc1, mult[0], shift[0], dst_offset, lo, hi);
        mult += mult_step;
        shift += mult_step;
        *dst++ = cmsis_output(acc2, mult[0], shift[0], dst_offset, lo, hi);
        mult += mult_step;
        shift += mult_step;
        rhs += 3 * cols;
    }
    for (int32_t r = rows % 3; r > 0; --r) {
        const int8_t *x = lhs, *w = rhs;
        int32_t acc = bias ? *bias++ : 0;
        for (int32_t n = cols; n > 0; --n) acc += (*x++ + lhs_offset) * *w++;
        *dst++ = cmsis_output(acc, mult[0], shift[0], dst_offset, lo, hi);
        mult += mult_step;
        shift += mult_step;
        rhs += cols;
    }
}

/* Mirrors arm_fully_connected_s8 (and arm_fully_connected_per_channel_s8): one vector-matrix product. */
void pp_fc_cmsisnn(const pp_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    vec_mat_mult_t_s8(in, p->weights, p->bias, out, p->input_offset, p->output_offset, p->multiplier, p->shift,
                      p->per_channel ? 1 : 0, p->in_size, p->out_size, p->act_min, p->act_max);
}

/* ---- pooling ---------------------------------------------------------------------------------- */

/* The max of two channel vectors into the first, four bytes per iteration (compare_and_replace in
 * arm_max_pool_s8). */
static CMSIS_NOINLINE void compare_and_replace_if_larger(int8_t *dst, const int8_t *src, int32_t n) {
    for (; n >= 4; n -= 4, dst += 4, src += 4) {
        if (src[0] > dst[0]) dst[0] = src[0];
        if (src[1] > dst[1]) dst[1] = src[1];
        if (src[2] > dst[2]) dst[2] = src[2];
        if (src[3] > dst[3]) dst[3] = src[3];
    }
    for (; n > 0; --n, ++dst, ++src)
        if (*src > *dst) *dst = *src;
}

/* Mirrors arm_max_pool_s8: per output pixel the window is clipped to the input, the first pixel's
 * channel vector is copied to the output and every further one merged in with an element-wise max;
 * the activation clamp runs over the whole output at the end. */
void pp_maxpool_cmsisnn(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t c = p->channels, in_h = p->in_h, in_w = p->in_w;
    int8_t *dst = out;
    for (int32_t oy = 0, y0 = -p->pad_h; oy < p->out_h; ++oy, y0 += p->stride_h) {
        for (int32_t ox = 0, x0 = -p->pad_w; ox < p->out_w; ++ox, x0 += p->stride_w) {
            const int32_t ky0 = max32(0, -y0), ky1 = min32(p->k_h, in_h - y0);
            const int32_t kx0 = max32(0, -x0), kx1 = min32(p->k_w, in_w - x0);
            int first = 1;
            for (int32_t ky = ky0; ky < ky1; ++ky) {
                for (int32_t kx = kx0; kx < kx1; ++kx) {
                    const int8_t *src = in + ((y0 + ky) * in_w + x0 + kx) * c;
                    if (first) {
                        for (int32_t i = 0; i < c; ++i) dst[i] = src[i];
                        first = 0;
                    } else {
                        compare_and_replace_if_larger(dst, src, c);
                    }
                }
            }
            if (first)  /* a window entirely in the padding: TFLM's max over nothing is -128 */
                for (int32_t i = 0; i < c; ++i) dst[i] = -128;
            dst += c;
        }
    }
    const int32_t lo = p->act_min, hi = p->act_max;
    for (int32_t i = 0, n = p->out_h * p->out_w * c; i < n; ++i) {
        int32_t v = out[i];
        v = max32(v, lo);
        v = min32(v, hi);
        out[i] = (int8_t)v;
    }
}

/* Mirrors arm_avgpool_s8's pure-C branch: per output element, the full window with a bounds check per
 * tap, counting the taps inside, then the rounded (half away from zero) division. */
void pp_avgpool_cmsisnn(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t c = p->channels, in_h = p->in_h, in_w = p->in_w;
    for (int32_t oy = 0; oy < p->out_h; ++oy) {
        for (int32_t ox = 0; ox < p->out_w; ++ox) {
            const int32_t y0 = oy * p->stride_h - p->pad_h, x0 = ox * p->stride_w - p->pad_w;
            for (int32_t ch = 0; ch < c; ++ch) {
                int32_t sum = 0, count = 0;
                for (int32_t y = y0; y < y0 + p->k_h; ++y) {
                    for (int32_t x = x0; x < x0 + p->k_w; ++x) {
                        if (y >= 0 && x >= 0 && y < in_h && x < in_w) {
                            sum += in[ch + c * (x + y * in_w)];
                            ++count;
                        }
                    }
                }
                if (count == 0) count = 1;  /* cannot happen for TFLM's padding; gives 0 like tflm-ref */
                sum = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                sum = max32(sum, p->act_min);
                sum = min32(sum, p->act_max);
                out[ch + c * (ox + oy * p->out_w)] = (int8_t)sum;
            }
        }
    }
}
