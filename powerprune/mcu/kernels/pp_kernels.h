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
    const int8_t *weights;         /* OHWI (conv) or 1HWO (depthwise); sparse: nonzero values only */
    const int32_t *bias;           /* dense/sparse sets: bias + input_offset * sum(weights), folded */
    const int32_t *multiplier;     /* per output channel */
    const int32_t *shift;
    const uint16_t *nz_count;      /* sparse: nonzeros per output channel */
    const uint32_t *nz_packed;     /* sparse: (input offset << 8) | (uint8_t)weight for each nonzero */
} pp_conv_t;

typedef struct {
    int16_t in_size, out_size;
    int16_t per_channel;           /* multiplier/shift arrays have out_size entries, else 1 */
    int32_t input_offset, output_offset;
    int32_t act_min, act_max;
    const int8_t *weights;         /* (out, in); sparse: nonzero values only */
    const int32_t *bias;           /* dense/sparse sets: folded as for convolutions */
    const int32_t *multiplier;
    const int32_t *shift;
    const uint16_t *nz_count;
    const uint16_t *nz_offset;
} pp_fc_t;

typedef struct {
    int16_t in_h, in_w, channels;
    int16_t out_h, out_w;
    int16_t k_h, k_w, stride_h, stride_w, pad_h, pad_w;
    int32_t act_min, act_max;
} pp_pool_t;

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

/* dense: pre-padded input (pads hold the input zero point, so they contribute nothing), input offset
 * folded into the bias, contiguous window rows, unrolled dot products. Pools: tight loops. */
void pp_conv2d_dense(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);
void pp_fc_dense(const pp_fc_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);
void pp_maxpool_dense(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch);

/* sparse: only nonzero weights are stored and visited, each with its precomputed input offset. */
void pp_conv2d_sparse(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);
void pp_fc_sparse(const pp_fc_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch);

#endif
