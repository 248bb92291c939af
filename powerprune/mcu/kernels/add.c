/* ADD (int8, two inputs of the same shape): the one elementwise-add kernel of every kernel set.
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
 * Why one kernel for every set: an ADD has no weights, so neither pruning nor a sparse encoding can
 * make it cheaper, and its cost is linear in the tensor size: about 420 cycles per element, 5-9% of
 * ResNet-8's cycles depending on the set (bench/resnet8.py). The dense, sparse, auto and cmsis-nn
 * sets call it as it is; the profiles name it "tflmref" under each. It uses the 64-bit pp_requantize,
 * like the other stock kernels, so its cycles are what a stock runtime would pay. */
#include "pp_fixedpoint.h"
#include "pp_kernels.h"

void pp_add_tflmref(const pp_add_t *p, const int8_t *in1, const int8_t *in2, int8_t *out, int8_t *scratch) {
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
