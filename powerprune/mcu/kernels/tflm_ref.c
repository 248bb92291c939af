/* Kernel set "tflm-ref": the paper's "stock TFLM" baseline.
 *
 * Written from the published behaviour of TFLM's reference int8 kernels, not copied: the same loop
 * nest (output y, x, channel, then filter y, x, input channel), a bounds check per filter tap for
 * padding, a 4-D offset recomputed for every element access, the input offset added per MAC, and
 * per-channel requantization. Every weight is visited, zero or not, which is why unstructured
 * pruning saves nothing here. The weighted kernels' loops live in pp_tflm_loops.h, shared with the
 * tflm-skip set; the pools are here. */
#include "pp_kernels.h"
#include "pp_fixedpoint.h"
#include "pp_tflm.h"

#define PP_TFLM_FN(op) op##_tflmref
#define PP_SKIP_ZERO_WEIGHTS 0
#include "pp_tflm_loops.h"

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
