/* Hand-scheduled Cortex-M0+ (ARMv6-M Thumb) building blocks shared by the dense and sparse kernels.
 *
 * Why assembly: the M0+ has no multiply-accumulate, MULS overwrites one operand, loads take 2 cycles
 * and only 8 registers work with most instructions. A tight int8 dot product therefore lives or dies
 * by register allocation (accumulators in r8-r12/lr, which ADD can reach), by loading each operand
 * once for several products, and by LDM (1 + n cycles for n words). gcc -O2 does none of that
 * reliably, so the inner loops and the requantization are written here by hand.
 *
 * The assembly functions live in .data sections, which the start-up code copies to SRAM (pico-sdk
 * does the same with __not_in_flash_func): from flash, a fully connected layer streaming its weights
 * through the 16 KB XIP cache would evict its own loop and pay ~40 cycles per 8-byte line to fetch
 * it again. They take ~8 KB of SRAM; calls from flash go through linker veneers (a few cycles).
 *
 * The requantization below is TFLM's MultiplyByQuantizedMultiplier (double rounding), bit-exact, with
 * only 32-bit operations. With x = acc << left and M = Mh*2^16 + Ml, x = xh*2^16 + xl (xl unsigned):
 *   SRDHM(x, M) = floor((x*M + 2^30) / 2^31)                           (both nudge cases at once)
 *               = 2*xh*Mh + ((xh*Ml) >> 15)
 *                 + ((xl*Mh + ((xh*Ml) & 0x7fff) + ((xl*Ml) >>> 16) + 2^14) >>> 15)
 * where every product fits 32 bits (xl*Ml as unsigned) and the last sum stays below 2^32 (so the
 * shift is logical). Rounding division by 2^r with ties away from zero is (s + 2^(r-1) - neg) >> r,
 * neg = 1 for negative s (for r = 0 nothing is added). The sign of s equals the sign of x except for
 * s = 0, where both roundings give 0. codegen verifies |acc| < 2^30 so that s + 2^(r-1) cannot
 * overflow (bench and tests check bit-exactness against the host reference and TFLM).
 *
 * A requantization record is 9 words (pp_rq_record_t below), written by powerprune/mcu/streams.py:
 *   M, left, nm (-1 if r > 0 else 0), 2^14, h (2^(r-1) or 0), r, output offset, act_min, act_max
 *
 * The faster PP_RQ_TBL_R0 (22 cycles) uses a threshold table instead (powerprune/mcu/rqtable.py says
 * why it is exact): x = clamp(acc - xs, 0, w); y0 = ((x >> p) * m) >> 24 is the output level or one
 * below it; out = o_min + y0 + (x >= T[y0]). Its record is 5 words (pp_rqt_record_t): w, m, p, &T[0], o_min; the
 * -xs is folded into the bias, so the accumulator arrives as acc - xs.
 * A kernel's stream starts with the kind of its records: PP_RQ_KIND_MUL or PP_RQ_KIND_TBL.
 */
#ifndef PP_M0_H
#define PP_M0_H

#include <stdint.h>

#define PP_RQ_WORDS 9
#define PP_RQT_WORDS 5
#define PP_RQ_KIND_MUL 0
#define PP_RQ_KIND_TBL 1

/* The two records as structs: the assembly reads them word by word (LDM), in this order, and
 * powerprune/mcu/streams.py (RQ_RECORD, RQT_RECORD) writes them from the same named fields; a test
 * holds the two declarations together. */
typedef struct {
    int32_t multiplier, left_shift;
    int32_t negative_mask;         /* -1 if right_shift > 0, else 0 */
    int32_t q14;                   /* 2^14 */
    int32_t round_half;            /* 2^(right_shift - 1), or 0 */
    int32_t right_shift, output_offset, act_min, act_max;
} pp_rq_record_t;

typedef struct {
    uint32_t w, m;
    int32_t p;
    const uint32_t *thresholds;
    int32_t o_min;
} pp_rqt_record_t;

_Static_assert(sizeof(pp_rq_record_t) == 4 * PP_RQ_WORDS, "PP_RQ_WORDS is the record's size in words");
_Static_assert(sizeof(pp_rqt_record_t) == 4 * PP_RQT_WORDS, "PP_RQT_WORDS is the record's size in words");

/* PP_RQ_MUL_R0: requantize the accumulator in r0 with the record at r4 (r4 advances past it) and store
 * the int8 at [r5] (r5 advances by one). Clobbers r0-r3, r6, r7. 48 cycles. */
#define PP_M0_RQ_MACRO                                                                              \
    ".macro PP_RQ_MUL_R0\n"                                                                             \
    "    ldm   r4!, {r1, r2, r3}\n"     /* M, left, nm */                                           \
    "    lsls  r0, r2\n"                /* x = acc << left (wraps like TFLM's int32 multiply) */    \
    "    asrs  r7, r0, #31\n"                                                                       \
    "    ands  r3, r7\n"                /* -1 when a negative value is rounded, else 0 */           \
    "    uxth  r2, r0\n"                /* xl */                                                    \
    "    asrs  r0, r0, #16\n"           /* xh */                                                    \
    "    uxth  r6, r1\n"                /* Ml */                                                    \
    "    lsrs  r1, r1, #16\n"           /* Mh */                                                    \
    "    mov   r7, r2\n"                                                                            \
    "    muls  r7, r6\n"                /* a = xl*Ml (unsigned) */                                  \
    "    muls  r2, r1\n"                /* c = xl*Mh */                                             \
    "    muls  r6, r0\n"                /* b = xh*Ml */                                             \
    "    muls  r0, r1\n"                /* d = xh*Mh */                                             \
    "    lsrs  r7, r7, #16\n"                                                                       \
    "    adds  r2, r7\n"                                                                            \
    "    lsls  r7, r6, #17\n"                                                                       \
    "    lsrs  r7, r7, #17\n"                                                                       \
    "    adds  r2, r7\n"                /* c + (a >>> 16) + (b & 0x7fff) */                         \
    "    asrs  r6, r6, #15\n"                                                                       \
    "    lsls  r0, r0, #1\n"                                                                        \
    "    adds  r0, r6\n"                                                                            \
    "    adds  r0, r3\n"                /* 2d + (b >> 15) - neg */                                  \
    "    ldm   r4!, {r1, r3, r6, r7}\n" /* 2^14, h, r, output offset */                             \
    "    adds  r2, r1\n"                                                                            \
    "    lsrs  r2, r2, #15\n"                                                                       \
    "    adds  r0, r2\n"                /* SRDHM - neg */                                           \
    "    adds  r0, r3\n"                                                                            \
    "    asrs  r0, r6\n"                /* rounded division by 2^r */                               \
    "    adds  r0, r7\n"                                                                            \
    "    ldm   r4!, {r1, r2}\n"         /* act_min, act_max */                                      \
    "    cmp   r0, r1\n"                                                                            \
    "    bge   1f\n"                                                                                \
    "    mov   r0, r1\n"                                                                            \
    "1:  cmp   r0, r2\n"                                                                            \
    "    ble   2f\n"                                                                                \
    "    mov   r0, r2\n"                                                                            \
    "2:  strb  r0, [r5]\n"                                                                          \
    "    adds  r5, #1\n"                                                                            \
    ".endm\n"                                                                                       \
    /* PP_RQ_TBL_R0: the same by threshold table (record of PP_RQT_WORDS at r4), 22 cycles. The  \
     * accumulator already counts from the table's origin xs (codegen folds -xs into the bias), so \
     * one unsigned comparison with w finds both saturated ends. */                               \
    ".macro PP_RQ_TBL_R0\n"                                                                         \
    "    ldm   r4!, {r1, r2, r3}\n"     /* w, m, p */                                               \
    "    cmp   r0, r1\n"                                                                            \
    "    bls   1f\n"                                                                                \
    "    asrs  r0, r0, #31\n"           /* below 0: 0, above w: w */                                \
    "    bics  r1, r0\n"                                                                            \
    "    mov   r0, r1\n"                                                                            \
    "1:  mov   r6, r0\n"                                                                            \
    "    lsrs  r6, r3\n"                                                                            \
    "    muls  r2, r6\n"                                                                            \
    "    lsrs  r2, r2, #24\n"           /* y0 */                                                    \
    "    ldm   r4!, {r6, r7}\n"         /* &T[0], o_min */                                          \
    "    lsls  r1, r2, #2\n"                                                                        \
    "    ldr   r1, [r6, r1]\n"                                                                      \
    "    cmp   r0, r1\n"                /* carry = x >= T[y0] */                                    \
    "    adcs  r2, r7\n"                                                                            \
    "    strb  r2, [r5]\n"                                                                          \
    "    adds  r5, #1\n"                                                                            \
    ".endm\n"

#endif
