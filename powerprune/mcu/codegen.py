"""IR -> C: weights as const arrays, one const descriptor per layer, a statically planned arena, and
``pp_model_run`` calling the kernels of the chosen set with a marker after every layer.

Only data and glue are generated; the kernels are hand-written C in ``kernels/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import (
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Graph,
    Layer,
    Pool2D,
    Reshape,
    output_size,
    requantization,
)

KERNEL_SETS = ("tflm-ref",)


class CodegenError(ValueError):
    pass


@dataclass(frozen=True)
class GeneratedModel:
    model_c: str
    model_h: str
    arena_bytes: int
    kernels: tuple[str, ...]   # kernel set used for each layer (for reports)


def c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    flat = [str(int(v)) for v in np.asarray(values).ravel()]
    if not flat:
        flat = ["0"]
    lines = [", ".join(flat[i:i + per_line]) for i in range(0, len(flat), per_line)]
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] __attribute__((aligned(4))) = {{\n    {body}\n}};\n"


def _align4(n: int) -> int:
    return (n + 3) & ~3


def plan_arena(graph: Graph) -> tuple[list[int | None], int]:
    """Offsets of every layer output in one arena (None: the model output buffer; reshapes alias
    their input). Consecutive tensors sit at opposite ends, so the arena needs only the largest
    input+output pair: what TFLM's greedy planner finds for a chain."""
    n = len(graph.layers)
    sizes = [layer.output.size for layer in graph.layers]
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


def _conv_desc(name: str, layer: Conv2D | DepthwiseConv2D, inp, kernels: str) -> tuple[str, str]:
    rq = requantization(layer, inp)
    kh, kw = layer.weights.shape[1:3]
    _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    out = layer.output
    depth_mult = out.shape[2] // inp.shape[2] if isinstance(layer, DepthwiseConv2D) else 1
    data = (c_array("int8_t", f"{name}_w", layer.weights) + c_array("int32_t", f"{name}_b", layer.bias)
            + c_array("int32_t", f"{name}_m", rq.multiplier) + c_array("int32_t", f"{name}_s", rq.shift))
    desc = (f"static const pp_conv_t {name} = {{{inp.shape[0]}, {inp.shape[1]}, {inp.shape[2]}, "
            f"{out.shape[0]}, {out.shape[1]}, {out.shape[2]}, {kh}, {kw}, {layer.stride[0]}, {layer.stride[1]}, "
            f"{pad_h}, {pad_w}, {depth_mult}, {rq.input_offset}, {rq.output_offset}, "
            f"{layer.activation.min}, {layer.activation.max}, {name}_w, {name}_b, {name}_m, {name}_s}};\n")
    return data + desc, "pp_depthwise" if isinstance(layer, DepthwiseConv2D) else "pp_conv2d"


def _fc_desc(name: str, layer: FullyConnected, inp) -> tuple[str, str]:
    rq = requantization(layer, inp)
    per_channel = int(len(layer.weight_scales) > 1)
    mult = rq.multiplier if per_channel else rq.multiplier[:1]
    shift = rq.shift if per_channel else rq.shift[:1]
    data = (c_array("int8_t", f"{name}_w", layer.weights) + c_array("int32_t", f"{name}_b", layer.bias)
            + c_array("int32_t", f"{name}_m", mult) + c_array("int32_t", f"{name}_s", shift))
    desc = (f"static const pp_fc_t {name} = {{{inp.size}, {layer.output.size}, {per_channel}, "
            f"{rq.input_offset}, {layer.output.zero_point}, {layer.activation.min}, {layer.activation.max}, "
            f"{name}_w, {name}_b, {name}_m, {name}_s}};\n")
    return data + desc, "pp_fc"


def _pool_desc(name: str, layer: Pool2D, inp) -> tuple[str, str]:
    kh, kw = layer.size
    _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    out = layer.output
    desc = (f"static const pp_pool_t {name} = {{{inp.shape[0]}, {inp.shape[1]}, {inp.shape[2]}, "
            f"{out.shape[0]}, {out.shape[1]}, {kh}, {kw}, {layer.stride[0]}, {layer.stride[1]}, {pad_h}, {pad_w}, "
            f"{layer.activation.min}, {layer.activation.max}}};\n")
    return desc, "pp_maxpool" if layer.kind == "MAX" else "pp_avgpool"


_SUFFIX = {"tflm-ref": "tflmref"}


def _kernel_for(layer: Layer, kernels: str) -> str:
    if kernels not in KERNEL_SETS:
        raise CodegenError(f"unknown kernel set {kernels!r}; available: {', '.join(KERNEL_SETS)}")
    return kernels


def generate(graph: Graph, kernels: str = "tflm-ref") -> GeneratedModel:
    offsets, arena = plan_arena(graph)
    parts = ['#include "model.h"\n#include "pp_kernels.h"\n#include "pp_platform.h"\n#include <stdint.h>\n\n']
    if arena:
        parts.append(f"static int8_t pp_arena[{arena}] __attribute__((aligned(4)));\n\n")
    calls: list[str] = []
    used: list[str] = []
    prev_buf = "in"
    for i, layer, inp in graph.steps():
        name = f"layer{i}"
        buf = "out" if offsets[i] is None else f"(pp_arena + {offsets[i]})"
        if isinstance(layer, Reshape):
            if buf != prev_buf:  # only when a reshape starts or ends the model
                calls.append(f"    for (int k = 0; k < {layer.output.size}; ++k) {buf}[k] = {prev_buf}[k];")
            calls.append("    PP_MARK(PP_MARK_LAYER);")
            used.append("copy")
            prev_buf = buf
            continue
        ks = _kernel_for(layer, kernels)
        if isinstance(layer, Conv2D | DepthwiseConv2D):
            text, fn = _conv_desc(name, layer, inp, ks)
        elif isinstance(layer, FullyConnected):
            text, fn = _fc_desc(name, layer, inp)
        elif isinstance(layer, Pool2D):
            text, fn = _pool_desc(name, layer, inp)
        else:  # pragma: no cover
            raise CodegenError(f"no C kernel for {layer.op}")
        parts.append(f"/* layer {i}: {layer.op} */\n{text}\n")
        calls.append(f"    {fn}_{_SUFFIX[ks]}(&{name}, {prev_buf}, {buf});")
        calls.append("    PP_MARK(PP_MARK_LAYER);")
        used.append(ks)
        prev_buf = buf
    if prev_buf != "out":  # a model whose last layer was aliased to an arena buffer
        calls.append(f"    for (int k = 0; k < {graph.output.size}; ++k) out[k] = {prev_buf}[k];")
    parts.append("void pp_model_run(const int8_t *in, int8_t *out) {\n" + "\n".join(calls) + "\n}\n")
    header = (
        "#ifndef PP_MODEL_H\n#define PP_MODEL_H\n#include <stdint.h>\n"
        f"#define PP_INPUT_SIZE {graph.input.size}\n#define PP_OUTPUT_SIZE {graph.output.size}\n"
        f"#define PP_NUM_LAYERS {len(graph.layers)}\n#define PP_ARENA_SIZE {arena}\n"
        "void pp_model_run(const int8_t *in, int8_t *out);\n#endif\n"
    )
    return GeneratedModel("".join(parts), header, arena, tuple(used))
