"""The data the fast kernels read, laid out in the order their loops consume it: the dense and
sparse weight streams (kernels/dense.c, kernels/dense_dw.c, kernels/sparse.c), the 9-word
requantization records or threshold tables (kernels/pp_m0.h, rqtable.py), the fast ADD's tables
(kernels/add.c), the geometry of the padded input copies and the scratch each kernel needs.

Each function here has one C reader; its docstring names it, and a change to either side is a
change to both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import AddRequant, Conv2D, DepthwiseConv2D, FullyConnected, Layer, TensorInfo, output_size
from . import rqtable, sparsegen
from .cgen import CodegenError, Struct, align4, fields

Weighted = Conv2D | DepthwiseConv2D | FullyConnected
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")   # the ops of ``Weighted`` layers

@dataclass(frozen=True)
class InputLayout:
    """How a fast convolution reads its input: in place, or as a copy in the arena's scratch padded to
    exactly the rows and columns its windows touch, the border holding the input zero point. Derived
    here once and written into the descriptor (``pp_conv_t``), which the C copy routines read
    (kernels/pp_common.h pp_padded_input, dense_dw.c pp_padded_flipped, sparse.c pp_conv_flipped)."""

    row_bytes: int       # bytes from one row of what the windows read to the next
    padded_rows: int     # rows of the padded copy (0: read in place)
    row_lead: int        # bytes from a padded row's start to its first input byte
    row_copy: int        # input bytes copied into each padded row
    scratch_bytes: int   # scratch the copy takes, a whole number of words (0: read in place)
    window_origin: int   # bytes from the scratch's start to the window origin of output pixel (0, 0)

    def fields(self) -> dict[str, int]:
        return {"row_bytes": self.row_bytes, "padded_rows": self.padded_rows, "row_lead": self.row_lead,
                "row_copy": self.row_copy, "scratch_bytes": self.scratch_bytes, "window_origin": self.window_origin}


IN_PLACE = InputLayout(0, 0, 0, 0, 0, 0)   # what a kernel that takes no padded copy is given


def input_layout(layer: Layer, inp: TensorInfo, impl: str) -> InputLayout:
    """The input layout of a convolution under ``impl``: the dense convolution and the data-driven
    sparse one read the input in place when no window crosses its edge, else a padded copy; the dense
    depthwise kernel always reads a padded copy with its sign bits flipped (u = x + 128); generated
    sparse code reads a flipped copy whose rows start their data on a word boundary and are whole
    words long, so the copy moves words. Other kernels: ``IN_PLACE`` (the fields are unused)."""
    generated = generated_conv(layer, impl)
    if not (generated or (impl in ("dense", "sparse") and layer.op == "CONV_2D")
            or (impl == "dense" and layer.op == "DEPTHWISE_CONV_2D")):
        return IN_PLACE
    kh, kw = layer.weights.shape[1:3]
    oh, ow = layer.output.shape[:2]
    hp, wp = (oh - 1) * layer.stride[0] + kh, (ow - 1) * layer.stride[1] + kw
    _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    c = inp.shape[2]
    copy = min(inp.shape[1], wp - pad_w) * c
    if generated:
        lead = align4(pad_w * c)
        row = align4(lead - pad_w * c + wp * c)
        return InputLayout(row, hp, lead, copy, hp * row, lead - pad_w * c)
    if (layer.op == "CONV_2D" and pad_h == 0 and pad_w == 0 and hp <= inp.shape[0] and wp <= inp.shape[1]):
        return InputLayout(inp.shape[1] * c, 0, 0, 0, 0, 0)
    return InputLayout(wp * c, hp, pad_w * c, copy, align4(hp * wp * c), 0)


def sparse_offsets(layer: Conv2D, inp: TensorInfo) -> tuple[np.ndarray, np.ndarray]:
    """Input offset of every weight (relative to the window origin) and the weights, row-major per
    output channel; the sparse encoding keeps the nonzero entries of both."""
    o, kh, kw, c = layer.weights.shape
    row = input_layout(layer, inp, "sparse").row_bytes
    ky, kx, ic = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    offs = (ky * row + kx * c + ic).ravel()
    return np.broadcast_to(offs, (o, offs.size)), layer.weights.reshape(o, -1)


def _channel_weights(layer: Weighted) -> np.ndarray:
    """The weights as int64 (output channels, weights of each): a depthwise layer's (1, KH, KW, O)
    holds output channel o in its last axis."""
    w = layer.weights.astype(np.int64)
    if layer.op == "DEPTHWISE_CONV_2D":
        return w.reshape(-1, w.shape[-1]).T
    return w.reshape(w.shape[0], -1)


def folded_bias(layer: Weighted, rq, extra_offset: int = 0) -> np.ndarray:
    """bias + (input_offset + extra_offset) * sum(w): the input offset leaves the inner loop.
    ``extra_offset`` = -128 for kernels that read the input with its sign bit flipped (x + 128)."""
    sums = _channel_weights(layer).sum(axis=1)
    folded = layer.bias.astype(np.int64) + (rq.input_offset + extra_offset) * sums
    if np.abs(folded).max(initial=0) >= 2**31:
        raise CodegenError("folded bias overflows int32")
    return folded


# --- the dense kernels' streams (kernels/dense.c, kernels/pp_m0.h) ---------------------------------

RQ_KIND_MUL, RQ_KIND_TBL = 0, 1   # PP_RQ_KIND_* in kernels/pp_m0.h
CONV_GROUP_MAX = 6    # output channels per pass of the dense convolution (accumulators r8-r12, lr)
DENSE_CONV_WEIGHTS_MAX = 512 * 1024   # bytes of int32 weights above which a conv layer stays on tflm-ref
FC_ROWS = 8           # rows per pass of the dense fully connected kernel
# cycles per input byte of the dense convolution's inner loop for a group of K channels (LDRSB 2,
# LDM 1 + words, MULS + ADD per channel, index and branch 2): the groups are chosen to minimize it
_CONV_GROUP_CYCLES = {1: 8, 2: 11, 3: 14, 4: 17, 5: 21, 6: 24}
# what the dense conv and generated code re-read from flash per pixel when their data stay there: all
# but a little of the 16 KB XIP cache, since they read nothing else there (kernels/sparse.c's
# data-driven conv, which does, keeps to half of it); see staging.py
XIP_BLOCK_BYTES = 15 * 1024

Word = int | str      # a stream word: a number, or a C address expression such as "(int32_t)(layer0_t + 6)"

# The requantization records a kernel's stream holds, one per output channel (kernels/pp_m0.h, which
# declares the same structs): PP_RQ_MUL_R0 reads the first with three LDMs, in this order; a zero
# round_half and negative_mask mean no right shift (r = 0). PP_RQ_TBL_R0 reads the second.
RQ_RECORD = Struct("pp_rq_record_t", fields(
    "int32_t", "multiplier", "left_shift", "negative_mask", "q14", "round_half", "right_shift", "output_offset",
    "act_min", "act_max"))
RQT_RECORD = Struct("pp_rqt_record_t", (("w", "uint32_t"), ("m", "uint32_t"), ("p", "int32_t"),
                                        ("thresholds", "*"), ("o_min", "int32_t")))

# The argument blocks the assembly loops read through r0 with literal offsets (kernels/dense.c,
# dense_dw.c, sparse.c fill them from the descriptor); a test holds each to its C struct and to the
# offsets the C comments give the assembly.
ARG_BLOCKS = (
    Struct("pp_dconv_args_t", (*fields("*", "src", "out", "stream"),
                               *fields("int32_t", "out_h", "out_w", "step_x", "step_y", "len", "out_skip"))),
    Struct("pp_dfc_args_t", (*fields("*", "in", "out", "stream", "records"),
                             *fields("int32_t", "record_step", "in_size", "out_size"))),
    Struct("pp_ddw_args_t", (*fields("*", "win", "out", "stream"),
                             *fields("int32_t", "out_h", "out_w", "step_x", "step_y"))),
    Struct("pp_sfc_args_t", (*fields("*", "in", "out", "rows", "records"),
                             *fields("int32_t", "record_step", "out_size"))),
)


def accumulator_bound(layer: Weighted, rq) -> int:
    """Largest |accumulator| (bias + sum of w * (x - input zero point)) any int8 input can produce."""
    w = np.abs(_channel_weights(layer)).sum(axis=1)
    x = max(abs(-128 + rq.input_offset), abs(127 + rq.input_offset))
    return int((np.abs(layer.bias.astype(np.int64)) + x * w).max(initial=0))


@dataclass(frozen=True)
class Requantizer:
    """How a dense or generated kernel requantizes a layer: PP_RQ_MUL_R0 records, or threshold tables
    (rqtable.py) with PP_RQ_TBL_R0 records pointing into one table array."""

    kind: int
    records: list[list[Word]]          # one per channel (one in all for a per-tensor FC layer)
    table_name: str = ""
    tables: np.ndarray | None = None   # uint32, all channels' tables back to back
    rq_tables: tuple = ()

    def bias(self, folded: np.ndarray) -> np.ndarray:
        """The bias the kernel starts from: with tables, counted from each table's origin xs."""
        if self.kind != RQ_KIND_TBL:
            return folded
        xs = np.array([t.xs for t in self.rq_tables], np.int64)
        # the sum acc - xs fits int32 (|acc| < 2^30, |xs| <= 2^30 + 1); its start may wrap, like any
        # partial sum of the kernel
        return (folded - np.broadcast_to(xs, folded.shape) + 2**31) % 2**32 - 2**31


def requantizer(name: str, layer: Weighted, rq, channels: int,
                tables: bool = True) -> Requantizer:
    """Threshold tables where they exist for every channel and fit TABLE_MAX_BYTES, else arithmetic.
    ``tables`` = False for a layer whose data stay in flash: table lookups land anywhere in the table,
    and a miss in the XIP cache costs more than the arithmetic saves."""
    m = np.broadcast_to(np.asarray(rq.multiplier, np.int64), (len(layer.bias),))[:channels]
    shift = np.broadcast_to(np.asarray(rq.shift, np.int64), (len(layer.bias),))[:channels]
    lo, hi = layer.activation.min, layer.activation.max
    bound = accumulator_bound(layer, rq)
    built = [rqtable.build(int(m[c]), int(shift[c]), rq.output_offset, lo, hi, bound)
             for c in range(channels)] if tables else [None]
    if all(t is not None for t in built) and 4 * sum(t.thresholds.size for t in built) <= rqtable.TABLE_MAX_BYTES:
        records, at = [], 0
        for t in built:
            records.append(RQT_RECORD.words({"w": t.w, "m": t.m, "p": t.p, "thresholds": f"(int32_t)({name}_t + {at})",
                                             "o_min": t.o_min}))
            at += t.thresholds.size
        return Requantizer(RQ_KIND_TBL, records, f"{name}_t", np.concatenate([t.thresholds for t in built]),
                           tuple(built))
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    records = [RQ_RECORD.words({
        "multiplier": int(m[c]), "left_shift": int(left[c]), "negative_mask": -1 if right[c] else 0, "q14": 1 << 14,
        "round_half": (1 << int(right[c] - 1)) if right[c] else 0, "right_shift": int(right[c]),
        "output_offset": rq.output_offset, "act_min": lo, "act_max": hi}) for c in range(channels)]
    return Requantizer(RQ_KIND_MUL, records)


def conv_groups(channels: int, largest: int = CONV_GROUP_MAX) -> list[int]:
    """Channel counts of the dense convolution's passes (at most ``largest`` each): fewest inner-loop
    cycles, then fewest passes."""
    best: list[tuple[int, int, list[int]]] = [(0, 0, [])]
    for n in range(1, channels + 1):
        best.append(min((best[n - k][0] + _CONV_GROUP_CYCLES[k], best[n - k][1] + 1, best[n - k][2] + [k])
                        for k in range(1, min(n, largest) + 1)))
    return sorted(best[channels][2], reverse=True)


def dense_conv_stream(layer: Conv2D, inp: TensorInfo, rq, rqz: Requantizer, staged: bool = True) -> list[Word]:
    """The record kind, then blocks of channel groups, each [its channel count, per group of K channels:
    K, K folded biases, per window row the weights as int32 in loop order (byte within the row,
    channel) and the bytes to the next row (0 after the last), K requantization records; a 0], then a
    final 0. The kernel runs one block over every pixel before the next (kernels/dense.c). A ``staged``
    stream (in SRAM) is one block; one left in flash is cut into blocks of at most XIP_BLOCK_BYTES, so
    that a block stays in the XIP cache from one pixel to the next, with groups small enough to fit."""
    o, kh = layer.weights.shape[:2]
    w = layer.weights.reshape(o, kh, -1).astype(np.int64)
    row = input_layout(layer, inp, "dense").row_bytes
    bias = rqz.bias(folded_bias(layer, rq))

    def group_bytes(k: int) -> int:  # K, biases, weights and row steps, records
        return 4 * (1 + k + kh * (w.shape[2] * k + 1) + k * len(rqz.records[0]))

    largest = CONV_GROUP_MAX if staged else max([1] + [k for k in range(1, CONV_GROUP_MAX + 1)
                                                       if group_bytes(k) + 8 <= XIP_BLOCK_BYTES])
    blocks: list[list[int]] = [[]]
    for k in conv_groups(o, largest):
        if not staged and blocks[-1] and 8 + sum(map(group_bytes, blocks[-1] + [k])) > XIP_BLOCK_BYTES:
            blocks.append([])
        blocks[-1].append(k)
    stream: list[Word] = [rqz.kind]
    start = 0
    for block in blocks:
        stream.append(sum(block))
        for k in block:
            g = slice(start, start + k)
            stream += [k, *bias[g].tolist()]
            for ky in range(kh):
                stream += w[g, ky].T.ravel().tolist()
                stream.append(row if ky < kh - 1 else 0)
            for c in range(start, start + k):
                stream += rqz.records[c]
            start += k
        stream.append(0)
    return [*stream, 0]


# The dense depthwise convolution (kernels/dense_dw.c) takes the output channels of a pixel in groups
# of K <= 6 (accumulators r8-r12, lr). "Separate" groups (depth multiplier 1) multiply K neighbouring
# input bytes by one weight each; "shared" groups (multiplier > 1) multiply one input byte by the
# weights of K output channels. Cycles per window tap of each (loads, MULS + ADD per channel, the
# tap's step and loop branch), and per group (dispatch, biases, requantization set-up): the groups
# are chosen to minimize them.
DW_SEPARATE, DW_SHARED = 0, 6   # a group's code in the stream: K, or 6 + K (DW_CODE_* in dense_dw.c)
_DW_TAP_CYCLES = {DW_SEPARATE: {1: 10, 2: 15, 3: 20, 4: 25, 5: 31, 6: 36},
                  DW_SHARED: {1: 10, 2: 13, 3: 16, 4: 19, 5: 23, 6: 26}}
_DW_GROUP_CYCLES = 25


def depthwise_groups(layer: DepthwiseConv2D, inp: TensorInfo) -> list[tuple[int, int, int]]:
    """(mode, first output channel, K) of each group of one pixel, in output channel order: separate
    groups over the channels for a depth multiplier of 1, else shared groups within each input
    channel's multiplier outputs."""
    _, kh, kw, o = layer.weights.shape
    c = inp.shape[2]
    dm = o // c
    mode, span = (DW_SEPARATE, c) if dm == 1 else (DW_SHARED, dm)
    cost = _DW_TAP_CYCLES[mode]
    best: list[tuple[int, int, list[int]]] = [(0, 0, [])]
    for n in range(1, span + 1):
        best.append(min((best[n - k][0] + kh * kw * cost[k] + _DW_GROUP_CYCLES, best[n - k][1] + 1,
                         best[n - k][2] + [k]) for k in range(1, min(n, CONV_GROUP_MAX) + 1)))
    sizes = sorted(best[span][2], reverse=True)
    groups = []
    for base in range(0, o, span):  # one block of sizes (dm = 1: the only block)
        start = base
        for k in sizes:
            groups.append((mode, start, k))
            start += k
    return groups


def dense_depthwise_stream(layer: DepthwiseConv2D, inp: TensorInfo, rq, rqz: Requantizer) -> list[Word]:
    """The record kind, then per group of K output channels: its code (K separate, 6 + K shared), K
    folded biases (the input is read with its sign bit flipped), the window taps from the last to the
    first, each as K weights (int32) and the step to the next tap's bytes, and K requantization
    records; a 0 ends the list. The kernel reads the padded input (row = padded width x channels)
    from the group's last tap backwards: every step but a group's last is negative, which is how
    the loop knows the group's last tap (the addition carries); the last step moves to the next
    group's last tap (0 after the pixel's last group)."""
    _, kh, kw, o = layer.weights.shape
    c = inp.shape[2]
    dm = o // c
    row = input_layout(layer, inp, "dense").row_bytes
    offsets = [ky * row + kx * c for ky in range(kh) for kx in range(kw)]   # increasing
    w = layer.weights[0].reshape(kh * kw, o).astype(np.int64)
    bias = rqz.bias(folded_bias(layer, rq, -128))
    groups = depthwise_groups(layer, inp)
    stream: list[Word] = [rqz.kind]
    for g, (mode, start, k) in enumerate(groups):
        chans = slice(start, start + k)
        byte = start if mode == DW_SEPARATE else start // dm   # input channel byte of the group
        stream += [mode + k, *bias[chans].tolist()]
        for t in reversed(range(len(offsets))):
            stream += w[t, chans].tolist()
            if t > 0:
                stream.append(offsets[t - 1] - offsets[t])
            elif g + 1 < len(groups):
                nxt_mode, nxt_start, _ = groups[g + 1]
                nxt = nxt_start if nxt_mode == DW_SEPARATE else nxt_start // dm
                stream.append(nxt - byte + offsets[-1])
            else:
                stream.append(0)
        for ch in range(start, start + k):
            stream += rqz.records[ch]
    return [*stream, 0]


def fc_groups(rows: int) -> list[int]:
    """Rows per pass of the dense FC kernel: 8 while more than 4 are left, then 4 (a group is padded
    with zero rows when fewer are left)."""
    groups = []
    while rows > 0:
        groups.append(FC_ROWS if rows > 4 else 4)
        rows -= groups[-1]
    return groups


def dense_fc_stream(layer: FullyConnected, rq, rqz: Requantizer) -> list[Word]:
    """The record kind, the requantization records (one per row, or one for a per-tensor layer), then
    per group of 8 (or, for the last at most 4, 4) rows: the folded biases and for every input the
    group's weights as bytes (two words, or one). The input is read with its sign bit flipped."""
    o, n = layer.weights.shape
    groups = fc_groups(o)
    w = np.zeros((sum(groups), n), np.int8)
    w[:o] = layer.weights
    bias = np.zeros(sum(groups), np.int64)
    bias[:o] = rqz.bias(folded_bias(layer, rq, -128))
    stream: list[Word] = [rqz.kind]
    for r in rqz.records:
        stream += r
    start = 0
    for k in groups:
        stream += bias[start:start + k].tolist()
        stream += np.ascontiguousarray(w[start:start + k].T).view("<i4").ravel().tolist()
        start += k
    return stream


def sparse_fc_stream(layer: FullyConnected, rq, rqz: Requantizer) -> list[Word]:
    """The record kind, the requantization records, then per row: its count of nonzeros, its bias
    (folded for the sign-flipped input) and input index << 8 | value for each nonzero."""
    stream: list[Word] = [rqz.kind]
    for r in rqz.records:
        stream += r
    bias = rqz.bias(folded_bias(layer, rq, -128))
    for row, b in zip(layer.weights, bias, strict=True):
        nz = np.flatnonzero(row)
        stream += [len(nz), int(b), *((nz.astype(np.int64) << 8) | (row[nz].astype(np.int64) & 0xFF)).tolist()]
    return stream


def add_tables(rq: AddRequant, lo: int, hi: int) -> tuple[np.ndarray, rqtable.RqTable | None]:
    """The tables of the fast ADD (kernels/add.c, pp_add_dense). Each input is an int8, so TFLM's first
    step for it (offset, << 20, a rounding multiply: ``AddRequant.scaled_input``) takes only 256
    values: terms[k][u] is that value for the input byte u (read as uint8, so the kernel indexes with
    LDRB). What is left per element is the second rounding multiply of the sum, a non-decreasing step
    function of it, which a threshold table (rqtable.py) answers; its origin xs is folded into
    terms[0], so terms[0][u] + terms[1][v] arrives as sum - xs. The table is checked here against
    ``AddRequant.output`` on all 65,536 operand pairs; without one (``None``: no table fits, or the
    check fails) the kernel rounds the sum with TFLM's arithmetic and terms[0] is not shifted."""
    x = np.arange(256, dtype=np.uint8).view(np.int8)
    terms = np.stack([rq.scaled_input(k, x) for k in (0, 1)])
    low, high = int(terms[0].min() + terms[1].min()), int(terms[0].max() + terms[1].max())
    table = rqtable.build(rq.output_multiplier, rq.output_shift, rq.output_offset, lo, hi, max(-low, high))
    if table is not None:
        total = terms[0][:, None] + terms[1][None, :]
        if not np.array_equal(rqtable.apply(table, total), rq.output(total, lo, hi)):
            table = None  # pragma: no cover - rqtable is exact by construction; this keeps it honest
    if table is not None:
        terms[0] -= table.xs
    if np.abs(terms).max() >= 2**31 or (table is not None and high - table.xs >= 2**31):
        raise CodegenError("ADD: a scaled input does not fit int32")  # pragma: no cover - |term| < 2^28
    return terms, table


GENERATED_CODE_MAX = 256 * 1024  # bytes of straight-line code one sparse convolution may become


def generated_conv(layer: Layer, impl: str) -> bool:
    """Whether a sparse convolution becomes straight-line code (sparsegen.py; else the data-driven
    kernel of kernels/sparse.c runs)."""
    return (impl == "sparse" and layer.op == "CONV_2D"
            and sparsegen.code_bytes_estimate(layer) <= GENERATED_CODE_MAX)


def scratch_bytes(layer: Layer, inp: TensorInfo, impl: str) -> int:
    """Arena space a kernel needs besides its input and output: the padded input copy, and for the
    dense convolution two gathered windows (im2col); CMSIS-NN's convolution keeps two int16 im2col
    columns (kernels/cmsis_nn.c)."""
    op = layer.op
    if impl == "cmsisnn" and op == "CONV_2D":
        if layer.weights.shape[1:3] == (1, 1) and tuple(layer.stride) == (1, 1):
            return 0  # the 1x1 path multiplies the input in place
        return align4(2 * 2 * layer.weights[0].size)
    if op in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return input_layout(layer, inp, impl).scratch_bytes  # the padded (maybe sign-flipped) input
    if impl in ("dense", "sparse") and op == "FULLY_CONNECTED":
        return align4(inp.size)  # the input with its sign bits flipped
    return 0


def record_channels(layer: Weighted) -> int:
    """How many requantization records a layer's kernels read: one per output channel, or one in all
    for a fully connected layer quantized per tensor."""
    per_tensor = layer.op == "FULLY_CONNECTED" and len(layer.weight_scales) == 1
    return 1 if per_tensor else len(layer.bias)


def dense_stream(layer: Weighted, inp: TensorInfo, rq, rqz: Requantizer, staged: bool = True) -> list[Word]:
    """The stream the dense kernel of the layer's op reads (``staged``: see ``dense_conv_stream``)."""
    if layer.op == "CONV_2D":
        return dense_conv_stream(layer, inp, rq, rqz, staged=staged)
    if layer.op == "DEPTHWISE_CONV_2D":
        return dense_depthwise_stream(layer, inp, rq, rqz)
    return dense_fc_stream(layer, rq, rqz)
