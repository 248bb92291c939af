/* Kernel set "dense": every weight is visited, as fast as the Cortex-M0+ allows.
 *
 * Convolution (pp_conv2d_dense): the input is padded once (the pads hold the input zero point, which
 * contributes nothing because the input offset is folded into the bias at code-generation time), so
 * a window row of k_w * in_c bytes is contiguous. For each output pixel the output channels are
 * taken in groups of up to six: each input byte is loaded once (LDRSB, 2 cycles) and multiplied by
 * the six weights of the group, which one LDM fetches as words (codegen stores them as int32 in
 * exactly the order the loop consumes them). Six accumulators live in r8-r12 and lr. The loop body
 * is 24 cycles per 6 MACs (LDRSB 2, LDM 5 + 3, 6 x MULS/ADD, index and branch 2: two bytes per
 * pass), and the stream says where the next window row starts.
 *
 * The stream is cut into blocks of channel groups, and each block runs over all pixels before the next
 * starts (pixels inside, channels outside). A staged layer (its stream copied to SRAM at boot) is one
 * block. A layer whose stream stays in flash gets blocks of at most streams.XIP_BLOCK_BYTES, a little
 * under the 16 KB XIP cache: the block is fetched from flash once (~5 cycles a byte) and then hits
 * for every other pixel. Pixels outside with a stream larger than the cache would miss on every
 * line for every pixel: 59 M instead of ~10 M cycles for ResNet-8's 32->32 3x3 layer.
 *
 * Fully connected (pp_fc_dense): eight output rows at once. The eight weights of one input are two
 * words of int8 (codegen interleaves the rows), so the weight stream is read exactly once, in order,
 * 8 bytes per input = one XIP cache line when the weights stay in flash. Each byte is sign-extended
 * in place (SXTB, or a shift pair), multiplied by the input byte and added to its accumulator. The
 * input is first copied to scratch with its sign bit flipped (u = x + 128, unsigned), so it is read
 * with an immediate-offset LDRB; codegen folds the -128 into the bias.
 *
 * Requantization (pp_m0.h): by threshold table (PP_RQ_TBL_R0, 22 cycles) or arithmetic (PP_RQ_MUL_R0,
 * 48 cycles), bit-exact with TFLM, from per-channel records in the stream codegen writes. */
#include "pp_common.h"
#include "pp_m0.h"

/* Argument blocks of the assembly loops (offsets are hard-coded in the assembly below). */
typedef struct {
    const int8_t *src;        /* 0: window origin of output pixel (0, 0) in the (padded) input */
    int8_t *out;              /* 4 */
    const int32_t *stream;    /* 8: one block: groups of [K, bias x K, per window row: weights (len, K)
                               *    and the bytes to the next row (0 after the last), records x K], 0 */
    int32_t out_h, out_w;     /* 12, 16 */
    int32_t step_x, step_y;   /* 20, 24: window advance per output column, per output row */
    int32_t len;              /* 28: bytes per window row (k_w * in_c) */
    int32_t out_skip;         /* 32: output channels of the other blocks (added to out after each pixel) */
} pp_dconv_args_t;

typedef struct {
    const uint8_t *in;        /* 0: input with the sign bit flipped */
    int8_t *out;              /* 4 */
    const int32_t *stream;    /* 8: groups of 8 rows [bias x 8, weights (in_size, 8 bytes)] while more
                               *    than 4 rows are left, then one of 4 [bias x 4, weights (in_size, 4)] */
    const int32_t *records;   /* 12: requantization records, one per row (per channel) or one */
    int32_t record_step;      /* 16: bytes from one row's record to the next (0: per tensor) */
    int32_t in_size;          /* 20 */
    int32_t out_size;         /* 24 */
} pp_dfc_args_t;

/* Each loop exists with both requantizations (pp_m0.h); the stream's first word says which. The
 * convolution returns the end of its block (past the block's closing 0). */
const int32_t *pp_dconv_m0_mul(const pp_dconv_args_t *a);
const int32_t *pp_dconv_m0_tbl(const pp_dconv_args_t *a);
void pp_dfc_m0_mul(const pp_dfc_args_t *a);
void pp_dfc_m0_tbl(const pp_dfc_args_t *a);

void pp_conv2d_dense(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    const int8_t *src = pp_padded_input(p, in, scratch);
    const int32_t row = p->row_bytes;
    /* the stream: record kind, then blocks [channels, groups..., 0], then 0 */
    const int tbl = p->stream[0] == PP_RQ_KIND_TBL;
    const int32_t *s = p->stream + 1;
    for (int32_t channels; (channels = *s++) != 0; out += channels) {
        const pp_dconv_args_t a = {src, out, s, p->out_h, p->out_w, p->stride_w * p->in_c, p->stride_h * row,
                                   p->k_w * p->in_c, p->out_c - channels};
        s = tbl ? pp_dconv_m0_tbl(&a) : pp_dconv_m0_mul(&a);
    }
}

void pp_fc_dense(const pp_fc_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    pp_flip_sign(in, scratch, p->in_size);
    /* the stream: record kind, the records (one per row, or one), then the row groups */
    const int tbl = p->stream[0] == PP_RQ_KIND_TBL;
    const int32_t words = tbl ? PP_RQT_WORDS : PP_RQ_WORDS;
    const int32_t *records = p->stream + 1;
    const int32_t *weights = records + (p->per_channel ? p->out_size : 1) * words;
    const pp_dfc_args_t a = {(const uint8_t *)scratch, out, weights, records, p->per_channel ? 4 * words : 0,
                             p->in_size, p->out_size};
    if (tbl)
        pp_dfc_m0_tbl(&a);
    else
        pp_dfc_m0_mul(&a);
}

/* ---- convolution ----------------------------------------------------------------------------- */

/* Frame of pp_dconv_m0_* (bytes from sp). */
#define DC_NEGL "0"
#define DC_WIN "4"
#define DC_OUT "8"
#define DC_STREAM "12"
#define DC_OX "16"
#define DC_OY "20"
#define DC_OUTW "24"
#define DC_STEPX "28"
#define DC_STEPY "32"
#define DC_LEN "36"
#define DC_ROWWIN "40"
#define DC_SKIP "44"
#define DC_FRAME "48"

__asm__(
    ".syntax unified\n"
    ".thumb\n"
    PP_M0_RQ_MACRO
    /* one input byte (r3) times the K weights of the group, accumulated into r8.. */
    ".macro DC_MACS K\n"
    "  .if \\K == 1\n"
    "    ldm   r4!, {r0}\n"
    "    muls  r0, r3\n    add r8, r0\n"
    "  .elseif \\K == 2\n"
    "    ldm   r4!, {r0, r1}\n"
    "    muls  r0, r3\n    add r8, r0\n"
    "    muls  r1, r3\n    add r9, r1\n"
    "  .elseif \\K == 3\n"
    "    ldm   r4!, {r0, r1, r2}\n"
    "    muls  r0, r3\n    add r8, r0\n"
    "    muls  r1, r3\n    add r9, r1\n"
    "    muls  r2, r3\n    add r10, r2\n"
    "  .else\n"
    "    ldm   r4!, {r0, r1, r2, r7}\n"
    "    muls  r0, r3\n    add r8, r0\n"
    "    muls  r1, r3\n    add r9, r1\n"
    "    muls  r2, r3\n    add r10, r2\n"
    "    muls  r7, r3\n    add r11, r7\n"
    "    .if \\K == 5\n"
    "    ldm   r4!, {r0}\n"
    "    muls  r0, r3\n    add r12, r0\n"
    "    .elseif \\K == 6\n"
    "    ldm   r4!, {r0, r1}\n"
    "    muls  r0, r3\n    add r12, r0\n"
    "    muls  r1, r3\n    add lr, r1\n"
    "    .endif\n"
    "  .endif\n"
    ".endm\n"
    /* K biases from the stream into the accumulators */
    ".macro DC_BIAS K\n"
    "  .if \\K == 1\n"
    "    ldm   r4!, {r0}\n    mov r8, r0\n"
    "  .elseif \\K == 2\n"
    "    ldm   r4!, {r0, r1}\n    mov r8, r0\n    mov r9, r1\n"
    "  .elseif \\K == 3\n"
    "    ldm   r4!, {r0, r1, r2}\n    mov r8, r0\n    mov r9, r1\n    mov r10, r2\n"
    "  .else\n"
    "    ldm   r4!, {r0, r1, r2, r7}\n    mov r8, r0\n    mov r9, r1\n    mov r10, r2\n    mov r11, r7\n"
    "    .if \\K == 5\n"
    "    ldm   r4!, {r0}\n    mov r12, r0\n"
    "    .elseif \\K == 6\n"
    "    ldm   r4!, {r0, r1}\n    mov r12, r0\n    mov lr, r1\n"
    "    .endif\n"
    "  .endif\n"
    ".endm\n"
    /* one group of K output channels for the current pixel; ends by dispatching the next group */
    ".macro DC_GROUP K, RQ, F\n"
    "    DC_BIAS \\K\n"
    "    ldr   r5, [sp, #" DC_WIN "]\n"
    "    ldr   r0, [sp, #" DC_LEN "]\n"
    "    adds  r5, r0\n"                        /* r5: end of the current window row */
    "10: ldr   r6, [sp, #" DC_NEGL "]\n"        /* r6: -bytes left in the row */
    "    lsrs  r0, r6, #1\n"                   /* two bytes per pass: an odd row enters halfway */
    "    bcs   12f\n"
    "11: ldrsb r3, [r5, r6]\n"
    "    DC_MACS \\K\n"
    "    adds  r6, #1\n"
    "12: ldrsb r3, [r5, r6]\n"
    "    DC_MACS \\K\n"
    "    adds  r6, #1\n"
    "    bne   11b\n"
    "    ldm   r4!, {r0}\n"                     /* bytes to the next row's end; 0 after the last */
    "    add   r5, r0\n"
    "    cmp   r0, #0\n"
    "    bne   10b\n"
    "    ldr   r5, [sp, #" DC_OUT "]\n"
    "    mov   r0, r8\n    \\RQ\n"
    "  .if \\K >= 2\n    mov r0, r9\n    \\RQ\n  .endif\n"
    "  .if \\K >= 3\n    mov r0, r10\n   \\RQ\n  .endif\n"
    "  .if \\K >= 4\n    mov r0, r11\n   \\RQ\n  .endif\n"
    "  .if \\K >= 5\n    mov r0, r12\n   \\RQ\n  .endif\n"
    "  .if \\K >= 6\n    mov r0, lr\n    \\RQ\n  .endif\n"
    "    str   r5, [sp, #" DC_OUT "]\n"
    "    b     .L\\F\\()_group\n"
    ".endm\n"
    /* the whole layer: pixels in output order, channel groups per pixel */
    ".macro DC_FUNC F, RQ\n"
    ".section .data.\\F,\"ax\",%progbits\n"  /* in SRAM: see pp_m0.h */
    ".global \\F\n"
    ".type \\F, %function\n"
    ".thumb_func\n"
    "\\F:\n"
    "    push  {r4-r7, lr}\n"
    "    mov   r1, r8\n    mov r2, r9\n    mov r3, r10\n    mov r4, r11\n"
    "    push  {r1-r4}\n"
    "    sub   sp, #" DC_FRAME "\n"
    "    ldr   r1, [r0, #0]\n    str r1, [sp, #" DC_WIN "]\n    str r1, [sp, #" DC_ROWWIN "]\n"
    "    ldr   r1, [r0, #4]\n    str r1, [sp, #" DC_OUT "]\n"
    "    ldr   r1, [r0, #8]\n    str r1, [sp, #" DC_STREAM "]\n"
    "    ldr   r1, [r0, #12]\n   str r1, [sp, #" DC_OY "]\n"
    "    ldr   r1, [r0, #16]\n   str r1, [sp, #" DC_OX "]\n    str r1, [sp, #" DC_OUTW "]\n"
    "    ldr   r1, [r0, #20]\n   str r1, [sp, #" DC_STEPX "]\n"
    "    ldr   r1, [r0, #24]\n   str r1, [sp, #" DC_STEPY "]\n"
    "    ldr   r1, [r0, #28]\n   str r1, [sp, #" DC_LEN "]\n"
    "    rsbs  r1, r1, #0\n      str r1, [sp, #" DC_NEGL "]\n"
    "    ldr   r1, [r0, #32]\n   str r1, [sp, #" DC_SKIP "]\n"
    "    b     .L\\F\\()_pixel\n"
    /* the group bodies sit on both sides of the dispatcher so that every `b` back to it reaches */
    ".L\\F\\()_k6:\n    DC_GROUP 6, \\RQ, \\F\n"
    ".L\\F\\()_k5:\n    DC_GROUP 5, \\RQ, \\F\n"
    ".L\\F\\()_k4:\n    DC_GROUP 4, \\RQ, \\F\n"
    ".L\\F\\()_pixel:\n"
    "    ldr   r4, [sp, #" DC_STREAM "]\n"
    ".L\\F\\()_group:\n"
    "    ldm   r4!, {r0}\n"                     /* K, the group's channel count; 0 ends the pixel */
    "    lsls  r0, r0, #2\n"
    "    adr   r1, .L\\F\\()_table\n"
    "    ldr   r0, [r1, r0]\n"
    "    bx    r0\n"
    "    .align 2\n"
    ".L\\F\\()_table:\n"
    "    .word .L\\F\\()_next + 1, .L\\F\\()_k1 + 1, .L\\F\\()_k2 + 1, .L\\F\\()_k3 + 1\n"
    "    .word .L\\F\\()_k4 + 1, .L\\F\\()_k5 + 1, .L\\F\\()_k6 + 1\n"
    ".L\\F\\()_next:\n"                         /* next pixel: window right, or down a row */
    "    ldr   r0, [sp, #" DC_OUT "]\n"         /* past the other blocks' channels */
    "    ldr   r1, [sp, #" DC_SKIP "]\n"
    "    adds  r0, r1\n"
    "    str   r0, [sp, #" DC_OUT "]\n"
    "    ldr   r0, [sp, #" DC_WIN "]\n"
    "    ldr   r1, [sp, #" DC_STEPX "]\n"
    "    adds  r0, r1\n"
    "    str   r0, [sp, #" DC_WIN "]\n"
    "    ldr   r0, [sp, #" DC_OX "]\n"
    "    subs  r0, #1\n"
    "    str   r0, [sp, #" DC_OX "]\n"
    "    bne   .L\\F\\()_pixel\n"
    "    ldr   r0, [sp, #" DC_ROWWIN "]\n"
    "    ldr   r1, [sp, #" DC_STEPY "]\n"
    "    adds  r0, r1\n"
    "    str   r0, [sp, #" DC_ROWWIN "]\n"
    "    str   r0, [sp, #" DC_WIN "]\n"
    "    ldr   r0, [sp, #" DC_OUTW "]\n"
    "    str   r0, [sp, #" DC_OX "]\n"
    "    ldr   r0, [sp, #" DC_OY "]\n"
    "    subs  r0, #1\n"
    "    str   r0, [sp, #" DC_OY "]\n"
    "    bne   .L\\F\\()_pixel\n"
    "    mov   r0, r4\n"                       /* the end of the block */
    "    add   sp, #" DC_FRAME "\n"
    "    pop   {r1-r4}\n"
    "    mov   r8, r1\n    mov r9, r2\n    mov r10, r3\n    mov r11, r4\n"
    "    pop   {r4-r7, pc}\n"
    ".L\\F\\()_k1:\n    DC_GROUP 1, \\RQ, \\F\n"
    ".L\\F\\()_k2:\n    DC_GROUP 2, \\RQ, \\F\n"
    ".L\\F\\()_k3:\n    DC_GROUP 3, \\RQ, \\F\n"
    ".size \\F, . - \\F\n"
    ".endm\n"
    "DC_FUNC pp_dconv_m0_mul, PP_RQ_MUL_R0\n"
    "DC_FUNC pp_dconv_m0_tbl, PP_RQ_TBL_R0\n"
    ".text\n");

/* ---- fully connected (the assembly block above defined the requantization macros) ------------ */

#define DF_XEND8 "0"   /* input end of the 8-at-a-time loop */
#define DF_XEND "4"
#define DF_IN "8"
#define DF_OUT "12"
#define DF_OUTEND "16"
#define DF_REC "20"
#define DF_RECSTEP "24"
#define DF_WP "28"
#define DF_A0 "32"     /* the two low accumulators while the records are applied */
#define DF_A1 "36"
#define DF_FRAME "40"

__asm__(
    ".syntax unified\n"
    ".thumb\n"
    /* input byte at [r5, #OFF] times the 8 weights of the next two stream words (bytes = rows 0-7);
     * REV16 brings the middle bytes of a word to the ends, where SXTB and ASRS #24 extract them in
     * one instruction each */
    ".macro DF_MACS OFF\n"
    "    ldrb  r3, [r5, #\\OFF]\n"
    "    ldm   r4!, {r0, r1}\n"
    "    sxtb  r2, r0\n          muls r2, r3\n    adds r6, r2\n"
    "    asrs  r2, r0, #24\n     muls r2, r3\n    add r9, r2\n"
    "    rev16 r0, r0\n"
    "    sxtb  r2, r0\n          muls r2, r3\n    adds r7, r2\n"
    "    asrs  r0, r0, #24\n     muls r0, r3\n    add r8, r0\n"
    "    sxtb  r2, r1\n          muls r2, r3\n    add r10, r2\n"
    "    asrs  r2, r1, #24\n     muls r2, r3\n    add lr, r2\n"
    "    rev16 r1, r1\n"
    "    sxtb  r2, r1\n          muls r2, r3\n    add r11, r2\n"
    "    asrs  r1, r1, #24\n     muls r1, r3\n    add r12, r1\n"
    ".endm\n"
    /* the same for a group of 4 rows: one stream word per input */
    ".macro DF_MACS4 OFF\n"
    "    ldrb  r3, [r5, #\\OFF]\n"
    "    ldm   r4!, {r0}\n"
    "    sxtb  r2, r0\n          muls r2, r3\n    adds r6, r2\n"
    "    asrs  r2, r0, #24\n     muls r2, r3\n    add r9, r2\n"
    "    rev16 r0, r0\n"
    "    sxtb  r2, r0\n          muls r2, r3\n    adds r7, r2\n"
    "    asrs  r0, r0, #24\n     muls r0, r3\n    add r8, r0\n"
    ".endm\n"
    /* requantize one row's accumulator (already in r0); stop after the layer's last output */
    ".macro DF_RQ RQ, F\n"
    "    ldr   r4, [sp, #" DF_REC "]\n"
    "    \\RQ\n"
    "    ldr   r4, [sp, #" DF_REC "]\n"
    "    ldr   r1, [sp, #" DF_RECSTEP "]\n"
    "    adds  r4, r1\n"
    "    str   r4, [sp, #" DF_REC "]\n"
    "    ldr   r1, [sp, #" DF_OUTEND "]\n"
    "    cmp   r5, r1\n"
    "    bne   3f\n"
    "    b     .L\\F\\()_done\n"
    "3:\n"
    ".endm\n"
    ".macro DF_FUNC F, RQ\n"
    ".section .data.\\F,\"ax\",%progbits\n"  /* in SRAM: see pp_m0.h */
    ".global \\F\n"
    ".type \\F, %function\n"
    ".thumb_func\n"
    "\\F:\n"
    "    push  {r4-r7, lr}\n"
    "    mov   r1, r8\n    mov r2, r9\n    mov r3, r10\n    mov r4, r11\n"
    "    push  {r1-r4}\n"
    "    sub   sp, #" DF_FRAME "\n"
    "    ldr   r1, [r0, #0]\n    str r1, [sp, #" DF_IN "]\n"
    "    ldr   r2, [r0, #20]\n"                 /* in_size */
    "    adds  r3, r1, r2\n      str r3, [sp, #" DF_XEND "]\n"
    "    lsrs  r2, r2, #3\n      lsls r2, r2, #3\n"
    "    adds  r3, r1, r2\n      str r3, [sp, #" DF_XEND8 "]\n"
    "    ldr   r1, [r0, #4]\n    str r1, [sp, #" DF_OUT "]\n"
    "    ldr   r2, [r0, #24]\n   adds r2, r1, r2\n    str r2, [sp, #" DF_OUTEND "]\n"
    "    ldr   r1, [r0, #12]\n   str r1, [sp, #" DF_REC "]\n"
    "    ldr   r1, [r0, #16]\n   str r1, [sp, #" DF_RECSTEP "]\n"
    "    ldr   r4, [r0, #8]\n"                  /* weight stream */
    ".L\\F\\()_rows:\n"
    "    ldr   r0, [sp, #" DF_OUTEND "]\n"
    "    ldr   r1, [sp, #" DF_OUT "]\n"
    "    subs  r0, r1\n"
    "    cmp   r0, #4\n"
    "    bhi   1f\n"
    "    b     .L\\F\\()_four\n"                /* at most 4 rows left: a group of 4 */
    "1:  ldm   r4!, {r0, r1, r2, r3}\n"
    "    mov   r6, r0\n    mov r7, r1\n    mov r8, r2\n    mov r9, r3\n"
    "    ldm   r4!, {r0, r1, r2, r3}\n"
    "    mov   r10, r0\n   mov r11, r1\n   mov r12, r2\n   mov lr, r3\n"
    "    ldr   r5, [sp, #" DF_IN "]\n"
    "    ldr   r2, [sp, #" DF_XEND8 "]\n"
    "    cmp   r5, r2\n"
    "    bne   .L\\F\\()_eight\n"
    "    b     .L\\F\\()_tail\n"
    ".L\\F\\()_eight:\n"
    "    DF_MACS 0\n    DF_MACS 1\n    DF_MACS 2\n    DF_MACS 3\n"
    "    DF_MACS 4\n    DF_MACS 5\n    DF_MACS 6\n    DF_MACS 7\n"
    "    adds  r5, #8\n"
    "    ldr   r2, [sp, #" DF_XEND8 "]\n"
    "    cmp   r5, r2\n"
    "    beq   .L\\F\\()_tail\n"
    "    b     .L\\F\\()_eight\n"
    ".L\\F\\()_tail:\n"
    "    ldr   r2, [sp, #" DF_XEND "]\n"
    "    cmp   r5, r2\n"
    "    beq   .L\\F\\()_rq\n"
    "    DF_MACS 0\n"
    "    adds  r5, #1\n"
    "    b     .L\\F\\()_tail\n"
    ".L\\F\\()_rq:\n"
    "    str   r4, [sp, #" DF_WP "]\n"
    "    str   r6, [sp, #" DF_A0 "]\n"
    "    str   r7, [sp, #" DF_A1 "]\n"
    "    ldr   r5, [sp, #" DF_OUT "]\n"
    "    ldr   r0, [sp, #" DF_A0 "]\n    DF_RQ \\RQ, \\F\n"
    "    ldr   r0, [sp, #" DF_A1 "]\n    DF_RQ \\RQ, \\F\n"
    "    mov   r0, r8\n    DF_RQ \\RQ, \\F\n"
    "    mov   r0, r9\n    DF_RQ \\RQ, \\F\n"
    "    mov   r0, r10\n   DF_RQ \\RQ, \\F\n"
    "    mov   r0, r11\n   DF_RQ \\RQ, \\F\n"
    "    mov   r0, r12\n   DF_RQ \\RQ, \\F\n"
    "    mov   r0, lr\n    DF_RQ \\RQ, \\F\n"
    "    str   r5, [sp, #" DF_OUT "]\n"
    "    ldr   r4, [sp, #" DF_WP "]\n"
    "    b     .L\\F\\()_rows\n"
    ".L\\F\\()_four:\n"
    "    ldm   r4!, {r0, r1, r2, r3}\n"
    "    mov   r6, r0\n    mov r7, r1\n    mov r8, r2\n    mov r9, r3\n"
    "    ldr   r5, [sp, #" DF_IN "]\n"
    "    ldr   r2, [sp, #" DF_XEND8 "]\n"
    "    cmp   r5, r2\n"
    "    beq   2f\n"
    "1:  DF_MACS4 0\n    DF_MACS4 1\n    DF_MACS4 2\n    DF_MACS4 3\n"
    "    DF_MACS4 4\n    DF_MACS4 5\n    DF_MACS4 6\n    DF_MACS4 7\n"
    "    adds  r5, #8\n"
    "    ldr   r2, [sp, #" DF_XEND8 "]\n"
    "    cmp   r5, r2\n"
    "    bne   1b\n"
    "2:  ldr   r2, [sp, #" DF_XEND "]\n"
    "    cmp   r5, r2\n"
    "    beq   3f\n"
    "    DF_MACS4 0\n"
    "    adds  r5, #1\n"
    "    b     2b\n"
    "3:  str   r6, [sp, #" DF_A0 "]\n"
    "    str   r7, [sp, #" DF_A1 "]\n"
    "    ldr   r5, [sp, #" DF_OUT "]\n"
    "    ldr   r0, [sp, #" DF_A0 "]\n    DF_RQ \\RQ, \\F\n"
    "    ldr   r0, [sp, #" DF_A1 "]\n    DF_RQ \\RQ, \\F\n"
    "    mov   r0, r8\n    DF_RQ \\RQ, \\F\n"
    "    mov   r0, r9\n    DF_RQ \\RQ, \\F\n"
    ".L\\F\\()_done:\n"
    "    add   sp, #" DF_FRAME "\n"
    "    pop   {r1-r4}\n"
    "    mov   r8, r1\n    mov r9, r2\n    mov r10, r3\n    mov r11, r4\n"
    "    pop   {r4-r7, pc}\n"
    ".size \\F, . - \\F\n"
    ".endm\n"
    "DF_FUNC pp_dfc_m0_mul, PP_RQ_MUL_R0\n"
    "DF_FUNC pp_dfc_m0_tbl, PP_RQ_TBL_R0\n"
    ".text\n");

/* ---- pooling --------------------------------------------------------------------------------- */

/* Max pooling, VALID windows only (the code generator falls back to tflm-ref for padded pooling).
 * The running maximum starts at act_min, which is the lower clamp, and the upper clamp is applied
 * once. Each channel's window is read through register offsets (no multiply per tap); a 2x2 window,
 * LeNet's, is four loads with no inner loop: ~25 cycles per output instead of ~105. */
void pp_maxpool_dense(const pp_pool_t *p, const int8_t *in, int8_t *out, int8_t *scratch) {
    (void)scratch;
    const int32_t c = p->channels, row = p->in_w * c, kh = p->k_h, kw = p->k_w;
    const int32_t step_x = p->stride_w * c, step_y = p->stride_h * row, out_h = p->out_h, out_w = p->out_w;
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t diag = row + c;
    for (int32_t oy = 0; oy < out_h; ++oy) {
        const int8_t *win = in + oy * step_y;
        for (int32_t ox = 0; ox < out_w; ++ox, win += step_x) {
            const int8_t *r = win;
            if (kh == 2 && kw == 2) {
                for (int32_t ch = 0; ch < c; ++ch, ++r) {
                    int32_t m = lo, v;
                    if ((v = r[0]) > m) m = v;
                    if ((v = r[c]) > m) m = v;
                    if ((v = r[row]) > m) m = v;
                    if ((v = r[diag]) > m) m = v;
                    *out++ = (int8_t)(m > hi ? hi : m);
                }
                continue;
            }
            for (int32_t ch = 0; ch < c; ++ch, ++r) {
                int32_t m = lo;
                const int8_t *t = r;
                for (int32_t fy = 0; fy < kh; ++fy, t += row)
                    for (int32_t fx = 0, at = 0; fx < kw; ++fx, at += c) {
                        const int32_t v = t[at];
                        if (v > m) m = v;
                    }
                *out++ = (int8_t)(m > hi ? hi : m);
            }
        }
    }
}
