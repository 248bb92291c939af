"""IR -> C: weights as const arrays, one const descriptor per layer, a statically planned arena, and
``pp_model_run`` calling the kernels of the chosen set with a marker after every layer. Layers run in
the graph's order, each reading the buffers of the tensors it names (``Graph.reads``).

Only data and glue are generated; the kernels are hand-written C in ``kernels/``. Descriptors are C99
designated initializers (``.k_h = 5``) of the structs in ``kernels/pp_kernels.h``, whose fields
``DESCRIPTORS`` lists; the generated file asserts the struct sizes, so a header edit that codegen does
not know about stops the build instead of shifting values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..fixedpoint import logistic_input_params, softmax_input_params
from ..ir import (
    WEIGHTED,
    Add,
    AddRequant,
    Conv2D,
    DepthwiseConv2D,
    Dequantize,
    FullyConnected,
    Graph,
    Layer,
    Logistic,
    Mean,
    Pad,
    Pool2D,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
    add_requantization,
    mean_multiplier,
    output_size,
    requantization,
    requantize_multiplier,
)
from . import costmodel, rqtable, sparsegen

# tflm-ref and cmsis-nn are the stock baselines (TFLM reference kernels; CMSIS-NN's pure-C M0+ path);
# dense, sparse and auto are ours; tflm-skip is the paper's "adapted TFLM" (the tflm-ref loops skipping
# the multiply of a zero weight), which only the paper-exact run profiles by default
KERNEL_SETS = ("tflm-ref", "cmsis-nn", "dense", "sparse", "auto", "tflm-skip")
OUR_SETS = ("dense", "sparse", "auto")
ADAPTED_KERNELS = "tflm-skip"

# The descriptor structs of kernels/pp_kernels.h: every field in declaration order, with its C type
# ("*": a pointer). ``c_struct`` fills exactly these; a test checks them against the header.
DESCRIPTORS: dict[str, tuple[tuple[str, str], ...]] = {
    "pp_conv_t": (
        *((f, "int16_t") for f in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h",
                                   "stride_w", "pad_h", "pad_w", "depth_multiplier")),
        *((f, "int32_t") for f in ("input_offset", "output_offset", "act_min", "act_max")),
        ("weights", "*"), ("bias", "*"), ("multiplier", "*"), ("shift", "*"), ("nz_count", "*"), ("nz_packed", "*"),
        ("stream", "*"),
    ),
    "pp_fc_t": (
        *((f, "int16_t") for f in ("in_size", "out_size", "per_channel")),
        *((f, "int32_t") for f in ("input_offset", "output_offset", "act_min", "act_max")),
        ("weights", "*"), ("bias", "*"), ("multiplier", "*"), ("shift", "*"), ("stream", "*"),
    ),
    "pp_pool_t": (
        *((f, "int16_t") for f in ("in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w",
                                   "pad_h", "pad_w")),
        *((f, "int32_t") for f in ("act_min", "act_max")),
    ),
    "pp_add_t": tuple((f, "int32_t") for f in (
        "size", "left_shift", "input1_offset", "input1_multiplier", "input1_shift", "input2_offset",
        "input2_multiplier", "input2_shift", "output_offset", "output_multiplier", "output_shift", "act_min",
        "act_max")),
    "pp_add_tab_t": (
        ("size", "int32_t"), ("w", "uint32_t"), ("m", "uint32_t"), ("p", "int32_t"), ("o_min", "int32_t"),
        *((f, "int32_t") for f in ("output_offset", "output_multiplier", "output_shift", "act_min", "act_max")),
        ("terms1", "*"), ("terms2", "*"), ("thresholds", "*"),
    ),
    "pp_softmax_t": tuple((f, "int32_t") for f in ("rows", "depth", "input_multiplier", "input_left_shift",
                                                   "diff_min")),
    "pp_logistic_t": tuple((f, "int32_t") for f in ("size", "input_zero_point", "input_range_radius",
                                                    "input_multiplier", "input_shift")),
    "pp_mean_t": (
        *((f, "int16_t") for f in ("in_h", "in_w", "channels")),
        *((f, "int32_t") for f in ("input_zero_point", "output_zero_point", "multiplier", "shift")),
    ),
    "pp_pad_t": (
        *((f, "int16_t") for f in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "pad_top", "pad_left",
                                   "pad_front")),
        ("pad_value", "int32_t"),
    ),
    "pp_quant_t": (
        *((f, "int32_t") for f in ("size", "input_zero_point", "output_zero_point", "multiplier", "shift")),
        ("scale", "float"),
    ),
    "pp_conv_f32_t": (
        *((f, "int16_t") for f in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h",
                                   "stride_w", "pad_h", "pad_w", "depth_multiplier")),
        ("act_min", "float"), ("act_max", "float"), ("weights", "*"), ("bias", "*"),
    ),
    "pp_fc_f32_t": (
        ("in_size", "int16_t"), ("out_size", "int16_t"), ("act_min", "float"), ("act_max", "float"),
        ("weights", "*"), ("bias", "*"),
    ),
    "pp_pool_f32_t": (
        *((f, "int16_t") for f in ("in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w",
                                   "pad_h", "pad_w")),
        ("act_min", "float"), ("act_max", "float"),
    ),
    "pp_softmax_f32_t": (("rows", "int16_t"), ("depth", "int16_t"), ("beta", "float")),
}
_C_SIZE = {"int16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4, "*": 4}  # the RP2040's ILP32 ABI: size = alignment

# ops with one stock kernel that every kernel set shares (kernels/add.c, kernels/stock_ops.c); ADD is
# the exception: the baselines (tflm-ref, cmsis-nn, tflm-skip) keep the stock kernel, ours (OUR_SETS)
# run the table-driven pp_add_dense (add_tables)
STOCK_OPS = (Add, Softmax, Logistic, Mean, Pad, Quantize, Dequantize)
# the descriptors a model.c of each graph dtype uses (and asserts the sizes of): an int8 model.c is
# the same text as before float32 graphs existed
DTYPE_DESCRIPTORS = {"int8": tuple(t for t in DESCRIPTORS if not t.endswith("_f32_t")),
                     "float32": tuple(t for t in DESCRIPTORS if t.endswith("_f32_t"))}
# float32 graphs run on TFLM's float reference kernels, stock or zero-skipping (kernels/tflm_float.c)
FLOAT_KERNEL_SETS = ("tflm-ref", ADAPTED_KERNELS)


class CodegenError(ValueError):
    pass


@dataclass(frozen=True)
class GeneratedModel:
    model_c: str
    model_h: str
    arena_bytes: int
    kernels: tuple[str, ...]   # implementation each layer got: tflmref, tflmskip, cmsisnn, dense, sparse, stock,
                               # reshape
    staged: tuple[int, ...] = ()   # layers whose kernel data (or generated code) were copied to SRAM
    offsets: tuple[int | None, ...] = ()  # each layer output's byte offset in pp_arena (None: the model output)


def c_float(value: float) -> str:
    """A float32 value as an exact C literal: hexadecimal, so no decimal rounding can creep in."""
    v = float(np.float32(value))
    if not math.isfinite(v):
        raise CodegenError(f"cannot write {v} as a C constant")
    if v == 0:
        return "-0.0f" if math.copysign(1.0, v) < 0 else "0.0f"
    mantissa, exponent = v.hex().split("p")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}p{exponent}f"


def c_array(ctype: str, name: str, values: np.ndarray | list, per_line: int = 24, sram: bool = False,
            used: bool = False) -> str:
    """A const array, in flash with the flash layout unless ``sram``: then in a .data section, which the
    start-up code copies to SRAM at boot (see ``staging_plan``). A list may hold C expressions (str);
    float values become exact float literals (``c_float``). ``used``: kept although only assembly
    refers to it."""
    if isinstance(values, list):
        flat = [v if isinstance(v, str) else str(int(v)) for v in values]
    elif np.asarray(values).dtype.kind == "f":
        flat = [c_float(v) for v in np.asarray(values).ravel()]
        per_line = min(per_line, 8)
    else:
        flat = [str(int(v)) for v in np.asarray(values).ravel()]
    if not flat:
        flat = ["0"]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    where = (f', section(".data.{name}")' if sram else "") + (", used" if used else "")
    return f"static const {ctype} {name}[{len(flat)}] __attribute__((aligned(4){where})) = {{\n    {body}\n}};\n"


def descriptor_size(ctype: str) -> int:
    """sizeof(``ctype``) on the RP2040, from ``DESCRIPTORS`` (each field aligned to its size)."""
    end = align = 0
    for _, t in DESCRIPTORS[ctype]:
        size = _C_SIZE[t]
        end = -(-end // size) * size + size
        align = max(align, size)
    return -(-end // align) * align


def c_struct(ctype: str, name: str, values: dict[str, int | str]) -> str:
    """A const descriptor as a designated initializer, one named field a line, in the header's order."""
    declared = [f for f, _ in DESCRIPTORS[ctype]]
    if list(values) != declared:
        raise CodegenError(f"{name}: {ctype} fields are {declared}, got {list(values)}")
    body = "".join(f"    .{field} = {value},\n" for field, value in values.items())
    return f"static const {ctype} {name} = {{\n{body}}};\n"


def _align4(n: int) -> int:
    return (n + 3) & ~3


def plan_arena(graph: Graph) -> tuple[list[int | None], int]:
    """Byte offsets of every layer output in one arena (None: the model output buffer; reshapes alias
    their input), and the arena's size. A tensor's memory is reused only after its last reader ran.

    A chain keeps its two-ended plan (``_plan_chain``); any other graph gets the liveness plan
    (``_plan_dag``), which for a residual block keeps the skip tensor alive across the branch."""
    return _plan_chain(graph) if graph.is_chain else _plan_dag(graph)


def _plan_chain(graph: Graph) -> tuple[list[int | None], int]:
    """Consecutive tensors sit at opposite ends, so the arena needs only the largest input+output
    pair: what TFLM's greedy planner finds for a chain (and what every published cycle count ran)."""
    n = len(graph.layers)
    sizes = [layer.output.nbytes for layer in graph.layers]
    # a reshape shares its input's buffer, so it does not start a new tensor
    owner = list(range(n))
    for i, layer in enumerate(graph.layers):
        if isinstance(layer, Reshape) and i > 0:
            owner[i] = owner[i - 1]
    intermediates = [i for i in range(n - 1) if owner[i] == i and not _feeds_output_only(graph, i, owner)]
    arena = 0
    for a, b in zip(intermediates, intermediates[1:], strict=False):
        arena = max(arena, _align4(sizes[a]) + _align4(sizes[b]))
    for a in intermediates:
        arena = max(arena, _align4(sizes[a]))
    offsets: list[int | None] = [None] * n
    for k, i in enumerate(intermediates):
        offsets[i] = 0 if k % 2 == 0 else arena - _align4(sizes[i])
    for i in range(n):
        if owner[i] != i:
            offsets[i] = offsets[owner[i]]
    return offsets, arena


def _feeds_output_only(graph: Graph, i: int, owner: list[int]) -> bool:
    """True when layer i's output is the model output (possibly through trailing reshapes)."""
    return all(owner[j] == i for j in range(i, len(graph.layers)))


def _plan_dag(graph: Graph) -> tuple[list[int | None], int]:
    """Liveness plan for any DAG. Each buffer (a layer output; a reshape of a layer output is a view of
    it) lives from the layer that writes it to the last layer that reads it or any view of it, both
    included: a kernel never writes over one of its own inputs. Buffers are placed largest first,
    each at the lowest offset where it overlaps no placed buffer alive at the same time (first fit by
    decreasing size, the strategy of TFLM's greedy planner). The buffer holding the model output is
    the caller's output buffer and takes no arena space."""
    n = len(graph.layers)
    last = graph.last_reads()
    owner = list(range(n))
    for i, layer in enumerate(graph.layers):
        t = graph.reads[i][0]
        if isinstance(layer, Reshape) and t > 0:  # a view of the buffer of the tensor it reads
            owner[i] = owner[t - 1]
    death = {b: b for b in set(owner)}
    for i in range(n):
        death[owner[i]] = max(death[owner[i]], last[i + 1])
    output_owner = owner[n - 1] if n else None
    buffers = sorted((b for b in death if b != output_owner),
                     key=lambda b: (-_align4(graph.layers[b].output.nbytes), b))
    placed: list[tuple[int, int, int, int]] = []  # (offset, size, birth, death)
    where: dict[int, int] = {}
    for b in buffers:
        size = _align4(graph.layers[b].output.nbytes)
        offset = 0
        for o, sz, born, dies in sorted(placed):
            if born <= death[b] and b <= dies:  # alive at the same time
                if offset + size <= o:
                    break
                offset = max(offset, o + sz)
        where[b] = offset
        placed.append((offset, size, b, death[b]))
    arena = max((o + sz for o, sz, _, _ in placed), default=0)
    return [where.get(owner[i]) for i in range(n)], arena


# --- per-layer kernel choice -----------------------------------------------------------------

def choose_kernel(layer: Layer, inp: TensorInfo, kernels: str) -> str:
    """The C implementation ('tflmref', 'tflmskip', 'cmsisnn', 'dense', 'sparse' or 'stock') one layer
    gets under a kernel set. Ops a set has no kernel for fall back to the next simpler one, so every set
    runs every int8 model (cmsis-nn has a kernel for every weighted and pooling op; tflm-skip's pools are
    tflm-ref's: they have no weights); the ops of ``STOCK_OPS`` have one kernel that every set shares,
    except ADD, which runs 'dense' (the table-driven kernel) in ``OUR_SETS``.
    A layer of a float32 graph runs TFLM's float kernels, which only ``FLOAT_KERNEL_SETS`` have."""
    if kernels not in KERNEL_SETS:
        raise CodegenError(f"unknown kernel set {kernels!r}; available: {', '.join(KERNEL_SETS)}")
    if inp.is_float and layer.output.is_float:  # a float32 graph (QUANTIZE/DEQUANTIZE convert, below)
        if kernels not in FLOAT_KERNEL_SETS:
            raise CodegenError(f"kernel set {kernels!r} has no float32 kernels; a float32 model runs on "
                               f"{' or '.join(FLOAT_KERNEL_SETS)}")
        return "tflmskip" if kernels == ADAPTED_KERNELS and isinstance(layer, WEIGHTED) else "tflmref"
    if isinstance(layer, Add) and kernels in OUR_SETS:
        return "dense"
    if isinstance(layer, STOCK_OPS):  # no weights, nothing to prune
        return "stock"
    if kernels == ADAPTED_KERNELS:
        return "tflmskip" if isinstance(layer, WEIGHTED) else "tflmref"
    if kernels == "cmsis-nn":
        return "tflmref" if isinstance(layer, Reshape) else "cmsisnn"
    if kernels == "tflm-ref" or isinstance(layer, Reshape):
        return "tflmref"
    if isinstance(layer, Pool2D):
        if layer.kind == "AVERAGE":
            return "dense"  # any window and padding (kernels/dense_dw.c)
        valid = layer.padding == "VALID" or all(
            output_size(n, k, s, "SAME")[1] == 0 and (n - k) % s == 0
            for n, k, s in zip(inp.shape[:2], layer.size, layer.stride, strict=True))
        return "dense" if valid else "tflmref"
    if isinstance(layer, WEIGHTED) and accumulator_bound(layer, requantization(layer, inp)) >= 2**30:
        return "tflmref"  # the fast requantization (kernels/pp_m0.h) needs |accumulator| < 2^30
    if isinstance(layer, DepthwiseConv2D):
        # one fast kernel for dense, sparse and auto: a depthwise layer has few weights per output (9 for
        # 3x3), so skipping zeros saves little next to the per-output requantization
        taps = layer.weights.shape[1] * layer.weights.shape[2]
        if 4 * (layer.weights.size + taps * len(depthwise_groups(layer, inp))) > DENSE_CONV_WEIGHTS_MAX:
            return "tflmref"  # the int32 weight stream would crowd the 2 MB of flash
        return "dense"
    if isinstance(layer, FullyConnected) and inp.size >= 2**24:
        return "dense"  # input indices would not fit the 24 bits of a sparse entry
    if kernels == "dense":
        impl = "dense"
    elif kernels == "sparse":
        impl = "sparse"
    else:
        impl = "sparse" if costmodel.prefers_sparse(layer) else "dense"
    if impl == "dense" and isinstance(layer, Conv2D) and 4 * layer.weights.size > DENSE_CONV_WEIGHTS_MAX:
        return "tflmref"  # the dense convolution's int32 weights would crowd the 2 MB of flash
    return impl


def kernel_sets(dtype: str) -> tuple[str, ...]:
    """The kernel sets that can run a graph of ``dtype`` (``Graph.dtype``)."""
    return FLOAT_KERNEL_SETS if dtype == "float32" else KERNEL_SETS


def kernel_plan(graph: Graph, kernels: str) -> list[str]:
    """The implementation of every layer under ``kernels``; a CodegenError when the set cannot run the graph."""
    return [choose_kernel(layer, inp, kernels) for _, layer, inp in graph.steps()]


def auto_choices(graph: Graph) -> list[tuple[str, ...]]:
    """What ``auto`` may run each layer as: the implementation the ``dense`` set gives it and the one
    the ``sparse`` set gives it (one entry when they agree). ``mcu.autotune`` measures between them."""
    return [tuple(dict.fromkeys((choose_kernel(layer, inp, "dense"), choose_kernel(layer, inp, "sparse"))))
            for _, layer, inp in graph.steps()]


def checked_plan(graph: Graph, kernels: str, plan: Sequence[str] | None) -> list[str]:
    """``plan`` (one implementation per layer, for the ``auto`` set only) after checking that every entry
    is one ``auto`` may choose; without a plan, the set's own choice (``kernel_plan``)."""
    if plan is None:
        return kernel_plan(graph, kernels)
    if kernels != "auto":
        raise CodegenError(f"only the auto kernel set takes a per-layer plan, not {kernels!r}")
    if len(plan) != len(graph.layers):
        raise CodegenError(f"the plan names {len(plan)} implementations for {len(graph.layers)} layers")
    for i, (impl, choices) in enumerate(zip(plan, auto_choices(graph), strict=True)):
        if impl not in choices:
            raise CodegenError(f"layer {i} ({graph.layers[i].op}) cannot run as {impl!r} under auto; "
                               f"it can run as {' or '.join(map(repr, choices))}")
    return list(plan)
# --- descriptors ---------------------------------------------------------------------------------

def _padded_row(layer: Conv2D, inp: TensorInfo) -> tuple[int, int]:
    """(bytes per row of the input the optimized kernels read, scratch bytes for the padded copy).
    Mirrors pp_padded_input() in kernels/pp_common.h."""
    kh, kw = layer.weights.shape[1:3]
    oh, ow = layer.output.shape[:2]
    hp, wp = (oh - 1) * layer.stride[0] + kh, (ow - 1) * layer.stride[1] + kw
    _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    c = inp.shape[2]
    if pad_h == 0 and pad_w == 0 and hp <= inp.shape[0] and wp <= inp.shape[1]:
        return inp.shape[1] * c, 0
    return wp * c, _align4(hp * wp * c)


def _sparse_offsets(layer: Conv2D, inp: TensorInfo) -> tuple[np.ndarray, np.ndarray]:
    """Input offset of every weight (relative to the window origin) and the weights, row-major per
    output channel; the sparse encoding keeps the nonzero entries of both."""
    o, kh, kw, c = layer.weights.shape
    row, _ = _padded_row(layer, inp)
    ky, kx, ic = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    offs = (ky * row + kx * c + ic).ravel()
    return np.broadcast_to(offs, (o, offs.size)), layer.weights.reshape(o, -1)


def _channel_weights(layer: Conv2D | DepthwiseConv2D | FullyConnected) -> np.ndarray:
    """The weights as int64 (output channels, weights of each): a depthwise layer's (1, KH, KW, O)
    holds output channel o in its last axis."""
    w = layer.weights.astype(np.int64)
    if isinstance(layer, DepthwiseConv2D):
        return w.reshape(-1, w.shape[-1]).T
    return w.reshape(w.shape[0], -1)


def _folded_bias(layer: Conv2D | DepthwiseConv2D | FullyConnected, rq, extra_offset: int = 0) -> np.ndarray:
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

Word = int | str      # a stream word: a number, or a C address expression such as "(int32_t)(layer0_t + 6)"


def accumulator_bound(layer: Conv2D | DepthwiseConv2D | FullyConnected, rq) -> int:
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


def requantizer(name: str, layer: Conv2D | DepthwiseConv2D | FullyConnected, rq, channels: int,
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
            records.append([t.w, t.m, t.p, f"(int32_t)({name}_t + {at})", t.o_min])
            at += t.thresholds.size
        return Requantizer(RQ_KIND_TBL, records, f"{name}_t", np.concatenate([t.thresholds for t in built]),
                           tuple(built))
    left, right = np.maximum(shift, 0), np.maximum(-shift, 0)
    records = [[int(m[c]), int(left[c]), -1 if right[c] else 0, 1 << 14, (1 << int(right[c] - 1)) if right[c] else 0,
                int(right[c]), rq.output_offset, lo, hi] for c in range(channels)]
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
    row, _ = _padded_row(layer, inp)
    bias = rqz.bias(_folded_bias(layer, rq))

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
    row = _depthwise_row(layer, inp)
    offsets = [ky * row + kx * c for ky in range(kh) for kx in range(kw)]   # increasing
    w = layer.weights[0].reshape(kh * kw, o).astype(np.int64)
    bias = rqz.bias(_folded_bias(layer, rq, -128))
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


def _depthwise_row(layer: DepthwiseConv2D, inp: TensorInfo) -> int:
    """Bytes per row of the padded, sign-flipped input copy the dense depthwise kernel reads: the
    padded width (exactly the columns the windows touch) times the channels. Mirrors
    pp_padded_flipped() in kernels/dense_dw.c."""
    kw = layer.weights.shape[2]
    return ((layer.output.shape[1] - 1) * layer.stride[1] + kw) * inp.shape[2]


def _depthwise_scratch(layer: DepthwiseConv2D, inp: TensorInfo) -> int:
    kh = layer.weights.shape[1]
    return _align4(((layer.output.shape[0] - 1) * layer.stride[0] + kh) * _depthwise_row(layer, inp))


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
    bias[:o] = rqz.bias(_folded_bias(layer, rq, -128))
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
    bias = rqz.bias(_folded_bias(layer, rq, -128))
    for row, b in zip(layer.weights, bias, strict=True):
        nz = np.flatnonzero(row)
        stream += [len(nz), int(b), *((nz.astype(np.int64) << 8) | (row[nz].astype(np.int64) & 0xFF)).tolist()]
    return stream


def _weight_arrays(name: str, layer: Conv2D | DepthwiseConv2D | FullyConnected, inp: TensorInfo, impl: str,
                   rq, mult: np.ndarray, shift: np.ndarray, sram: bool) -> tuple[str, dict[str, str]]:
    """C arrays in the format ``impl`` reads (the kernel's streamed data in SRAM when ``sram``);
    returns the code and the descriptor's pointer fields."""
    ptrs = {f: "0" for f in ("weights", "bias", "multiplier", "shift", "nz_count", "nz_packed", "stream")}
    if impl == "generated":  # the weights are in the generated code; the descriptor is geometry only
        return "", ptrs
    if impl == "dense" or (impl == "sparse" and isinstance(layer, FullyConnected)):
        # one stream, read in order by the assembly (kernels/dense.c, kernels/sparse.c)
        rqz = requantizer(name, layer, rq, len(mult), tables=sram)
        if impl == "sparse":
            stream = sparse_fc_stream(layer, rq, rqz)
        elif isinstance(layer, DepthwiseConv2D):
            stream = dense_depthwise_stream(layer, inp, rq, rqz)
        elif isinstance(layer, Conv2D):
            stream = dense_conv_stream(layer, inp, rq, rqz, staged=sram)
        else:
            stream = dense_fc_stream(layer, rq, rqz)
        tables = "" if rqz.tables is None else c_array("uint32_t", rqz.table_name, rqz.tables, sram=sram)
        return tables + c_array("int32_t", f"{name}_d", stream, sram=sram), {**ptrs, "stream": f"{name}_d"}
    ptrs.update(weights=f"{name}_w", bias=f"{name}_b", multiplier=f"{name}_m", shift=f"{name}_s")
    rescale = c_array("int32_t", f"{name}_m", mult) + c_array("int32_t", f"{name}_s", shift)
    if impl in ("tflmref", "tflmskip", "cmsisnn"):  # stock kernels: raw weights, raw bias
        return (c_array("int8_t", f"{name}_w", layer.weights) + c_array("int32_t", f"{name}_b", layer.bias)
                + rescale, ptrs)
    bias = c_array("int32_t", f"{name}_b", _folded_bias(layer, rq), sram=sram)
    offs, w = _sparse_offsets(layer, inp)
    nz = w != 0
    counts = c_array("uint16_t", f"{name}_n", nz.sum(axis=1), sram=sram)
    ptrs.update(nz_count=f"{name}_n", nz_packed=f"{name}_o")
    # the data-driven sparse convolution: one word per nonzero, offset << 8 | value (kernels/sparse.c)
    packed = (offs[nz].astype(np.int64) << 8) | (w[nz].astype(np.int64) & 0xFF)
    code = (c_array("int8_t", f"{name}_w", np.zeros(0)) + bias + counts
            + c_array("uint32_t", f"{name}_o", packed, sram=sram))
    return code + rescale, ptrs


def _conv_desc(name: str, layer: Conv2D | DepthwiseConv2D, inp: TensorInfo, impl: str,
               sram: bool = False) -> tuple[str, str]:
    rq = requantization(layer, inp)
    kh, kw = layer.weights.shape[1:3]
    _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    out = layer.output
    depth_mult = out.shape[2] // inp.shape[2] if isinstance(layer, DepthwiseConv2D) else 1
    data, ptrs = _weight_arrays(name, layer, inp, impl, rq, rq.multiplier, rq.shift, sram)
    desc = c_struct("pp_conv_t", name, {
        "in_h": inp.shape[0], "in_w": inp.shape[1], "in_c": inp.shape[2],
        "out_h": out.shape[0], "out_w": out.shape[1], "out_c": out.shape[2], "k_h": kh, "k_w": kw,
        "stride_h": layer.stride[0], "stride_w": layer.stride[1], "pad_h": pad_h, "pad_w": pad_w,
        "depth_multiplier": depth_mult, "input_offset": rq.input_offset, "output_offset": rq.output_offset,
        "act_min": layer.activation.min, "act_max": layer.activation.max, **ptrs})
    return data + desc, "pp_depthwise" if isinstance(layer, DepthwiseConv2D) else "pp_conv2d"


def _fc_desc(name: str, layer: FullyConnected, inp: TensorInfo, impl: str, sram: bool = False) -> tuple[str, str]:
    rq = requantization(layer, inp)
    per_channel = int(len(layer.weight_scales) > 1)
    mult = rq.multiplier if per_channel else rq.multiplier[:1]
    shift = rq.shift if per_channel else rq.shift[:1]
    data, ptrs = _weight_arrays(name, layer, inp, impl, rq, mult, shift, sram)
    del ptrs["nz_count"], ptrs["nz_packed"]
    desc = c_struct("pp_fc_t", name, {
        "in_size": inp.size, "out_size": layer.output.size, "per_channel": per_channel,
        "input_offset": rq.input_offset, "output_offset": layer.output.zero_point,
        "act_min": layer.activation.min, "act_max": layer.activation.max, **ptrs})
    return data + desc, "pp_fc"


def _pool_desc(name: str, layer: Pool2D, inp: TensorInfo, impl: str) -> tuple[str, str]:
    kh, kw = layer.size
    _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    out = layer.output
    desc = c_struct("pp_pool_t", name, {
        "in_h": inp.shape[0], "in_w": inp.shape[1], "channels": inp.shape[2], "out_h": out.shape[0],
        "out_w": out.shape[1], "k_h": kh, "k_w": kw, "stride_h": layer.stride[0], "stride_w": layer.stride[1],
        "pad_h": pad_h, "pad_w": pad_w, "act_min": layer.activation.min, "act_max": layer.activation.max})
    return desc, "pp_maxpool" if layer.kind == "MAX" else "pp_avgpool"


def _add_desc(name: str, layer: Add, inputs: tuple[TensorInfo, ...], impl: str) -> tuple[str, str]:
    rq = add_requantization(*inputs, layer.output)
    lo, hi = layer.activation.min, layer.activation.max
    if impl == "dense":
        terms, table = add_tables(rq, lo, hi)
        data = c_array("int32_t", f"{name}_a", terms[0]) + c_array("int32_t", f"{name}_b", terms[1])
        rqt = {"w": 0, "m": 0, "p": 0, "o_min": 0}
        if table is not None:
            data += c_array("uint32_t", f"{name}_t", table.thresholds)
            rqt = {"w": f"{table.w}u", "m": f"{table.m}u", "p": table.p, "o_min": table.o_min}
        desc = c_struct("pp_add_tab_t", name, {
            "size": layer.output.size, **rqt, "output_offset": rq.output_offset,
            "output_multiplier": rq.output_multiplier, "output_shift": rq.output_shift, "act_min": lo,
            "act_max": hi, "terms1": f"{name}_a", "terms2": f"{name}_b",
            "thresholds": "0" if table is None else f"{name}_t"})
        return data + desc, "pp_add"
    desc = c_struct("pp_add_t", name, {
        "size": layer.output.size, "left_shift": rq.left_shift,
        "input1_offset": rq.input_offsets[0], "input1_multiplier": rq.input_multipliers[0],
        "input1_shift": rq.input_shifts[0], "input2_offset": rq.input_offsets[1],
        "input2_multiplier": rq.input_multipliers[1], "input2_shift": rq.input_shifts[1],
        "output_offset": rq.output_offset, "output_multiplier": rq.output_multiplier,
        "output_shift": rq.output_shift, "act_min": lo, "act_max": hi})
    return desc, "pp_add"


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


def _as_hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A tensor of rank <= 3 as H x W x C, leading axes of size 1 added."""
    return (1,) * (3 - len(shape)) + tuple(shape)


def _stock_desc(name: str, layer: Layer, inp: TensorInfo) -> tuple[str, str]:
    """Descriptor and kernel name of a STOCK_OPS layer; every parameter is derived from the scales here,
    as TFLM derives it at Prepare time."""
    out = layer.output
    if isinstance(layer, Softmax):
        mult, shift, diff_min = softmax_input_params(layer.beta, inp.scale)
        return c_struct("pp_softmax_t", name, {
            "rows": inp.size // inp.shape[-1], "depth": inp.shape[-1], "input_multiplier": mult,
            "input_left_shift": shift, "diff_min": diff_min}), "pp_softmax"
    if isinstance(layer, Logistic):
        mult, shift, radius = logistic_input_params(inp.scale)
        return c_struct("pp_logistic_t", name, {
            "size": inp.size, "input_zero_point": inp.zero_point, "input_range_radius": radius,
            "input_multiplier": mult, "input_shift": shift}), "pp_logistic"
    if isinstance(layer, Mean):
        mult, shift = mean_multiplier(inp, out)
        return c_struct("pp_mean_t", name, {
            "in_h": inp.shape[0], "in_w": inp.shape[1], "channels": inp.shape[2],
            "input_zero_point": inp.zero_point, "output_zero_point": out.zero_point, "multiplier": mult,
            "shift": shift}), "pp_mean"
    if isinstance(layer, Pad):
        (ih, iw, ic), (oh, ow, oc) = _as_hwc(inp.shape), _as_hwc(out.shape)
        top, left, front = (before for before, _ in ((0, 0),) * (3 - len(layer.paddings)) + layer.paddings)
        return c_struct("pp_pad_t", name, {
            "in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "pad_top": top,
            "pad_left": left, "pad_front": front, "pad_value": out.zero_point}), "pp_pad"
    if isinstance(layer, Quantize | Dequantize):
        mult, shift = requantize_multiplier(inp, out) if not (inp.is_float or out.is_float) else (0, 0)
        scale = inp.scale if isinstance(layer, Dequantize) else out.scale
        fn = "pp_dequantize" if isinstance(layer, Dequantize) else "pp_quantize" if inp.is_float else "pp_requantize"
        return c_struct("pp_quant_t", name, {
            "size": inp.size, "input_zero_point": inp.zero_point, "output_zero_point": out.zero_point,
            "multiplier": mult, "shift": shift, "scale": c_float(scale)}), fn
    raise CodegenError(f"no stock kernel for {layer.op}")  # pragma: no cover - ADD has its own (_add_desc)


def _float_desc(name: str, layer: Layer, inp: TensorInfo, impl: str) -> tuple[str, str]:
    """A float32 layer's weights and descriptor (kernels/tflm_float.c): no requantization, float bounds."""
    act = {"act_min": c_float(layer.activation.min), "act_max": c_float(layer.activation.max)} \
        if not isinstance(layer, Softmax) else {}
    out = layer.output
    if isinstance(layer, Conv2D | DepthwiseConv2D):
        kh, kw = layer.weights.shape[1:3]
        _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
        _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
        depthwise = isinstance(layer, DepthwiseConv2D)
        data = c_array("float", f"{name}_w", layer.weights) + c_array("float", f"{name}_b", layer.bias)
        desc = c_struct("pp_conv_f32_t", name, {
            "in_h": inp.shape[0], "in_w": inp.shape[1], "in_c": inp.shape[2],
            "out_h": out.shape[0], "out_w": out.shape[1], "out_c": out.shape[2], "k_h": kh, "k_w": kw,
            "stride_h": layer.stride[0], "stride_w": layer.stride[1], "pad_h": pad_h, "pad_w": pad_w,
            "depth_multiplier": out.shape[2] // inp.shape[2] if depthwise else 1, **act,
            "weights": f"{name}_w", "bias": f"{name}_b"})
        return data + desc, "pp_depthwise_f32" if depthwise else "pp_conv2d_f32"
    if isinstance(layer, FullyConnected):
        data = c_array("float", f"{name}_w", layer.weights) + c_array("float", f"{name}_b", layer.bias)
        desc = c_struct("pp_fc_f32_t", name, {"in_size": inp.size, "out_size": out.size, **act,
                                              "weights": f"{name}_w", "bias": f"{name}_b"})
        return data + desc, "pp_fc_f32"
    if isinstance(layer, Pool2D):
        kh, kw = layer.size
        _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
        _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
        desc = c_struct("pp_pool_f32_t", name, {
            "in_h": inp.shape[0], "in_w": inp.shape[1], "channels": inp.shape[2], "out_h": out.shape[0],
            "out_w": out.shape[1], "k_h": kh, "k_w": kw, "stride_h": layer.stride[0], "stride_w": layer.stride[1],
            "pad_h": pad_h, "pad_w": pad_w, **act})
        return desc, "pp_maxpool_f32" if layer.kind == "MAX" else "pp_avgpool_f32"
    if isinstance(layer, Softmax):
        depth = out.shape[-1]
        desc = c_struct("pp_softmax_f32_t", name, {"rows": out.size // depth, "depth": depth,
                                                   "beta": c_float(layer.beta)})
        return desc, "pp_softmax_f32"
    raise CodegenError(f"no float32 C kernel for {layer.op}")  # pragma: no cover - validate admits no other


def _scratch_bytes(layer: Layer, inp: TensorInfo, impl: str) -> int:
    """Arena space a kernel needs besides its input and output: the padded input copy, and for the
    dense convolution two gathered windows (im2col); CMSIS-NN's convolution keeps two int16 im2col
    columns (kernels/cmsis_nn.c)."""
    if impl == "cmsisnn" and isinstance(layer, Conv2D):
        if layer.weights.shape[1:3] == (1, 1) and tuple(layer.stride) == (1, 1):
            return 0  # the 1x1 path multiplies the input in place
        return _align4(2 * 2 * layer.weights[0].size)
    if generated_conv(layer, impl):
        return _flipped_geometry(layer, inp)[1]
    if impl == "dense" and isinstance(layer, DepthwiseConv2D):
        return _depthwise_scratch(layer, inp)  # the padded input with its sign bits flipped
    if impl in ("dense", "sparse") and isinstance(layer, Conv2D):
        return _padded_row(layer, inp)[1]
    if impl in ("dense", "sparse") and isinstance(layer, FullyConnected):
        return _align4(inp.size)  # the input with its sign bits flipped
    return 0


def _c_string(line: str) -> str:
    """One assembly line as a C string literal with its newline."""
    return '"' + line.replace("\\", "\\\\").replace('"', '\\"') + '\\n"'


def _dims(t: TensorInfo) -> str:
    return "x".join(str(d) for d in t.shape)


def _preamble(graph: Graph, kernels: str, impls: list[str], tensors: int, scratch: int) -> str:
    """The comment that opens model.c: what the file is, its interface, memory plan and layers."""
    def quant(t: TensorInfo) -> str:
        if t.is_float:
            return f"float32 {_dims(t)} ({t.nbytes} bytes)"
        return f"int8 {_dims(t)} (scale {t.scale:.6g}, zero point {t.zero_point})"

    name = graph.name.replace("*/", "*_/")
    chain = graph.is_chain
    plan = (["layer outputs at opposite ends, and in the rest scratch for kernels that pre-pad their input",
             "or gather windows."] if chain else
            ["layer output kept from the layer that writes it to its last reader (then its bytes are reused),",
             "and in the rest scratch for kernels that pre-pad their input or gather windows."])
    lines = [f'Generated by powerprune from model "{name}" for the "{kernels}" kernel set: regenerate it',
             "rather than edit it. The kernels are hand-written C (pp_kernels.h says what each set does).", "",
             f"pp_model_run(in, out) reads {quant(graph.input)}",
             f"and writes {quant(graph.output)}.", "",
             "Weights and one const descriptor per layer follow (in flash with the default layout).",
             f"pp_arena ({tensors + scratch} bytes) holds the activations in its first {tensors} bytes, "
             + ("consecutive" if chain else "each"),
             *plan, ""]
    if chain:
        lines.append(f"{'layer':<6} {'op':<18} {'output':<10} kernel")
    else:
        lines += ["Tensors a layer reads: 0 is the input, t the output of layer t - 1.", "",
                  f"{'layer':<6} {'op':<18} {'reads':<8} {'output':<10} kernel"]
    for (i, layer, _), impl in zip(graph.steps(), impls, strict=True):
        kernel = "(a view of its input)" if isinstance(layer, Reshape) else impl
        reads = "" if chain else f"{','.join(map(str, graph.reads[i])):<8} "
        lines.append(f"{i:<6} {layer.op:<18} {reads}{_dims(layer.output):<10} {kernel}")
    return "/* " + "\n * ".join(lines).replace(" \n", "\n") + "\n */\n"


def layer_kernels(graph: Graph, kernels: str, plan: Sequence[str] | None = None) -> list[str]:
    """The implementation each layer gets under ``kernels`` (and ``plan``, see ``checked_plan``), as
    profiles report it: 'tflmref', 'tflmskip', 'cmsisnn', 'dense', 'sparse' or 'stock', and 'reshape'
    for a reshape (a view or a copy, no kernel)."""
    return _reported(graph, checked_plan(graph, kernels, plan))


def _reported(graph: Graph, impls: Sequence[str]) -> list[str]:
    return ["reshape" if isinstance(layer, Reshape) else impl for layer, impl in zip(graph.layers, impls, strict=True)]


# --- generated sparse convolutions (powerprune/mcu/sparsegen.py) --------------------------------------

GENERATED_CODE_MAX = 256 * 1024  # bytes of straight-line code one sparse convolution may become


def generated_conv(layer: Layer, impl: str) -> bool:
    """Whether a sparse convolution becomes straight-line code (else the data-driven kernel runs)."""
    return (impl == "sparse" and isinstance(layer, Conv2D)
            and sparsegen.code_bytes_estimate(layer) <= GENERATED_CODE_MAX)


def _flipped_geometry(layer: Conv2D, inp: TensorInfo) -> tuple[int, int]:
    """(bytes per row, scratch bytes) of the padded, sign-flipped input (kernels/sparse.c:
    pp_conv_flipped): each row starts its data on a word boundary and is a whole number of words."""
    kh, kw = layer.weights.shape[1:3]
    oh, ow = layer.output.shape[:2]
    hp, wp = (oh - 1) * layer.stride[0] + kh, (ow - 1) * layer.stride[1] + kw
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    c = inp.shape[2]
    skew = _align4(pad_w * c) - pad_w * c
    row = _align4(skew + wp * c)
    return row, hp * row


def _generated_conv(name: str, layer: Conv2D, inp: TensorInfo, sram: bool) -> tuple[str, str]:
    """The descriptor (geometry for pp_conv_flipped) and the assembly of a generated sparse convolution."""
    rq = requantization(layer, inp)
    desc, _ = _conv_desc(name, layer, inp, "generated")
    row, _ = _flipped_geometry(layer, inp)
    section = f".data.{name}_code" if sram else f".text.{name}_code"
    rqz = requantizer(name, layer, rq, layer.weights.shape[0], tables=sram)
    tables = list(rqz.rq_tables) if rqz.kind == RQ_KIND_TBL else None
    if tables is not None:
        desc = c_array("uint32_t", rqz.table_name, rqz.tables, sram=sram, used=True) + desc
    code = sparsegen.generate_conv(f"pp_sgen_{name}", layer, inp, row, rqz.bias(_folded_bias(layer, rq, -128)),
                                   section, accumulator_bound(layer, rq), tables, rqz.table_name,
                                   None if sram else XIP_BLOCK_BYTES)
    return desc, code


# --- SRAM staging ------------------------------------------------------------------------------

# The flash layout executes from flash through the 16 KB XIP cache, where a miss costs ~40 cycles per
# 8-byte line (~5 cycles per byte). The dense and sparse kernels' data can instead be copied to SRAM
# once at boot (a .data section). A convolution re-reads its data for every output pixel; the kernels
# therefore run a layer left in flash in blocks of output channels under the cache's size
# (XIP_BLOCK_BYTES), each block over all pixels, so its data pass through the cache about once per
# inference, as a fully connected layer's weights do. What staging saves is then that one pass, plus
# the threshold-table requantization, which only staged layers use (its lookups land anywhere in the
# table, and from flash a miss costs more than the arithmetic saves), plus for generated code the
# larger channel groups of a layer that need not fit the cache. Each layer's data is staged if it fits
# the budget, most cycles saved per byte first. The stock kernels (tflm-ref, cmsis-nn) keep their
# weights in flash: they are the baselines as pico-tflmicro runs them.
STAGING_BUDGET = 160 * 1024   # bytes of SRAM for staged kernel data plus the arena
XIP_CYCLES_PER_BYTE = 5       # one ~40-cycle miss per 8-byte line
XIP_BLOCK_BYTES = 15 * 1024   # what the dense conv and generated code re-read from flash per pixel: all
                              # but a little of the 16 KB XIP cache, since they read nothing else there
                              # (kernels/sparse.c's data-driven conv, which does, keeps to half of it)
RQ_TABLE_SAVES = 26           # cycles per output of a threshold table (22) instead of the arithmetic (48)


def kernel_data_bytes(layer: Layer, inp: TensorInfo, impl: str) -> int:
    """Bytes of the arrays a dense or sparse kernel streams through (0 for every other kernel)."""
    if impl == "dense" and isinstance(layer, WEIGHTED):
        rq = requantization(layer, inp)
        channels = len(layer.bias) if len(layer.weight_scales) > 1 or not isinstance(layer, FullyConnected) else 1
        rqz = requantizer("", layer, rq, channels)
        if isinstance(layer, DepthwiseConv2D):
            stream = dense_depthwise_stream(layer, inp, rq, rqz)
        elif isinstance(layer, Conv2D):
            stream = dense_conv_stream(layer, inp, rq, rqz)
        else:
            stream = dense_fc_stream(layer, rq, rqz)
        return 4 * len(stream) + (0 if rqz.tables is None else 4 * rqz.tables.size)
    if generated_conv(layer, impl):
        return sparsegen.code_bytes_estimate(layer) + 1024 * layer.weights.shape[0]  # code, tables
    if impl == "sparse" and isinstance(layer, Conv2D | FullyConnected):
        return 4 * int(np.count_nonzero(layer.weights)) + 12 * layer.weights.shape[0]
    return 0


def staging_plan(graph: Graph, impls: list[str], arena: int) -> set[int]:
    """Indices of the layers whose kernel data go to SRAM: most cycles saved per byte first (one pass
    through the XIP cache, and the table requantization where the kernel has one)."""
    candidates = []
    for (i, layer, inp), impl in zip(graph.steps(), impls, strict=True):
        size = kernel_data_bytes(layer, inp, impl)
        if size:
            tables = impl == "dense" or generated_conv(layer, impl) or isinstance(layer, FullyConnected)
            saved = XIP_CYCLES_PER_BYTE * size + (RQ_TABLE_SAVES * layer.output.size if tables else 0)
            candidates.append((saved / size, size, i))
    staged, used = set(), arena
    for _, size, i in sorted(candidates, reverse=True):
        if used + size <= STAGING_BUDGET:
            staged.add(i)
            used += size
    return staged


def generate(graph: Graph, kernels: str = "tflm-ref", plan: Sequence[str] | None = None) -> GeneratedModel:
    """model.c and model.h of ``graph`` under ``kernels``; ``auto`` may be given its per-layer ``plan``
    (as ``mcu.autotune`` measures it), else every set decides per layer with ``choose_kernel``."""
    offsets, tensors = plan_arena(graph)
    impls = checked_plan(graph, kernels, plan)
    scratch = max([_scratch_bytes(layer, inp, impl) for (_, layer, inp), impl in zip(graph.steps(), impls,
                                                                                     strict=True)] + [0])
    arena = tensors + scratch
    staged = staging_plan(graph, impls, arena)
    parts = [_preamble(graph, kernels, impls, tensors, scratch),
             '#include "model.h"\n#include "pp_kernels.h"\n#include "pp_platform.h"\n#include <stdint.h>\n\n',
             "/* the descriptor layouts this file was generated for */\n",
             *(f'_Static_assert(sizeof({t}) == {descriptor_size(t)}, "pp_kernels.h changed {t}: '
               f'update codegen.DESCRIPTORS");\n' for t in DTYPE_DESCRIPTORS[graph.dtype]), "\n"]
    float_graph = graph.dtype == "float32"
    if arena:
        parts.append(f"static int8_t pp_arena[{arena}] __attribute__((aligned(4)));\n\n")
    scratch_ptr = f"(pp_arena + {tensors})" if scratch else "0"
    # the buffer of every tensor: 0 is the caller's input, the model output the caller's output
    bufs = ["in"] + ["out" if off is None else f"(pp_arena + {off})" for off in offsets]
    calls: list[str] = []
    code: list[str] = []   # assembly of generated layers
    for i, layer, inp in graph.steps():
        name = f"layer{i}"
        buf, srcs = bufs[i + 1], [bufs[t] for t in graph.reads[i]]
        if isinstance(layer, Reshape):
            if buf != srcs[0]:  # only when a reshape starts or ends the model
                calls.append(f"    for (int k = 0; k < {layer.output.nbytes}; ++k) {buf}[k] = {srcs[0]}[k];")
            calls.append("    PP_MARK(PP_MARK_LAYER);")
            continue
        impl = impls[i]
        what = f"{layer.op} {_dims(inp)}"
        if generated_conv(layer, impl):
            text, asm = _generated_conv(name, layer, inp, i in staged)
            code.append(asm)
            parts.append(f"/* layer {i}: {what} -> {_dims(layer.output)}, kernel {impl} "
                         f"(generated code, pp_sgen_{name}) */\n{text}"
                         f"void pp_sgen_{name}(const uint8_t *window, int8_t *out);\n\n")
            calls.append(f"    pp_sgen_{name}(pp_conv_flipped(&{name}, {srcs[0]}, {scratch_ptr}), {buf});")
            calls.append("    PP_MARK(PP_MARK_LAYER);")
            continue
        if float_graph:  # the buffers are bytes; TFLM's float kernels take floats
            text, fn = _float_desc(name, layer, inp, impl)
            srcs, buf = [f"(const float *){b}" for b in srcs], f"(float *){buf}"
        elif isinstance(layer, Conv2D | DepthwiseConv2D):
            text, fn = _conv_desc(name, layer, inp, impl, i in staged)
        elif isinstance(layer, FullyConnected):
            text, fn = _fc_desc(name, layer, inp, impl, i in staged)
        elif isinstance(layer, Pool2D):
            text, fn = _pool_desc(name, layer, inp, impl)
        elif isinstance(layer, Add):
            text, fn = _add_desc(name, layer, graph.inputs_of(i), impl)
            what = f"{layer.op} tensors {' + '.join(map(str, graph.reads[i]))}, {_dims(inp)}"
        elif isinstance(layer, STOCK_OPS):
            text, fn = _stock_desc(name, layer, inp)
        else:  # pragma: no cover
            raise CodegenError(f"no C kernel for {layer.op}")
        parts.append(f"/* layer {i}: {what} -> {_dims(layer.output)}, kernel {impl} */\n{text}\n")
        calls.append(f"    {fn}_{impl}(&{name}, {', '.join(srcs)}, {buf}, {scratch_ptr});")
        calls.append("    PP_MARK(PP_MARK_LAYER);")
    if bufs[-1] != "out":  # a model whose last layer was aliased to an arena buffer
        calls.append(f"    for (int k = 0; k < {graph.output.nbytes}; ++k) out[k] = {bufs[-1]}[k];")
    if code:
        asm = ".syntax unified\n.thumb\n" + "".join(code) + ".text\n"
        parts.append("__asm__(\n" + "".join(f"    {_c_string(ln)}\n" for ln in asm.splitlines()) + ");\n\n")
    parts.append("void pp_model_run(const int8_t *in, int8_t *out) {\n" + "\n".join(calls) + "\n}\n")
    header = (
        "#ifndef PP_MODEL_H\n#define PP_MODEL_H\n#include <stdint.h>\n"
        f"#define PP_INPUT_SIZE {graph.input.nbytes}\n#define PP_OUTPUT_SIZE {graph.output.nbytes}\n"
        f"#define PP_NUM_LAYERS {len(graph.layers)}\n#define PP_ARENA_SIZE {arena}\n"
        "void pp_model_run(const int8_t *in, int8_t *out);\n#endif\n"
    )
    return GeneratedModel("".join(parts), header, arena, tuple(_reported(graph, impls)),
                          tuple(sorted(staged)),
                          tuple(offsets))
