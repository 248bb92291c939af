"""Straight-line Cortex-M0+ code for one sparse convolution: every nonzero weight becomes instructions.

The ``sparse`` kernel set's convolution visits only nonzero weights. A data-driven loop must load each
weight and its input offset, decode them and branch: about 8 cycles per nonzero on the M0+. Generated
code instead carries the weight in the instruction stream (``movs r2, #|w|``), the input offset in the
load (``ldrb r0, [r3, #off]``) and the output channel in the register it adds to, so a nonzero costs
3 cycles (MOVS, MULS, ADD; 2 for |w| a power of two, 1 for |w| = 1) and each input byte is loaded once
for up to nine output channels (accumulators r5-r7 and r8-r12, lr). Zero weights cost nothing, not
even a byte of flash; an input byte whose weights in a group are all zero is not loaded at all.

The input is read from a padded copy whose sign bits are flipped (u = x + 128, kernels/sparse.c:
pp_conv_flipped), because LDRB has an immediate offset and LDRSB has not; the -128 and the input
offset are folded into the bias. Negative weights are subtracted (SUBS, low accumulators) or their
products negated, or multiply a negated copy of the input byte when that is cheaper (_macs).
Requantization is TFLM's double rounding, bit-exact: by threshold table (rqtable.py) where the
tables fit, else the arithmetic of kernels/pp_m0.h, with the per-channel constants as literals.

The generated function loops over output pixels itself, one block of channel groups at a time (pixels
inside, blocks outside). It lives in SRAM (a .data section copied at boot) when codegen stages it;
then the whole layer is one block. Code left in flash is re-executed for every pixel through the
16 KB XIP cache, so there each block is kept under ``block_bytes`` (streams.XIP_BLOCK_BYTES), with
groups made smaller where a group of GROUP_MAX channels would not fit: fetched from flash once per
block, not once per pixel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..ir import Conv2D, TensorInfo, requantization
from .rqtable import RqTable

GROUP_MAX = 9               # accumulators: r5-r7, r8-r12, lr (r4 points to the outputs afterwards)
_LOW_ACC = ("r5", "r6", "r7")
_ACC = (*_LOW_ACC, "r8", "r9", "r10", "r11", "r12", "lr")
# frame of the generated function (bytes from sp)
_WIN, _ROWWIN, _OX, _OY = 0, 4, 12, 16
_SPILL = 20                 # 3 words: the low accumulators while the arithmetic requantization runs
_WIN0, _OUT0 = 32, 36       # the window of output pixel (0, 0) and the output, where each block starts
_FRAME = 40


@dataclass(frozen=True)
class Geometry:
    """What the generated code needs from the layer's shapes (kernels/sparse.c computes the same)."""

    row: int        # bytes per row of the padded input
    step_x: int     # window advance per output column
    step_y: int     # window advance per output row
    out_h: int
    out_w: int
    out_c: int


def geometry(layer: Conv2D, row: int) -> Geometry:
    oh, ow, oc = layer.output.shape
    c = layer.weights.shape[3]
    return Geometry(row, layer.stride[1] * c, layer.stride[0] * row, oh, ow, oc)


def channel_groups(channels: int, largest: int = GROUP_MAX) -> list[range]:
    """Output channels in as few groups of at most ``largest`` as possible, sizes balanced."""
    n = -(-channels // largest)
    sizes = [channels // n + (i < channels % n) for i in range(n)]
    starts = np.cumsum([0] + sizes)
    return [range(int(a), int(b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _group_bytes(w: np.ndarray, group: range) -> int:
    """About how many bytes of code one group becomes: 2 per instruction, ~3 per nonzero and 2 per
    loaded input byte, ~100 per output channel for its bias, requantization and literals."""
    g = w[group.start:group.stop]
    return 2 * (3 * int(np.count_nonzero(g)) + 2 * int(np.any(g != 0, axis=0).sum())) + 100 * len(group)


def blocks(w: np.ndarray, block_bytes: int | None = None) -> list[list[range]]:
    """The channel groups of a layer with weights w (O, taps), in blocks that the generated code runs
    over all pixels one after the other. None: one block of groups of up to GROUP_MAX (the code is in
    SRAM). Else groups as large as fit ``block_bytes`` and as many per block as fit it, so that a
    block's code stays in the XIP cache from one pixel to the next (a group of one channel that does
    not fit is still one block)."""
    o = w.shape[0]
    if block_bytes is None:
        return [channel_groups(o)]
    largest = GROUP_MAX
    while largest > 1 and max(_group_bytes(w, g) for g in channel_groups(o, largest)) > block_bytes:
        largest -= 1
    out: list[list[range]] = [[]]
    used = 0
    for g in channel_groups(o, largest):
        size = _group_bytes(w, g)
        if out[-1] and used + size > block_bytes:
            out.append([])
            used = 0
        out[-1].append(g)
        used += size
    return out


def _product(src: str, a: int) -> tuple[list[str], str]:
    """Instructions leaving a * src in a register (1 <= a <= 128), and that register."""
    if a == 1:
        return [], src
    if a & (a - 1) == 0:
        return [f"lsls r2, {src}, #{a.bit_length() - 1}"], "r2"
    return [f"movs r2, #{a}", f"muls r2, {src}"], "r2"


def _macs(w: np.ndarray, offsets: np.ndarray, accs: tuple[str, ...]) -> list[str]:
    """The products of one group: w is (K, taps) int8, offsets (taps,) bytes from the window origin.

    A negative weight is subtracted where the accumulator is a low register (SUBS); for high ones
    (ADD only) the product is negated, or, when two or more such weights share the input byte, the
    byte is negated once (NEGS into r1) and their products are added."""
    lines, base = [], 0
    for t in np.flatnonzero(np.any(w != 0, axis=0)):
        off = int(offsets[t])
        while off - base > 31:  # LDRB reaches 31 bytes past its base: move the base
            step = min(off - base, 255)
            lines.append(f"adds r3, #{step}")
            base += step
        lines.append(f"ldrb r0, [r3, #{off - base}]")
        col = w[:, t].astype(np.int64)
        nz = np.flatnonzero(col)
        negate_input = sum(col[k] < 0 and accs[k] not in _LOW_ACC for k in nz) >= 2
        if negate_input:
            lines.append("negs r1, r0")
        for k in nz:
            acc, a = accs[k], abs(int(col[k]))
            if col[k] > 0 or negate_input and acc not in _LOW_ACC:
                code, reg = _product("r0" if col[k] > 0 else "r1", a)
                lines += [*code, f"add {acc}, {reg}"]
            elif acc in _LOW_ACC:
                code, reg = _product("r0", a)
                lines += [*code, f"subs {acc}, {acc}, {reg}"]
            else:
                code, reg = _product("r0", a)
                if reg == "r0":
                    code, reg = ["negs r2, r0"], "r2"
                else:
                    code.append("negs r2, r2")
                lines += [*code, f"add {acc}, r2"]
    return lines


def _literal(reg: str, value: int) -> list[str]:
    v = int(value)
    if 0 <= v <= 255:
        return [f"movs {reg}, #{v}"]
    return [f"ldr {reg}, ={v & 0xFFFFFFFF}"]


def _requantize(src: str, c: int, m: int, shift: int, off: int, lo: int, hi: int, bound: int) -> list[str]:
    """TFLM's MultiplyByQuantizedMultiplier + offset + clamp of the accumulator in ``src`` (a register
    or a stack slot), stored as out[c] at [r4, #c]. The arithmetic is PP_RQ_MUL_R0's (kernels/pp_m0.h)
    with the constants folded in; the output is kept biased by +128 so that the clamp bounds are
    MOVS/CMP immediates."""
    lines = [f"ldr r0, [sp, #{src}]" if src.isdigit() else f"mov r0, {src}"]
    left, right = max(shift, 0), max(-shift, 0)
    if m == 0:  # a zero scale: every accumulator maps to the offset
        lines = _literal("r0", min(max(off, lo), hi) + 128)
    else:
        if left:
            lines.append(f"lsls r0, r0, #{left}")
        if right:
            lines.append("asrs r7, r0, #31")
        lines += ["uxth r2, r0", "asrs r0, r0, #16", *_literal("r6", m & 0xFFFF), *_literal("r1", m >> 16),
                  "mov r5, r2", "muls r5, r6", "muls r2, r1", "muls r6, r0", "muls r0, r1",
                  "lsrs r5, r5, #16", "adds r2, r5", "lsls r5, r6, #17", "lsrs r5, r5, #17", "adds r2, r5",
                  "asrs r6, r6, #15", "lsls r0, r0, #1", "adds r0, r6",
                  "movs r5, #1", "lsls r5, r5, #14", "adds r2, r5", "lsrs r2, r2, #15", "adds r0, r2"]
        if right:
            lines.append("adds r0, r7")
            fold = (1 << (right - 1)) + ((off + 128) << right)
            if bound + abs(fold) < 2**31:  # the output offset rides along with the rounding constant
                lines += [*_literal("r5", fold), "adds r0, r5", f"asrs r0, r0, #{right}"]
            else:
                lines += [*_literal("r5", 1 << (right - 1)), "adds r0, r5", f"asrs r0, r0, #{right}",
                          *_literal("r5", off + 128), "adds r0, r5"]
        else:
            lines += [*_literal("r5", off + 128), "adds r0, r5"]
        lines += [f"cmp r0, #{lo + 128}", "bge 1f", f"movs r0, #{lo + 128}", "1:",
                  f"cmp r0, #{hi + 128}", "ble 2f", f"movs r0, #{hi + 128}", "2:"]
    return [*lines, "subs r0, #128", f"strb r0, [r4, #{c}]"]


def _requantize_table(acc: str, c: int, t: RqTable, table: str) -> list[str]:
    """The same by threshold table (rqtable.py), ~21 cycles, with r0-r3 only (and a low accumulator
    in place), so the other accumulators stay where they are. The accumulator already counts from
    t.xs (folded into its bias); ``table`` addresses the channel's T[0]."""
    x = acc if acc in _LOW_ACC else "r0"
    lines = [] if x == acc else [f"mov r0, {acc}"]
    lines += [*_literal("r2", t.w), f"cmp {x}, r2", "bls 1f",
              f"asrs {x}, {x}, #31", f"bics r2, {x}", f"mov {x}, r2", "1:"]  # below 0: 0, above w: w
    if t.p:
        lines += [f"lsrs r3, {x}, #{t.p}", *_literal("r1", t.m), "muls r3, r1"]
    else:
        lines += [*_literal("r3", t.m), f"muls r3, {x}"]
    return [*lines, "lsrs r3, r3, #24", "lsls r1, r3, #2", f"ldr r2, ={table}", "ldr r1, [r2, r1]",
            f"cmp {x}, r1", f"movs r2, #{t.o_min & 0xFF}", "adcs r3, r2",  # MOVS keeps the carry
            f"strb r3, [r4, #{c}]"]


def _add_constant(reg: str, value: int) -> list[str]:
    """reg += value (value >= 0), through r1 when it does not fit an immediate."""
    if value <= 255:
        return [f"adds {reg}, #{value}"] if value else []
    return [*_literal("r1", value), f"adds {reg}, r1"]


_SHORT_BRANCH = re.compile(r"b(eq|ne|cs|cc|hs|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le) (\d)f")


def _with_literal_pools(lines: list[str], reach: int = 800) -> list[str]:
    """Insert literal pools (jumped over) so that no ``ldr rX, =value`` is farther than ``reach``
    bytes from its pool (Thumb's PC-relative LDR reaches 1020 bytes forward). Never between a
    conditional branch and its local label: a conditional branch reaches only 256 bytes, less than a
    pool of a few dozen literals (the margin left by ``reach`` covers the short wait)."""
    out, pos, pending, open_label = [], 0, None, None
    for ln in lines:
        if pending is not None and pos - pending > reach and open_label is None:
            out += ["b 3f", ".ltorg", "3:"]
            pos, pending = pos + 2, None
        out.append(ln)
        branch = _SHORT_BRANCH.fullmatch(ln)
        if branch:
            open_label = branch.group(2)
        elif ln == f"{open_label}:":
            open_label = None
        if ln == ".ltorg":
            pending = None
        elif not ln.endswith(":") and not ln.startswith("."):
            if "=" in ln and pending is None:
                pending = pos
            pos += 2
    return out


def generate_conv(symbol: str, layer: Conv2D, inp: TensorInfo, row: int, bias: np.ndarray, section: str,
                  bound: int, tables: list[RqTable] | None = None, table_symbol: str = "",
                  block_bytes: int | None = None) -> str:
    """GNU assembler source of ``void symbol(const uint8_t *window0, int8_t *out)``: the whole layer,
    from the window of output pixel (0, 0) in the flipped, padded input. ``bias`` is folded for the
    flipped input; ``bound`` bounds |accumulator| (streams.accumulator_bound). With ``tables`` (one
    per channel, back to back in the uint32 array ``table_symbol``) the requantization looks up
    thresholds, else it multiplies. ``block_bytes``: the code stays in flash, run it in blocks of
    about that many bytes (``blocks``)."""
    rq = requantization(layer, inp)
    g = geometry(layer, row)
    o, kh, kw, c = layer.weights.shape
    ky, kx, ic = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    offsets = (ky * row + kx * c + ic).ravel()
    w = layer.weights.reshape(o, -1)
    mult = np.broadcast_to(rq.multiplier, (o,))
    shift = np.broadcast_to(rq.shift, (o,))
    lo, hi = layer.activation.min, layer.activation.max
    table_at = np.cumsum([0] + [t.thresholds.size for t in tables or []])
    body = ["push {r4-r7, lr}", "mov r2, r8", "mov r3, r9", "mov r4, r10", "mov r5, r11", "push {r2-r5}",
            f"sub sp, #{_FRAME}", f"str r0, [sp, #{_WIN0}]", f"str r1, [sp, #{_OUT0}]"]
    for b, block in enumerate(blocks(w, block_bytes)):
        first = block[0].start  # r4 points to the block's first channel of the current pixel
        pixel = f".L{symbol}_pixel{b}"
        body += [f"ldr r0, [sp, #{_WIN0}]", f"str r0, [sp, #{_WIN}]", f"str r0, [sp, #{_ROWWIN}]",
                 f"ldr r4, [sp, #{_OUT0}]", *_add_constant("r4", first),
                 *_literal("r0", g.out_w), f"str r0, [sp, #{_OX}]", *_literal("r0", g.out_h), f"str r0, [sp, #{_OY}]",
                 f"{pixel}:"]
        for group in block:
            k = len(group)
            accs = _ACC[:k]
            body.append(f"ldr r3, [sp, #{_WIN}]")
            for a, ch in zip(accs, group, strict=True):
                if a in _LOW_ACC:
                    body += _literal(a, bias[ch])
                else:
                    body += [*_literal("r0", bias[ch]), f"mov {a}, r0"]
            body += _macs(w[group.start:group.stop], offsets, accs)
            low = [a for a in accs if a in _LOW_ACC]
            if tables is None:  # the arithmetic needs r5-r7 too: park the low accumulators
                for j, a in enumerate(low):
                    body.append(f"str {a}, [sp, #{_SPILL + 4 * j}]")
            rebase = group.start - first if group.stop - first > 32 else 0  # strb reaches 31 bytes past r4
            body += _add_constant("r4", rebase)
            for a, ch in zip(accs, group, strict=True):
                at = ch - first - rebase
                if tables is not None:
                    body += _requantize_table(a, at, tables[ch], f"{table_symbol} + {4 * table_at[ch]}")
                else:
                    src = str(_SPILL + 4 * low.index(a)) if a in _LOW_ACC else a
                    body += _requantize(src, at, int(mult[ch]), int(shift[ch]), rq.output_offset, lo, hi, bound)
            if rebase:
                body += [*_literal("r1", rebase), "subs r4, r4, r1"]
        # next pixel: output pointer and window right; at the end of a row, down one window row
        body += [*_add_constant("r4", g.out_c),
                 f"ldr r0, [sp, #{_WIN}]", *_add_constant("r0", g.step_x), f"str r0, [sp, #{_WIN}]",
                 f"ldr r0, [sp, #{_OX}]", "subs r0, #1", f"str r0, [sp, #{_OX}]", "beq 4f",
                 f"bl {pixel}",  # BL as a long jump: the body can be far more than B's 2 KB
                 "4:", f"ldr r0, [sp, #{_ROWWIN}]", *_add_constant("r0", g.step_y),
                 f"str r0, [sp, #{_ROWWIN}]", f"str r0, [sp, #{_WIN}]",
                 *_literal("r0", g.out_w), f"str r0, [sp, #{_OX}]",
                 f"ldr r0, [sp, #{_OY}]", "subs r0, #1", f"str r0, [sp, #{_OY}]", "beq 5f",
                 f"bl {pixel}",
                 "5:"]
    body += [f"add sp, #{_FRAME}", "pop {r2-r5}", "mov r8, r2", "mov r9, r3", "mov r10, r4", "mov r11, r5",
             "pop {r4-r7, pc}", ".ltorg"]
    head = [f".section {section},\"ax\",%progbits", ".align 2", f".global {symbol}", f".type {symbol}, %function",
            ".thumb_func", f"{symbol}:"]
    lines = [*head, *_with_literal_pools(body), f".size {symbol}, . - {symbol}"]
    return "\n".join(f"    {ln}" if not ln.endswith(":") else ln for ln in lines) + "\n"


def code_bytes_estimate(layer: Conv2D) -> int:
    """About how many bytes generate_conv emits for a staged layer (one block): ``_group_bytes`` of
    each group, and the loop around them."""
    w = layer.weights.reshape(layer.weights.shape[0], -1)
    return sum(_group_bytes(w, g) for g in channel_groups(w.shape[0])) + 200
