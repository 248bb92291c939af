/* Kernel set "dense": depthwise convolution and average pooling (dense, sparse and auto all use them).
 *
 * Depthwise convolution (pp_depthwise_dense). TFLM's reference loop spends ~95 cycles per MAC on a
 * 3x3 layer (bounds check per tap, 4-D index arithmetic, input offset per MAC). Here:
 *  - the input is copied once to scratch, padded (the pads hold the input zero point) and with every
 *    sign bit flipped (u = x + 128, so LDRB with an immediate offset reads it); codegen folds both the
 *    input offset and the -128 into the bias, so pads contribute nothing and no tap is ever checked;
 *  - the output channels of a pixel are taken in groups of K <= 6 whose accumulators live in the last
 *    K of r8-r12, lr. A "separate" group (depth multiplier 1) reads K neighbouring input bytes per tap,
 *    one per channel: LDRB + MULS + ADD, 4 cycles per MAC, plus the K weights by one LDM; a "shared"
 *    group (multiplier > 1) loads one input byte per tap for the K output channels it feeds
 *    (streams.depthwise_groups picks the sizes);
 *  - codegen writes, per group, the weights as int32 in the order the loop consumes them and after each
 *    tap's weights the step to the next tap, visiting the window from its last tap to its first: every
 *    step inside a group is negative, so `adds r5, r6` carries, and the group's last step (to the next
 *    group's last tap, or 0) is not, which ends the tap loop without a counter (`bcs`). A 3x3 tap of a
 *    group of 6 costs 36 cycles (6.0 per MAC), of 4: 25;
 *  - all groups share one requantization chain: group K enters it at its first accumulator (the
 *    accumulators are the last K, so the chain runs r8 ... lr in output order).
 * Requantization (pp_m0.h) by threshold table or arithmetic, bit-exact with TFLM, as the other dense
 * kernels. No window bounds, no per-MAC offsets, nothing that depends on the weights' values.
 *
 * Average pooling (pp_avgpool_dense): TFLM's arithmetic (the sum of the in-bounds taps, rounded half
 * away from zero when divided by their count), with the division of every channel replaced by a
 * multiplication with a reciprocal computed once per output pixel; see pp_avgpool_dense. */
#include "pp_common.h"
#include "pp_m0.h"

/* Argument block of the assembly loop (offsets hard-coded below). */
typedef struct {
    const uint8_t *win;       /* 0: last window tap of output pixel (0, 0) in the flipped, padded input */
    int8_t *out;              /* 4 */
    const int32_t *stream;    /* 8: groups (streams.dense_depthwise_stream), then 0 */
    int32_t out_h, out_w;     /* 12, 16 */
    int32_t step_x, step_y;   /* 20, 24: window advance per output column, per output row */
} pp_ddw_args_t;

void pp_ddw_m0_mul(const pp_ddw_args_t *a);
void pp_ddw_m0_tbl(const pp_ddw_args_t *a);

/* The input as the depthwise kernel reads it: the rows and columns the windows touch, pads holding the
 * input zero point, every byte's sign bit flipped. Always a copy: the flip is needed even without
 * padding. The layout (row_bytes, padded_rows, ...) is the descriptor's (streams.input_layout). */
static const uint8_t *pp_padded_flipped(const pp_conv_t *p, const int8_t *in, int8_t *scratch) {
    /* fields in locals: the stores below could alias the descriptor as far as the compiler knows */
    const int32_t hp = p->padded_rows, row = p->row_bytes, cols = p->row_copy, lead = p->row_lead;
    const int32_t in_row = p->in_w * p->in_c, in_h = p->in_h, pad_h = p->pad_h, words = p->scratch_bytes >> 2;
    const uint32_t fill = (uint8_t)(-p->input_offset ^ 0x80) * 0x01010101u;
    uint32_t *w32 = (uint32_t *)scratch;  /* word aligned; the planner reserves a word multiple */
    for (int32_t i = 0; i < words; ++i) w32[i] = fill;
    for (int32_t y = 0; y < in_h; ++y) {
        const int32_t py = y + pad_h;
        if (py >= hp) break;
        const int8_t *src = in + y * in_row;
        int8_t *dst = scratch + py * row + lead;
        int32_t i = 0;
        /* whole words when source and destination share their alignment (a multiple-of-4 channel
         * count: every pixel starts on a word) */
        if ((((uintptr_t)src ^ (uintptr_t)dst) & 3) == 0) {
            for (; i < cols && ((uintptr_t)(dst + i) & 3); ++i) dst[i] = (int8_t)(src[i] ^ 0x80);
            for (; i + 4 <= cols; i += 4)
                *(uint32_t *)(dst + i) = *(const uint32_t *)(src + i) ^ 0x80808080u;
        }
        for (; i < cols; ++i) dst[i] = (int8_t)(src[i] ^ 0x80);
    }
    return (const uint8_t *)scratch;
}

void pp_depthwise_dense(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    const uint8_t *src = pp_padded_flipped(p, in, scratch);
    const int32_t row = p->row_bytes;
    const int32_t last = (p->k_h - 1) * row + (p->k_w - 1) * p->in_c;
    const pp_ddw_args_t a = {src + last, out, p->stream + 1, p->out_h, p->out_w, p->stride_w * p->in_c,
                             p->stride_h * row};
    if (p->stream[0] == PP_RQ_KIND_TBL)
        pp_ddw_m0_tbl(&a);
    else
        pp_ddw_m0_mul(&a);
}

/* Frame of pp_ddw_m0_* (bytes from sp). */
#define DW_CUR "0"      /* r5 (input) while the outputs are written */
#define DW_WIN "4"
#define DW_OUT "8"
#define DW_STREAM "12"
#define DW_OX "16"
#define DW_OY "20"
#define DW_OUTW "24"
#define DW_STEPX "28"
#define DW_STEPY "32"
#define DW_ROWWIN "36"
#define DW_FRAME "40"

__asm__(
    ".syntax unified\n"
    ".thumb\n"
    PP_M0_RQ_MACRO
    /* accumulator number I (0-5: r8-r12, lr) */
    ".macro DW_ACC OP, I, R\n"
    "  .if \\I == 0\n    \\OP r8, \\R\n"
    "  .elseif \\I == 1\n    \\OP r9, \\R\n"
    "  .elseif \\I == 2\n    \\OP r10, \\R\n"
    "  .elseif \\I == 3\n    \\OP r11, \\R\n"
    "  .elseif \\I == 4\n    \\OP r12, \\R\n"
    "  .else\n    \\OP lr, \\R\n"
    "  .endif\n"
    ".endm\n"
    /* channel J of a group of K: weight W times its input byte (separate: byte J; shared: r7 as loaded) */
    ".macro DW_MAC SEP, J, K, W\n"
    "  .if \\SEP\n"
    "    ldrb  r7, [r5, #\\J]\n"
    "  .endif\n"
    "    muls  \\W, r7\n"
    "    DW_ACC add, (6 - \\K + \\J), \\W\n"
    ".endm\n"
    /* K biases into the last K accumulators */
    ".macro DW_BIAS K\n"
    "  .if \\K == 1\n"
    "    ldm   r4!, {r0}\n"
    "  .elseif \\K == 2\n"
    "    ldm   r4!, {r0, r1}\n"
    "  .elseif \\K == 3\n"
    "    ldm   r4!, {r0, r1, r2}\n"
    "  .else\n"
    "    ldm   r4!, {r0, r1, r2, r3}\n"
    "  .endif\n"
    "    DW_ACC mov, (6 - \\K), r0\n"
    "  .if \\K >= 2\n    DW_ACC mov, (7 - \\K), r1\n  .endif\n"
    "  .if \\K >= 3\n    DW_ACC mov, (8 - \\K), r2\n  .endif\n"
    "  .if \\K >= 4\n    DW_ACC mov, (9 - \\K), r3\n  .endif\n"
    "  .if \\K == 5\n    ldm r4!, {r0}\n    mov lr, r0\n  .endif\n"
    "  .if \\K == 6\n    ldm r4!, {r0, r1}\n    mov r12, r0\n    mov lr, r1\n  .endif\n"
    ".endm\n"
    /* one group: biases, the taps (last to first; the loop ends on the step that does not carry),
     * then into the requantization chain at the group's first accumulator */
    ".macro DW_GROUP SEP, K, F\n"
    "    DW_BIAS \\K\n"
    "1:\n"
    "  .if \\SEP == 0\n"
    "    ldrb  r7, [r5, #0]\n"
    "  .endif\n"
    "  .if \\K == 1\n"
    "    ldm   r4!, {r0, r6}\n"
    "    DW_MAC \\SEP, 0, 1, r0\n"
    "  .elseif \\K == 2\n"
    "    ldm   r4!, {r0, r1, r6}\n"
    "    DW_MAC \\SEP, 0, 2, r0\n    DW_MAC \\SEP, 1, 2, r1\n"
    "  .elseif \\K == 3\n"
    "    ldm   r4!, {r0, r1, r2, r6}\n"
    "    DW_MAC \\SEP, 0, 3, r0\n    DW_MAC \\SEP, 1, 3, r1\n    DW_MAC \\SEP, 2, 3, r2\n"
    "  .elseif \\K == 4\n"
    "    ldm   r4!, {r0, r1, r2, r3, r6}\n"
    "    DW_MAC \\SEP, 0, 4, r0\n    DW_MAC \\SEP, 1, 4, r1\n"
    "    DW_MAC \\SEP, 2, 4, r2\n    DW_MAC \\SEP, 3, 4, r3\n"
    "  .else\n"
    "    ldm   r4!, {r0, r1, r2, r3}\n"
    "    DW_MAC \\SEP, 0, \\K, r0\n    DW_MAC \\SEP, 1, \\K, r1\n"
    "    DW_MAC \\SEP, 2, \\K, r2\n    DW_MAC \\SEP, 3, \\K, r3\n"
    "    .if \\K == 5\n"
    "    ldm   r4!, {r0, r6}\n"
    "    DW_MAC \\SEP, 4, 5, r0\n"
    "    .else\n"
    "    ldm   r4!, {r0, r1, r6}\n"
    "    DW_MAC \\SEP, 4, 6, r0\n    DW_MAC \\SEP, 5, 6, r1\n"
    "    .endif\n"
    "  .endif\n"
    "    adds  r5, r6\n"
    "    bcs   1b\n"
    "    str   r5, [sp, #" DW_CUR "]\n"
    "    ldr   r5, [sp, #" DW_OUT "]\n"
    "    b     .L\\F\\()_rq\\K\n"
    ".endm\n"
    ".macro DW_FUNC F, RQ\n"
    ".section .data.\\F,\"ax\",%progbits\n"  /* in SRAM: see pp_m0.h */
    ".global \\F\n"
    ".type \\F, %function\n"
    ".thumb_func\n"
    "\\F:\n"
    "    push  {r4-r7, lr}\n"
    "    mov   r1, r8\n    mov r2, r9\n    mov r3, r10\n    mov r4, r11\n"
    "    push  {r1-r4}\n"
    "    sub   sp, #" DW_FRAME "\n"
    "    ldr   r1, [r0, #0]\n    str r1, [sp, #" DW_WIN "]\n    str r1, [sp, #" DW_ROWWIN "]\n"
    "    ldr   r1, [r0, #4]\n    str r1, [sp, #" DW_OUT "]\n"
    "    ldr   r1, [r0, #8]\n    str r1, [sp, #" DW_STREAM "]\n"
    "    ldr   r1, [r0, #12]\n   str r1, [sp, #" DW_OY "]\n"
    "    ldr   r1, [r0, #16]\n   str r1, [sp, #" DW_OX "]\n    str r1, [sp, #" DW_OUTW "]\n"
    "    ldr   r1, [r0, #20]\n   str r1, [sp, #" DW_STEPX "]\n"
    "    ldr   r1, [r0, #24]\n   str r1, [sp, #" DW_STEPY "]\n"
    "    b     .L\\F\\()_pixel\n"
    ".L\\F\\()_s6:\n    DW_GROUP 1, 6, \\F\n"
    ".L\\F\\()_s5:\n    DW_GROUP 1, 5, \\F\n"
    ".L\\F\\()_s4:\n    DW_GROUP 1, 4, \\F\n"
    ".L\\F\\()_s3:\n    DW_GROUP 1, 3, \\F\n"
    ".L\\F\\()_h6:\n    DW_GROUP 0, 6, \\F\n"
    ".L\\F\\()_h4:\n    DW_GROUP 0, 4, \\F\n"
    ".L\\F\\()_pixel:\n"
    "    ldr   r4, [sp, #" DW_STREAM "]\n"
    "    ldr   r5, [sp, #" DW_WIN "]\n"
    ".L\\F\\()_group:\n"
    "    ldm   r4!, {r0}\n"                      /* the group's code; 0 ends the pixel */
    "    lsls  r0, r0, #2\n"
    "    adr   r1, .L\\F\\()_table\n"
    "    ldr   r0, [r1, r0]\n"
    "    bx    r0\n"
    "    .align 2\n"
    ".L\\F\\()_table:\n"                   /* a shared group of 1 is a separate group of 1 */
    "    .word .L\\F\\()_next + 1\n"
    "    .word .L\\F\\()_s1 + 1, .L\\F\\()_s2 + 1, .L\\F\\()_s3 + 1\n"
    "    .word .L\\F\\()_s4 + 1, .L\\F\\()_s5 + 1, .L\\F\\()_s6 + 1\n"
    "    .word .L\\F\\()_s1 + 1, .L\\F\\()_h2 + 1, .L\\F\\()_h3 + 1\n"
    "    .word .L\\F\\()_h4 + 1, .L\\F\\()_h5 + 1, .L\\F\\()_h6 + 1\n"
    ".L\\F\\()_next:\n"                          /* next pixel: window right, or down a row */
    "    ldr   r0, [sp, #" DW_WIN "]\n"
    "    ldr   r1, [sp, #" DW_STEPX "]\n"
    "    adds  r0, r1\n"
    "    str   r0, [sp, #" DW_WIN "]\n"
    "    ldr   r0, [sp, #" DW_OX "]\n"
    "    subs  r0, #1\n"
    "    str   r0, [sp, #" DW_OX "]\n"
    "    bne   .L\\F\\()_pixel\n"
    "    ldr   r0, [sp, #" DW_ROWWIN "]\n"
    "    ldr   r1, [sp, #" DW_STEPY "]\n"
    "    adds  r0, r1\n"
    "    str   r0, [sp, #" DW_ROWWIN "]\n"
    "    str   r0, [sp, #" DW_WIN "]\n"
    "    ldr   r0, [sp, #" DW_OUTW "]\n"
    "    str   r0, [sp, #" DW_OX "]\n"
    "    ldr   r0, [sp, #" DW_OY "]\n"
    "    subs  r0, #1\n"
    "    str   r0, [sp, #" DW_OY "]\n"
    "    bne   .L\\F\\()_pixel\n"
    "    add   sp, #" DW_FRAME "\n"
    "    pop   {r1-r4}\n"
    "    mov   r8, r1\n    mov r9, r2\n    mov r10, r3\n    mov r11, r4\n"
    "    pop   {r4-r7, pc}\n"
    /* the requantization chain: accumulators in output order, then the next group */
    ".L\\F\\()_rq6:\n    mov r0, r8\n     \\RQ\n"
    ".L\\F\\()_rq5:\n    mov r0, r9\n     \\RQ\n"
    ".L\\F\\()_rq4:\n    mov r0, r10\n    \\RQ\n"
    ".L\\F\\()_rq3:\n    mov r0, r11\n    \\RQ\n"
    ".L\\F\\()_rq2:\n    mov r0, r12\n    \\RQ\n"
    ".L\\F\\()_rq1:\n    mov r0, lr\n     \\RQ\n"
    "    str   r5, [sp, #" DW_OUT "]\n"
    "    ldr   r5, [sp, #" DW_CUR "]\n"
    "    b     .L\\F\\()_group\n"
    ".L\\F\\()_s2:\n    DW_GROUP 1, 2, \\F\n"
    ".L\\F\\()_s1:\n    DW_GROUP 1, 1, \\F\n"
    ".L\\F\\()_h5:\n    DW_GROUP 0, 5, \\F\n"
    ".L\\F\\()_h3:\n    DW_GROUP 0, 3, \\F\n"
    ".L\\F\\()_h2:\n    DW_GROUP 0, 2, \\F\n"
    ".size \\F, . - \\F\n"
    ".endm\n"
    "DW_FUNC pp_ddw_m0_mul, PP_RQ_MUL_R0\n"
    "DW_FUNC pp_ddw_m0_tbl, PP_RQ_TBL_R0\n"
    ".text\n");

/* ---- average pooling -------------------------------------------------------------------------- */

/* TFLM: sum the in-bounds taps, then (sum > 0 ? sum + count / 2 : sum - count / 2) / count, which
 * truncates: |result| = floor((|sum| + count / 2) / count) with the sign of sum. The division by
 * count is a multiplication by r = ceil(2^24 / count), exact while count <= 361: with n = |sum| +
 * count / 2 <= 128.5 count and e = r count - 2^24 < count, n r / 2^24 = n / count + n e / (count 2^24)
 * and n e < 128.5 count^2 <= 2^24, so the added fraction stays below 1 / count and cannot carry the
 * floor over the next integer; n r < 2^31 (tests/test_dense_dw.py checks every n and count). Larger
 * windows divide. One reciprocal per output pixel (the count changes only at padded borders). */
#define PP_AVG_RECIP_MAX 361

void pp_avgpool_dense(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t c = p->channels, in_h = p->in_h, in_w = p->in_w, row = in_w * c;
    const int32_t lo = p->act_min, hi = p->act_max;
    for (int32_t oy = 0, y0 = -p->pad_h; oy < p->out_h; ++oy, y0 += p->stride_h) {
        const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = in_h - y0 < p->k_h ? in_h - y0 : p->k_h;
        for (int32_t ox = 0, x0 = -p->pad_w; ox < p->out_w; ++ox, x0 += p->stride_w) {
            const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = in_w - x0 < p->k_w ? in_w - x0 : p->k_w;
            const int32_t rows = ky1 - ky0, cols = kx1 - kx0;
            const int32_t count = rows > 0 && cols > 0 ? rows * cols : 1;  /* TFLM's padding never
                                                                         * leaves a window empty */
            const int32_t half = count / 2;
            const uint32_t recip = count <= PP_AVG_RECIP_MAX ? ((1u << 24) + count - 1) / count : 0;
            const int8_t *base = in + (y0 + ky0) * row + (x0 + kx0) * c;
            const int32_t col_bytes = cols * c;
            for (int32_t ch = 0; ch < c; ++ch, ++base) {
                int32_t sum = 0;
                const int8_t *r = base;
                for (int32_t y = 0; y < rows; ++y, r += row)
                    for (int32_t x = 0; x < col_bytes; x += c) sum += r[x];
                const uint32_t n = (uint32_t)(sum < 0 ? -sum : sum) + (uint32_t)half;
                int32_t avg = (int32_t)(recip ? (n * recip) >> 24 : n / (uint32_t)count);
                if (sum < 0) avg = -avg;
                if (avg < lo) avg = lo;
                if (avg > hi) avg = hi;
                *out++ = (int8_t)avg;
            }
        }
    }
}
