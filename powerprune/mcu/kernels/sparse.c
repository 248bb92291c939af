/* Kernel set "sparse": work only for nonzero weights.
 *
 * Convolutions are normally generated code (powerprune/mcu/sparsegen.py): every nonzero weight is an
 * immediate in the instruction stream, so this file only prepares their input (pp_conv_flipped).
 * When a layer's code would be too large (streams.GENERATED_CODE_MAX), pp_conv2d_sparse below runs
 * instead: per output channel the number of nonzeros, then one 32-bit word per nonzero,
 * offset << 8 | value (ARMv6-M has no immediate-offset LDRSB; a word load plus SXTB/LSRS is cheaper
 * than two narrow loads), two output pixels per pass so that each entry is decoded once for both,
 * output channels in blocks that fit the XIP cache.
 *
 * Fully connected (pp_fc_sparse, assembly): per row its count of nonzeros, its folded bias and one
 * word per nonzero, input index << 8 | value; LDM fetches four entries at once and each costs SXTB,
 * LSRS, LDRB, MULS, ADD: 8 cycles per nonzero. The input is read with its sign bits flipped
 * (u = x + 128, unsigned) through LDRB; codegen folds the -128 into the bias. */
#include "pp_common.h"
#include "pp_m0.h"

/* The input of a generated sparse convolution (powerprune/mcu/sparsegen.py): padded to the rows and
 * columns the windows touch (pads hold the input zero point) and with every sign bit flipped
 * (u = x + 128), so the generated code can read it with immediate-offset LDRB. Rows are padded on
 * the left to a word boundary and to a whole number of words, so the input is copied a word at a
 * time (streams.input_layout derives the layout; the descriptor holds it). Returns the window origin of output
 * pixel (0, 0). */
const uint8_t *pp_conv_flipped(const pp_conv_t *p, const int8_t *in, int8_t *scratch) {
    /* fields in locals: the stores below could alias the descriptor as far as the compiler knows */
    const int32_t hp = p->padded_rows, row = p->row_bytes, lead = p->row_lead, cols = p->row_copy;
    const int32_t in_row = p->in_w * p->in_c, in_h = p->in_h, pad_h = p->pad_h, words = p->scratch_bytes >> 2;
    const int32_t origin = p->window_origin;
    const uint32_t pad = (((uint8_t)(-p->input_offset)) ^ 0x80u) * 0x01010101u;
    uint32_t *fill = (uint32_t *)scratch;
    for (int32_t i = 0; i < words; ++i) fill[i] = pad;
    for (int32_t y = 0; y < in_h && y + pad_h < hp; ++y) {
        const uint8_t *src = (const uint8_t *)in + y * in_row;
        uint8_t *dst = (uint8_t *)scratch + (y + pad_h) * row + lead;
        int32_t i = 0;
        if (((uintptr_t)src & 3) == 0)  /* dst is word aligned by construction */
            for (; i + 4 <= cols; i += 4) *(uint32_t *)(dst + i) = *(const uint32_t *)(src + i) ^ 0x80808080u;
        for (; i < cols; ++i) dst[i] = src[i] ^ 0x80u;
    }
    return (const uint8_t *)scratch + origin;
}

static inline int32_t packed_dot(const int8_t *win, const uint32_t *e, int32_t n) {
    int32_t acc = 0;
    while (n >= 4) {
        acc += (int8_t)e[0] * win[e[0] >> 8];
        acc += (int8_t)e[1] * win[e[1] >> 8];
        acc += (int8_t)e[2] * win[e[2] >> 8];
        acc += (int8_t)e[3] * win[e[3] >> 8];
        e += 4;
        n -= 4;
    }
    while (n-- > 0) {
        acc += (int8_t)*e * win[*e >> 8];
        ++e;
    }
    return acc;
}

/* Two neighbouring output pixels at once: each entry is decoded once and used twice, which takes
 * the inner loop from ~8 to ~6.5 cycles per nonzero and halves the per-channel bookkeeping. */
static inline void packed_dot2(const int8_t *w0, const int8_t *w1, const uint32_t *e, int32_t n,
                               int32_t *a0, int32_t *a1) {
    int32_t acc0 = *a0, acc1 = *a1;
    while (n >= 2) {
        const uint32_t x0 = e[0], x1 = e[1];
        acc0 += (int8_t)x0 * w0[x0 >> 8];
        acc1 += (int8_t)x0 * w1[x0 >> 8];
        acc0 += (int8_t)x1 * w0[x1 >> 8];
        acc1 += (int8_t)x1 * w1[x1 >> 8];
        e += 2;
        n -= 2;
    }
    if (n) {
        acc0 += (int8_t)*e * w0[*e >> 8];
        acc1 += (int8_t)*e * w1[*e >> 8];
    }
    *a0 = acc0;
    *a1 = acc1;
}

/* Output channels in blocks whose entries take at most this many bytes, each block over all pixels
 * before the next: entries left in flash are then fetched through the 16 KB XIP cache once per block
 * instead of once per pixel pair. Half the cache, unlike the dense and generated kernels' blocks
 * (streams.XIP_BLOCK_BYTES): this function and the per-channel arrays come from flash too, and in a
 * 2-way cache a block of at most one way's size leaves each set a way for them (a larger block
 * measured twice the misses on a 32 -> 32 3x3 layer). In SRAM the blocks cost only the loop overhead
 * of going over the pixels once more per block. */
#define PP_SPARSE_BLOCK_BYTES 8192

void pp_conv2d_sparse(const pp_conv_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    const int8_t *src = pp_padded_input(p, in, scratch);
    const int32_t row = p->row_bytes;
    /* descriptor fields in locals: stores through `out` could alias the descriptor as far as the
     * compiler knows, so reading p-> inside the loops would reload every field per output */
    const int32_t step_x = p->stride_w * p->in_c, step_y = p->stride_h * row;
    const int32_t oc_n = p->out_c, out_w = p->out_w, out_h = p->out_h;
    const uint16_t *const counts = p->nz_count;
    const int32_t *const bias = p->bias, *const mult = p->multiplier, *const shift = p->shift;
    const int32_t out_offset = p->output_offset, lo = p->act_min, hi = p->act_max;
    const uint32_t *block = p->nz_packed;
    for (int32_t c0 = 0, c1; c0 < oc_n; c0 = c1) {
        int32_t words = counts[c0];  /* the block: c0 and the channels after it that still fit */
        for (c1 = c0 + 1; c1 < oc_n && 4 * (words + counts[c1]) <= PP_SPARSE_BLOCK_BYTES; ++c1) words += counts[c1];
        int8_t *o = out + c0;
        for (int32_t oy = 0; oy < out_h; ++oy) {
            const int8_t *win = src + oy * step_y;
            int32_t ox = 0;
            for (; ox + 2 <= out_w; ox += 2, win += 2 * step_x, o += 2 * oc_n) {
                const uint32_t *e = block;
                for (int32_t oc = c0; oc < c1; ++oc) {
                    const int32_t n = counts[oc];
                    int32_t acc0 = bias[oc], acc1 = bias[oc];
                    packed_dot2(win, win + step_x, e, n, &acc0, &acc1);
                    e += n;
                    const int32_t m = mult[oc], s = shift[oc];
                    o[oc - c0] = pp_output8(acc0, m, s, out_offset, lo, hi);
                    o[oc_n + oc - c0] = pp_output8(acc1, m, s, out_offset, lo, hi);
                }
            }
            for (; ox < out_w; ++ox, win += step_x, o += oc_n) {  /* an odd last column */
                const uint32_t *e = block;
                for (int32_t oc = c0; oc < c1; ++oc) {
                    const int32_t n = counts[oc];
                    const int32_t acc = bias[oc] + packed_dot(win, e, n);
                    e += n;
                    o[oc - c0] = pp_output8(acc, mult[oc], shift[oc], out_offset, lo, hi);
                }
            }
        }
        block += words;
    }
}

/* ---- fully connected ------------------------------------------------------------------------ */

typedef struct {
    const uint8_t *in;        /* 0: input with the sign bit flipped */
    int8_t *out;              /* 4 */
    const int32_t *rows;      /* 8: per row [count, bias, entries x count] */
    const int32_t *records;   /* 12: requantization records, one per row (per channel) or one */
    int32_t record_step;      /* 16: bytes from one row's record to the next (0: per tensor) */
    int32_t out_size;         /* 20 */
} pp_sfc_args_t;

void pp_sfc_m0_mul(const pp_sfc_args_t *a);
void pp_sfc_m0_tbl(const pp_sfc_args_t *a);

void pp_fc_sparse(const pp_fc_t *p, const int8_t *in, int8_t *restrict out, int8_t *scratch) {
    pp_flip_sign(in, scratch, p->in_size);
    /* the stream: record kind, the records (one per row, or one), then the rows */
    const int tbl = p->stream[0] == PP_RQ_KIND_TBL;
    const int32_t words = tbl ? PP_RQT_WORDS : PP_RQ_WORDS;
    const int32_t *records = p->stream + 1;
    const pp_sfc_args_t a = {(const uint8_t *)scratch, out, records + (p->per_channel ? p->out_size : 1) * words,
                             records, p->per_channel ? 4 * words : 0, p->out_size};
    if (tbl)
        pp_sfc_m0_tbl(&a);
    else
        pp_sfc_m0_mul(&a);
}

#define SF_IN "0"
#define SF_OUT "4"
#define SF_OUTEND "8"
#define SF_REC "12"
#define SF_RECSTEP "16"
#define SF_WP "20"
#define SF_FRAME "24"

__asm__(
    ".syntax unified\n"
    ".thumb\n"
    PP_M0_RQ_MACRO
    /* acc (r8) += value * input[offset] for the entry in register E; clobbers E, r6 */
    ".macro SF_ENTRY E\n"
    "    sxtb  r6, \\E\n"
    "    lsrs  \\E, \\E, #8\n"
    "    ldrb  \\E, [r5, \\E]\n"
    "    muls  r6, \\E\n"
    "    add   r8, r6\n"
    ".endm\n"
    ".macro SF_FUNC F, RQ\n"
    ".section .data.\\F,\"ax\",%progbits\n"  /* in SRAM: see pp_m0.h */
    ".global \\F\n"
    ".type \\F, %function\n"
    ".thumb_func\n"
    "\\F:\n"
    "    push  {r4-r7, lr}\n"
    "    mov   r1, r8\n    mov r2, r9\n    mov r3, r10\n    push {r1-r3}\n"
    "    sub   sp, #" SF_FRAME "\n"
    "    ldr   r1, [r0, #0]\n    str r1, [sp, #" SF_IN "]\n"
    "    ldr   r1, [r0, #4]\n    str r1, [sp, #" SF_OUT "]\n"
    "    ldr   r2, [r0, #20]\n   adds r2, r1, r2\n    str r2, [sp, #" SF_OUTEND "]\n"
    "    ldr   r1, [r0, #12]\n   str r1, [sp, #" SF_REC "]\n"
    "    ldr   r1, [r0, #16]\n   str r1, [sp, #" SF_RECSTEP "]\n"
    "    ldr   r4, [r0, #8]\n"
    ".L\\F\\()_row:\n"
    "    ldm   r4!, {r0, r1}\n"                 /* count, folded bias */
    "    mov   r8, r1\n"
    "    lsls  r0, r0, #2\n"
    "    adds  r0, r4\n"
    "    mov   r9, r0\n"                        /* end of the row's entries */
    "    subs  r0, #12\n"
    "    mov   r10, r0\n"                       /* below it, four more entries remain */
    "    ldr   r5, [sp, #" SF_IN "]\n"
    "    b     2f\n"
    "1:  ldm   r4!, {r0, r1, r2, r3}\n"
    "    SF_ENTRY r0\n    SF_ENTRY r1\n    SF_ENTRY r2\n    SF_ENTRY r3\n"
    "2:  cmp   r4, r10\n"
    "    blo   1b\n"
    "3:  cmp   r4, r9\n"
    "    beq   4f\n"
    "    ldm   r4!, {r0}\n"
    "    SF_ENTRY r0\n"
    "    b     3b\n"
    "4:  str   r4, [sp, #" SF_WP "]\n"
    "    ldr   r4, [sp, #" SF_REC "]\n"
    "    ldr   r5, [sp, #" SF_OUT "]\n"
    "    mov   r0, r8\n"
    "    \\RQ\n"
    "    str   r5, [sp, #" SF_OUT "]\n"
    "    ldr   r4, [sp, #" SF_REC "]\n"
    "    ldr   r1, [sp, #" SF_RECSTEP "]\n"
    "    adds  r4, r1\n"
    "    str   r4, [sp, #" SF_REC "]\n"
    "    ldr   r4, [sp, #" SF_WP "]\n"
    "    ldr   r1, [sp, #" SF_OUTEND "]\n"
    "    cmp   r5, r1\n"
    "    bne   .L\\F\\()_row\n"
    "    add   sp, #" SF_FRAME "\n"
    "    pop   {r1-r3}\n    mov r8, r1\n    mov r9, r2\n    mov r10, r3\n"
    "    pop   {r4-r7, pc}\n"
    ".size \\F, . - \\F\n"
    ".endm\n"
    "SF_FUNC pp_sfc_m0_mul, PP_RQ_MUL_R0\n"
    "SF_FUNC pp_sfc_m0_tbl, PP_RQ_TBL_R0\n"
    ".text\n");
