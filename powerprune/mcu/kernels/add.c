/* ADD (int8, two inputs of the same shape): the stock kernel of the baseline sets and the table-driven
 * kernel of ours (dense, sparse, auto).
 *
 * Written from the published arithmetic of TFLM's reference int8 ADD, not copied. Per element:
 *   1. undo each input's zero point (x + offset, offset = -zero point), a value in [-255, 255];
 *   2. shift it up by left_shift (20): the next step multiplies by a number below 1 and rounds, and
 *      the 20 spare bits keep that rounding far below one output step (255 << 20 < 2^28 still fits);
 *   3. rescale each input to the common scale 2 x max(input scales) with its own rounding multiply
 *      (multiplier < 1, a right shift);
 *   4. add the two, then rescale the sum to the output scale with a third rounding multiply;
 *   5. add the output zero point and clamp to the fused activation's range.
 * The three roundings (half away from zero after a rounding doubling high multiply, as everywhere in
 * TFLM) happen in exactly this order; rounding the sum once from the unscaled inputs would differ on
 * ties, which the tests construct on purpose.
 *
 * pp_add_stock does these steps per element with the 64-bit pp_requantize, like the other stock
 * kernels, so its cycles (about 420 per element) are what a stock runtime pays; tflm-ref, cmsis-nn
 * and tflm-skip run it. */
#include "pp_fixedpoint.h"
#include "pp_kernels.h"

void pp_add_stock(const pp_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t scale_up = (int32_t)1 << p->left_shift;  /* a multiply: left-shifting negatives is UB in C */
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t a = (in1[i] + p->input1_offset) * scale_up;
        const int32_t b = (in2[i] + p->input2_offset) * scale_up;
        /* shifts are <= 0, so pp_requantize is TFLM's MultiplyByQuantizedMultiplierSmallerThanOneExp */
        const int32_t sum = pp_requantize(a, p->input1_multiplier, p->input1_shift)
                          + pp_requantize(b, p->input2_multiplier, p->input2_shift);
        const int32_t raw = pp_requantize(sum, p->output_multiplier, p->output_shift) + p->output_offset;
        out[i] = pp_clamp8(raw, p->act_min, p->act_max);
    }
}

/* pp_add_dense: the same arithmetic from tables. Steps 1-3 depend on one int8 each, so codegen
 * (streams.add_tables) evaluates them for all 256 values of each input with the host's arithmetic,
 * which is TFLM's; the kernel looks both up and adds them. Steps 4-5 are a non-decreasing step
 * function of the sum with at most 256 steps, answered by a threshold table (rqtable.py: the first
 * sum of each output level; a multiply by m guesses the level or the one below it, one comparison
 * with the table decides), its origin already subtracted in terms1. Codegen checks the tables
 * against the arithmetic on every one of the 65,536 operand pairs, ties included, and leaves
 * thresholds at 0 when no table fits; then the sum is rounded by pp_requantize as in the stock
 * kernel, which still saves the two input multiplies. About 20 cycles per element instead of 420. */
void pp_add_dense(const pp_add_tab_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const uint8_t *a = (const uint8_t *)in1, *b = (const uint8_t *)in2;
    const int32_t *t1 = p->terms1, *t2 = p->terms2;
    const int32_t n = p->size;
    const uint32_t *thresholds = p->thresholds;
    if (thresholds) {
        const uint32_t w = p->w, m = p->m;
        const int32_t sh = p->p, o_min = p->o_min;
        for (int32_t i = 0; i < n; ++i) {
            uint32_t x = (uint32_t)(t1[a[i]] + t2[b[i]]);  /* sum - xs; below 0 reads as huge */
            if (x > w) x = (int32_t)x < 0 ? 0 : w;
            const uint32_t y0 = ((x >> sh) * m) >> 24;
            out[i] = (int8_t)(o_min + (int32_t)y0 + (x >= thresholds[y0]));
        }
        return;
    }
    const int32_t mult = p->output_multiplier, shift = p->output_shift, offset = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    for (int32_t i = 0; i < n; ++i)
        out[i] = pp_clamp8(pp_requantize(t1[a[i]] + t2[b[i]], mult, shift) + offset, lo, hi);
}
