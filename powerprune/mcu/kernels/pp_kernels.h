/* Layer descriptors and kernel entry points. The code generator fills one const descriptor per layer
 * (in flash with the default layout) and calls the kernel of the chosen set. */
#ifndef PP_KERNELS_H
#define PP_KERNELS_H

#include <stdint.h>

typedef struct {
    int16_t in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t k_h, k_w;
    int16_t stride_h, stride_w;
    int16_t pad_h, pad_w;          /* leading padding (top, left) */
    int16_t depth_multiplier;      /* depthwise only */
    int32_t input_offset;          /* -input zero point */
    int32_t output_offset;         /* output zero point */
    int32_t act_min, act_max;
    const int8_t *weights;         /* OHWI (conv) or 1HWO (depthwise), stock kernels */
    const int32_t *bias;           /* stock kernels; data-driven sparse: + input_offset * sum(weights) */
    const int32_t *multiplier;     /* per output channel */
    const int32_t *shift;
    const uint16_t *nz_count;      /* data-driven sparse: nonzeros per output channel */
    const uint32_t *nz_packed;     /* data-driven sparse: (input offset << 8) | (uint8_t)weight each */
    const int32_t *stream;         /* dense: everything the assembly loop reads, in its order (codegen) */
    /* the input as the fast kernels read it (streams.input_layout derives it; 0 for the stock kernels):
     * in place, or a copy in scratch padded to the rows and columns the windows touch */
    int32_t row_bytes;             /* bytes from one row the windows read to the next */
    int32_t padded_rows;           /* rows of the padded copy */
    int32_t row_lead;              /* bytes from a padded row's start to its first input byte */
    int32_t row_copy;              /* input bytes copied into each padded row */
    int32_t scratch_bytes;         /* scratch of the copy, a word multiple (0: the input is read in place) */
    int32_t window_origin;         /* bytes from the scratch's start to output pixel (0, 0)'s window */
} pp_conv_t;

typedef struct {
    int16_t in_size, out_size;
    int16_t per_channel;           /* multiplier/shift arrays have out_size entries, else 1 */
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;         /* (out, in), stock kernels */
    const int32_t *bias;           /* stock kernels */
    const int32_t *multiplier;
    const int32_t *shift;
    const int32_t *stream;         /* dense/sparse: folded biases, weights (dense: interleaved rows;
                                    * sparse: index << 8 | value per nonzero) and requantization records */
} pp_fc_t;

typedef struct {
    int16_t in_h, in_w, channels;
    int16_t out_h, out_w;
    int16_t k_h, k_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} pp_pool_t;

/* ADD of two int8 tensors of the same shape, TFLM's arithmetic: both inputs shifted up by left_shift
 * and rescaled to a common scale (each multiplier < 1, shifts <= 0), summed, rescaled to the output. */
typedef struct {
    int32_t size;                  /* elements of each input and of the output */
    int32_t left_shift;            /* 20 for int8 */
    int32_t input1_offset, input1_multiplier, input1_shift;
    int32_t input2_offset, input2_multiplier, input2_shift;
    int32_t output_offset, output_multiplier, output_shift;
    int32_t act_min, act_max;
} pp_add_t;

/* ADD by tables (dense, sparse and auto; kernels/add.c, streams.add_tables): terms1/terms2 hold each
 * input's scaled value for every byte (index: the byte as uint8), the first minus the threshold
 * table's origin; the sum is rounded by the threshold table (w, m, p, o_min, thresholds) or, when
 * thresholds is 0, by TFLM's arithmetic with the output_* fields. */
typedef struct {
    int32_t size;
    uint32_t w, m;
    int32_t p, o_min;
    int32_t output_offset, output_multiplier, output_shift, act_min, act_max;
    const int32_t *terms1;
    const int32_t *terms2;
    const uint32_t *thresholds;
} pp_add_tab_t;
/* SOFTMAX over the last axis: rows x depth values; the Q5.26 input multiplier and the smallest input
 * difference that still counts, both derived from beta and the input scale at code generation */
typedef struct {
    int32_t rows, depth;
    int32_t input_multiplier, input_left_shift, diff_min;
} pp_softmax_t;

/* LOGISTIC over size values: Q4.27 input multiplier and the radius beyond which the output saturates */
typedef struct {
    int32_t size;
    int32_t input_zero_point, input_range_radius, input_multiplier, input_shift;
} pp_logistic_t;

/* MEAN over height and width of an HWC tensor; multiplier and shift include 1 / (in_h x in_w) */
typedef struct {
    int16_t in_h, in_w, channels;
    int32_t input_zero_point, output_zero_point, multiplier, shift;
} pp_mean_t;

/* PAD of an HWC tensor (lower-rank tensors are given as 1 x 1 x C or 1 x W x C) with pad_value */
typedef struct {
    int16_t in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t pad_top, pad_left, pad_front;
    int32_t pad_value;
} pp_pad_t;

/* QUANTIZE (int8 -> int8: multiplier and shift; float32 -> int8: scale) and DEQUANTIZE (int8 -> float32:
 * scale); float tensors are bytes in the int8 buffers, 4 per value */
typedef struct {
    int32_t size;
    int32_t input_zero_point, output_zero_point, multiplier, shift;
    float scale;
} pp_quant_t;

/* float32 descriptors (a float32 graph): the same geometry, float activation bounds, float weights and
 * biases, nothing to requantize. */
typedef struct {
    int16_t in_h, in_w, in_c;
    int16_t out_h, out_w, out_c;
    int16_t k_h, k_w;
    int16_t stride_h, stride_w;
    int16_t pad_h, pad_w;
    int16_t depth_multiplier;      /* depthwise only */
    float act_min, act_max;        /* the fused activation's clamp */
    const float *weights;          /* OHWI (conv) or 1HWO (depthwise) */
    const float *bias;
} pp_conv_f32_t;

typedef struct {
    int16_t in_size, out_size;
    float act_min, act_max;
    const float *weights;          /* (out, in) */
    const float *bias;
} pp_fc_f32_t;

typedef struct {
    int16_t in_h, in_w, channels;
    int16_t out_h, out_w;
    int16_t k_h, k_w, stride_h, stride_w, pad_h, pad_w;
    float act_min, act_max;
} pp_pool_f32_t;

typedef struct {
    int16_t rows, depth;           /* softmax over the last axis: rows x depth values */
    float beta;
} pp_softmax_f32_t;

/* Every kernel takes (descriptor, input, output, scratch); scratch is arena space the planner reserves
 * for kernels that pre-pad their input. */

/* tflm-ref: our re-implementation of the loop structure and arithmetic of TFLM's reference int8
 * kernels (per-tap bounds checks, offsets recomputed per access, per-channel requantization). */
void pp_conv2d_tflmref(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_depthwise_tflmref(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_fc_tflmref(const pp_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_maxpool_tflmref(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_avgpool_tflmref(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch);

/* tflm-skip: the paper's "adapted TFLM": the tflm-ref loops with a zero-weight test that skips the
 * multiply-accumulate (kernels/tflm_skip.c). Pools take the tflm-ref kernels. */
void pp_conv2d_tflmskip(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_depthwise_tflmskip(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_fc_tflmskip(const pp_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);

/* float32 (kernels/tflm_float.c): TFLM's float reference kernels in soft-float, bit-identical to TFLM;
 * tflm-skip's versions skip the multiply and add of a zero weight. Pools and softmax have no weights. */
void pp_conv2d_f32_tflmref(const pp_conv_f32_t *p, const float *in, float *out, int8_t *scratch);
void pp_conv2d_f32_tflmskip(const pp_conv_f32_t *p, const float *in, float *out, int8_t *scratch);
void pp_depthwise_f32_tflmref(const pp_conv_f32_t *p, const float *in, float *out, int8_t *scratch);
void pp_depthwise_f32_tflmskip(const pp_conv_f32_t *p, const float *in, float *out, int8_t *scratch);
void pp_fc_f32_tflmref(const pp_fc_f32_t *p, const float *in, float *out, int8_t *scratch);
void pp_fc_f32_tflmskip(const pp_fc_f32_t *p, const float *in, float *out, int8_t *scratch);
void pp_maxpool_f32_tflmref(const pp_pool_f32_t *p, const float *in, float *out, int8_t *scratch);
void pp_avgpool_f32_tflmref(const pp_pool_f32_t *p, const float *in, float *out, int8_t *scratch);
void pp_softmax_f32_tflmref(const pp_softmax_f32_t *p, const float *in, float *out, int8_t *scratch);

/* cmsis-nn: our implementation of CMSIS-NN's pure-C (no DSP, no MVE) int8 path, what pico-tflmicro
 * runs on the M0+: int16 im2col of two pixels + 2x2-blocked matrix multiply for convolutions, three
 * rows per pass for fully connected, CMSIS-NN's depthwise and pooling structure (kernels/cmsis_nn.c).
 * The convolution's scratch holds two int16 im2col columns. */
void pp_conv2d_cmsisnn(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_depthwise_cmsisnn(const pp_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_fc_cmsisnn(const pp_fc_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_maxpool_cmsisnn(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_avgpool_cmsisnn(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch);

/* dense: hand-scheduled Cortex-M0+ assembly (kernels/dense.c, kernels/pp_m0.h): pre-padded input
 * (pads hold the input zero point, so they contribute nothing), input offset folded into the bias,
 * up to six output channels per input load (convolution) or eight rows per input (fully connected),
 * weights streamed in the order the loop consumes them. Max pooling: a tight C loop. */
void pp_conv2d_dense(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);
void pp_fc_dense(const pp_fc_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);
void pp_maxpool_dense(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
/* dense depthwise convolution and average pooling (kernels/dense_dw.c), which sparse and auto use too:
 * the input padded and sign-flipped in scratch, groups of up to six output channels per pass, tap
 * steps in the weight stream; average pooling with TFLM's rounding by a per-pixel reciprocal. */
void pp_depthwise_dense(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);
void pp_avgpool_dense(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch);

/* sparse: only nonzero weights are stored and visited. A convolution is normally generated
 * straight-line code (powerprune/mcu/sparsegen.py, called from model.c), pp_conv2d_sparse the
 * data-driven kernel for layers whose code would be too large; FC: assembly (kernels/sparse.c). */
void pp_conv2d_sparse(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);
void pp_fc_sparse(const pp_fc_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);
/* The input of a generated sparse convolution (codegen emits the whole layer as straight-line code,
 * powerprune/mcu/sparsegen.py): padded, sign bits flipped; returns the window origin. */
const uint8_t *pp_conv_flipped(const pp_conv_t *p, const int8_t *in, int8_t *scratch);

/* ADD (kernels/add.c), both inputs before the output: the stock kernel of the baseline sets (tflm-ref,
 * cmsis-nn, tflm-skip; profiles name it "stock"), and the table-driven one of dense, sparse and auto. */
void pp_add_stock(const pp_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, int8_t *scratch);
void pp_add_dense(const pp_add_tab_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, int8_t *scratch);
/* stock: one kernel per op for every kernel set (kernels/stock_ops.c). These ops do a few operations per
 * value, next to the hundreds of MACs per value of the convolutions around them (softmax usually runs
 * once on a handful of class scores), so a tuned variant would not move a model's total; each follows
 * TFLM's reference int8 arithmetic step by step. */
void pp_softmax_stock(const pp_softmax_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_logistic_stock(const pp_logistic_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_mean_stock(const pp_mean_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_pad_stock(const pp_pad_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_requantize_stock(const pp_quant_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_quantize_stock(const pp_quant_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void pp_dequantize_stock(const pp_quant_t *p, const int8_t *in, int8_t *out, int8_t *scratch);

#endif
