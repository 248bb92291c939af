"""IR -> C: weights as const arrays, one const descriptor per layer, a statically planned arena, and
``pp_model_run`` calling the kernels of the chosen set with a marker after every layer.

Only data and glue are generated; the kernels are hand-written C in ``kernels/``. Descriptors are C99
designated initializers (``.k_h = 5``) of the structs in ``kernels/pp_kernels.h``, whose fields
``DESCRIPTORS`` lists; the generated file asserts the struct sizes, so a header edit that codegen does
not know about stops the build instead of shifting values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir import (
    WEIGHTED,
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Graph,
    Layer,
    Pool2D,
    Reshape,
    Softmax,
    TensorInfo,
    output_size,
    requantization,
)
from . import costmodel

# tflm-ref and cmsis-nn are the stock baselines (TFLM reference kernels; CMSIS-NN's pure-C M0+ path);
# dense, sparse and auto are ours; tflm-skip is the paper's "adapted TFLM" (the tflm-ref loops skipping
# the multiply of a zero weight), which only the paper-exact run profiles by default
KERNEL_SETS = ("tflm-ref", "cmsis-nn", "dense", "sparse", "auto", "tflm-skip")
ADAPTED_KERNELS = "tflm-skip"

# The descriptor structs of kernels/pp_kernels.h: every field in declaration order, with its C type
# ("*": a pointer). ``c_struct`` fills exactly these; a test checks them against the header.
DESCRIPTORS: dict[str, tuple[tuple[str, str], ...]] = {
    "pp_conv_t": (
        *((f, "int16_t") for f in ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h",
                                   "stride_w", "pad_h", "pad_w", "depth_multiplier")),
        *((f, "int32_t") for f in ("input_offset", "output_offset", "act_min", "act_max")),
        ("weights", "*"), ("bias", "*"), ("multiplier", "*"), ("shift", "*"), ("nz_count", "*"), ("nz_packed", "*"),
    ),
    "pp_fc_t": (
        *((f, "int16_t") for f in ("in_size", "out_size", "per_channel")),
        *((f, "int32_t") for f in ("input_offset", "output_offset", "act_min", "act_max")),
        ("weights", "*"), ("bias", "*"), ("multiplier", "*"), ("shift", "*"), ("nz_count", "*"), ("nz_offset", "*"),
    ),
    "pp_pool_t": (
        *((f, "int16_t") for f in ("in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w",
                                   "pad_h", "pad_w")),
        *((f, "int32_t") for f in ("act_min", "act_max")),
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
# the descriptors a model.c of each dtype uses (and asserts the sizes of)
DTYPE_DESCRIPTORS = {"int8": ("pp_conv_t", "pp_fc_t", "pp_pool_t"),
                     "float32": ("pp_conv_f32_t", "pp_fc_f32_t", "pp_pool_f32_t", "pp_softmax_f32_t")}
# float32 graphs run on TFLM's float reference kernels, stock or zero-skipping (kernels/tflm_float.c)
FLOAT_KERNEL_SETS = ("tflm-ref", ADAPTED_KERNELS)
_C_SIZE = {"int16_t": 2, "int32_t": 4, "float": 4, "*": 4}  # the RP2040's ILP32 ABI: size = alignment
_C_TYPE = {"int8": "int8_t", "float32": "float"}


class CodegenError(ValueError):
    pass


@dataclass(frozen=True)
class GeneratedModel:
    model_c: str
    model_h: str
    arena_bytes: int
    kernels: tuple[str, ...]   # implementation each layer got: tflmref, tflmskip, cmsisnn, dense, sparse, reshape
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


def c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    values = np.asarray(values)
    if values.dtype.kind == "f":
        flat = [c_float(v) for v in values.ravel()]
        per_line = min(per_line, 8)
    else:
        flat = [str(int(v)) for v in values.ravel()]
    if not flat:
        flat = ["0"]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] __attribute__((aligned(4))) = {{\n    {body}\n}};\n"


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
    their input). Consecutive tensors sit at opposite ends, so the arena needs only the largest
    input+output pair: what TFLM's greedy planner finds for a chain."""
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


# --- per-layer kernel choice -----------------------------------------------------------------

def choose_kernel(layer: Layer, inp: TensorInfo, kernels: str) -> str:
    """The C implementation ('tflmref', 'tflmskip', 'cmsisnn', 'dense' or 'sparse') one layer gets under
    a kernel set. Ops a set has no kernel for fall back to the next simpler one, so every set runs every
    model (cmsis-nn has a kernel for every op; tflm-skip's pools are tflm-ref's: they have no weights)."""
    if kernels not in KERNEL_SETS:
        raise CodegenError(f"unknown kernel set {kernels!r}; available: {', '.join(KERNEL_SETS)}")
    if inp.dtype == "float32" and kernels not in FLOAT_KERNEL_SETS:
        raise CodegenError(f"kernel set {kernels!r} has no float32 kernels; a float32 model runs on "
                           f"{' or '.join(FLOAT_KERNEL_SETS)}")
    if kernels == ADAPTED_KERNELS:
        return "tflmskip" if isinstance(layer, WEIGHTED) else "tflmref"
    if kernels == "cmsis-nn":
        return "tflmref" if isinstance(layer, Reshape) else "cmsisnn"
    if kernels == "tflm-ref" or isinstance(layer, DepthwiseConv2D | Reshape):
        return "tflmref"
    if isinstance(layer, Pool2D):
        valid = layer.padding == "VALID" or all(
            output_size(n, k, s, "SAME")[1] == 0 and (n - k) % s == 0
            for n, k, s in zip(inp.shape[:2], layer.size, layer.stride, strict=True))
        return "dense" if layer.kind == "MAX" and valid else "tflmref"
    if isinstance(layer, FullyConnected) and inp.size >= 2**16:
        return "dense"  # offsets would not fit the 16-bit encoding
    if kernels == "dense":
        return "dense"
    if kernels == "sparse":
        return "sparse"
    return "sparse" if costmodel.prefers_sparse(layer) else "dense"


def kernel_plan(graph: Graph, kernels: str) -> list[str]:
    """The implementation of every layer under ``kernels``; a CodegenError when the set cannot run the graph."""
    return [choose_kernel(layer, inp, kernels) for _, layer, inp in graph.steps()]


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


def _sparse_offsets(layer: Conv2D | FullyConnected, inp: TensorInfo) -> tuple[np.ndarray, np.ndarray]:
    """Input offset of every weight (relative to the window origin) and the weights, row-major per
    output channel; the sparse encoding keeps the nonzero entries of both."""
    if isinstance(layer, FullyConnected):
        return np.broadcast_to(np.arange(inp.size), layer.weights.shape), layer.weights
    o, kh, kw, c = layer.weights.shape
    row, _ = _padded_row(layer, inp)
    ky, kx, ic = np.meshgrid(np.arange(kh), np.arange(kw), np.arange(c), indexing="ij")
    offs = (ky * row + kx * c + ic).ravel()
    return np.broadcast_to(offs, (o, offs.size)), layer.weights.reshape(o, -1)


def _folded_bias(layer: Conv2D | FullyConnected, rq) -> np.ndarray:
    """bias + input_offset * sum(w): the input offset leaves the inner loop."""
    sums = layer.weights.reshape(layer.weights.shape[0], -1).astype(np.int64).sum(axis=1)
    folded = layer.bias.astype(np.int64) + rq.input_offset * sums
    if np.abs(folded).max(initial=0) >= 2**31:
        raise CodegenError("folded bias overflows int32")
    return folded


def _weight_arrays(name: str, layer: Conv2D | DepthwiseConv2D | FullyConnected, inp: TensorInfo, impl: str,
                   rq) -> tuple[str, str, str]:
    """C arrays for weights and bias in the format ``impl`` reads; returns (code, count, offsets) names."""
    if impl in ("tflmref", "tflmskip", "cmsisnn"):  # stock kernels: raw weights, raw bias
        return (c_array("int8_t", f"{name}_w", layer.weights) + c_array("int32_t", f"{name}_b", layer.bias),
                "0", "0")
    bias = c_array("int32_t", f"{name}_b", _folded_bias(layer, rq))
    if impl == "dense":
        return c_array("int8_t", f"{name}_w", layer.weights) + bias, "0", "0"
    offs, w = _sparse_offsets(layer, inp)
    nz = w != 0
    counts = c_array("uint16_t", f"{name}_n", nz.sum(axis=1))
    if isinstance(layer, Conv2D):  # one word per nonzero: offset << 8 | value (kernels/sparse.c)
        packed = (offs[nz].astype(np.int64) << 8) | (w[nz].astype(np.int64) & 0xFF)
        code = c_array("int8_t", f"{name}_w", np.zeros(0)) + bias + counts + c_array("uint32_t", f"{name}_o", packed)
    else:
        code = c_array("int8_t", f"{name}_w", w[nz]) + bias + counts + c_array("uint16_t", f"{name}_o", offs[nz])
    return code, f"{name}_n", f"{name}_o"


def _conv_desc(name: str, layer: Conv2D | DepthwiseConv2D, inp: TensorInfo, impl: str) -> tuple[str, str]:
    rq = requantization(layer, inp)
    kh, kw = layer.weights.shape[1:3]
    _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    out = layer.output
    depth_mult = out.shape[2] // inp.shape[2] if isinstance(layer, DepthwiseConv2D) else 1
    data, counts, offsets = _weight_arrays(name, layer, inp, impl, rq)
    data += c_array("int32_t", f"{name}_m", rq.multiplier) + c_array("int32_t", f"{name}_s", rq.shift)
    desc = c_struct("pp_conv_t", name, {
        "in_h": inp.shape[0], "in_w": inp.shape[1], "in_c": inp.shape[2],
        "out_h": out.shape[0], "out_w": out.shape[1], "out_c": out.shape[2], "k_h": kh, "k_w": kw,
        "stride_h": layer.stride[0], "stride_w": layer.stride[1], "pad_h": pad_h, "pad_w": pad_w,
        "depth_multiplier": depth_mult, "input_offset": rq.input_offset, "output_offset": rq.output_offset,
        "act_min": layer.activation.min, "act_max": layer.activation.max, "weights": f"{name}_w",
        "bias": f"{name}_b", "multiplier": f"{name}_m", "shift": f"{name}_s", "nz_count": counts,
        "nz_packed": offsets})
    return data + desc, "pp_depthwise" if isinstance(layer, DepthwiseConv2D) else "pp_conv2d"


def _fc_desc(name: str, layer: FullyConnected, inp: TensorInfo, impl: str) -> tuple[str, str]:
    rq = requantization(layer, inp)
    per_channel = int(len(layer.weight_scales) > 1)
    mult = rq.multiplier if per_channel else rq.multiplier[:1]
    shift = rq.shift if per_channel else rq.shift[:1]
    data, counts, offsets = _weight_arrays(name, layer, inp, impl, rq)
    data += c_array("int32_t", f"{name}_m", mult) + c_array("int32_t", f"{name}_s", shift)
    desc = c_struct("pp_fc_t", name, {
        "in_size": inp.size, "out_size": layer.output.size, "per_channel": per_channel,
        "input_offset": rq.input_offset, "output_offset": layer.output.zero_point,
        "act_min": layer.activation.min, "act_max": layer.activation.max, "weights": f"{name}_w",
        "bias": f"{name}_b", "multiplier": f"{name}_m", "shift": f"{name}_s", "nz_count": counts,
        "nz_offset": offsets})
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
    if impl in ("dense", "sparse") and isinstance(layer, Conv2D):
        window = 2 * _align4(layer.weights[0].size) if impl == "dense" else 0  # two gathered windows
        return _padded_row(layer, inp)[1] + window
    return 0


def _dims(t: TensorInfo) -> str:
    return "x".join(str(d) for d in t.shape)


def _preamble(graph: Graph, kernels: str, impls: list[str], tensors: int, scratch: int) -> str:
    """The comment that opens model.c: what the file is, its interface, memory plan and layers."""
    def quant(t: TensorInfo) -> str:
        if t.dtype == "float32":
            return f"float32 {_dims(t)}"
        return f"int8 {_dims(t)} (scale {t.scale:.6g}, zero point {t.zero_point})"

    name = graph.name.replace("*/", "*_/")
    lines = [f'Generated by powerprune from model "{name}" for the "{kernels}" kernel set: regenerate it',
             "rather than edit it. The kernels are hand-written C (pp_kernels.h says what each set does).", "",
             f"pp_model_run(in, out) reads {quant(graph.input)}",
             f"and writes {quant(graph.output)}.", "",
             "Weights and one const descriptor per layer follow (in flash with the default layout).",
             f"pp_arena ({tensors + scratch} bytes) holds the activations in its first {tensors} bytes, consecutive",
             "layer outputs at opposite ends, and in the rest scratch for kernels that pre-pad their input",
             "or gather windows.", "",
             f"{'layer':<6} {'op':<18} {'output':<10} kernel"]
    for (i, layer, _), impl in zip(graph.steps(), impls, strict=True):
        kernel = "(a view of its input)" if isinstance(layer, Reshape) else impl
        lines.append(f"{i:<6} {layer.op:<18} {_dims(layer.output):<10} {kernel}")
    return "/* " + "\n * ".join(lines).replace(" \n", "\n") + "\n */\n"


def generate(graph: Graph, kernels: str = "tflm-ref") -> GeneratedModel:
    offsets, tensors = plan_arena(graph)
    impls = kernel_plan(graph, kernels)
    scratch = max([_scratch_bytes(layer, inp, impl) for (_, layer, inp), impl in zip(graph.steps(), impls,
                                                                                     strict=True)] + [0])
    arena = tensors + scratch
    io_type = _C_TYPE[graph.dtype]
    parts = [_preamble(graph, kernels, impls, tensors, scratch),
             '#include "model.h"\n#include "pp_kernels.h"\n#include "pp_platform.h"\n#include <stdint.h>\n\n',
             "/* the descriptor layouts this file was generated for */\n",
             *(f'_Static_assert(sizeof({t}) == {descriptor_size(t)}, "pp_kernels.h changed {t}: '
               f'update codegen.DESCRIPTORS");\n' for t in DTYPE_DESCRIPTORS[graph.dtype]), "\n"]
    if arena:
        parts.append(f"static int8_t pp_arena[{arena}] __attribute__((aligned(4)));\n\n")
    scratch_ptr = f"(pp_arena + {tensors})" if scratch else "0"
    calls: list[str] = []
    used: list[str] = []
    prev_buf = "in"
    for i, layer, inp in graph.steps():
        name = f"layer{i}"
        buf = "out" if offsets[i] is None else f"(pp_arena + {offsets[i]})"
        if buf != "out" and io_type != "int8_t":  # the arena is bytes; a float tensor is read as floats
            buf = f"(({io_type} *){buf})"
        if isinstance(layer, Reshape):
            if buf != prev_buf:  # only when a reshape starts or ends the model
                calls.append(f"    for (int k = 0; k < {layer.output.size}; ++k) {buf}[k] = {prev_buf}[k];")
            calls.append("    PP_MARK(PP_MARK_LAYER);")
            used.append("reshape")
            prev_buf = buf
            continue
        impl = impls[i]
        if graph.dtype == "float32":
            text, fn = _float_desc(name, layer, inp, impl)
        elif isinstance(layer, Conv2D | DepthwiseConv2D):
            text, fn = _conv_desc(name, layer, inp, impl)
        elif isinstance(layer, FullyConnected):
            text, fn = _fc_desc(name, layer, inp, impl)
        elif isinstance(layer, Pool2D):
            text, fn = _pool_desc(name, layer, inp, impl)
        else:  # pragma: no cover
            raise CodegenError(f"no C kernel for {layer.op}")
        parts.append(f"/* layer {i}: {layer.op} {_dims(inp)} -> {_dims(layer.output)}, kernel {impl} */\n{text}\n")
        calls.append(f"    {fn}_{impl}(&{name}, {prev_buf}, {buf}, {scratch_ptr});")
        calls.append("    PP_MARK(PP_MARK_LAYER);")
        used.append(impl)
        prev_buf = buf
    if prev_buf != "out":  # a model whose last layer was aliased to an arena buffer
        calls.append(f"    for (int k = 0; k < {graph.output.size}; ++k) out[k] = {prev_buf}[k];")
    parts.append(f"void pp_model_run(const {io_type} *in, {io_type} *out) {{\n" + "\n".join(calls) + "\n}\n")
    header = (
        "#ifndef PP_MODEL_H\n#define PP_MODEL_H\n#include <stdint.h>\n"
        f"#define PP_INPUT_SIZE {graph.input.size}\n#define PP_OUTPUT_SIZE {graph.output.size}\n"
        f"#define PP_NUM_LAYERS {len(graph.layers)}\n#define PP_ARENA_SIZE {arena}\n"
        f"typedef {io_type} pp_io_t;  /* the element type of the model's input and output */\n"
        "void pp_model_run(const pp_io_t *in, pp_io_t *out);\n#endif\n"
    )
    return GeneratedModel("".join(parts), header, arena, tuple(used), tuple(offsets))
