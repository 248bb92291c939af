"""Per-op lowering: one entry per op name turning a layer into its C (arrays, descriptor, the call in
``pp_model_run``), as TFLM has one kernel file per op and tinygrad one lowering row per op.

The stock ops (stock.py) are data only: a struct, a kernel name and their field values. The ops with
our own kernels (the weighted ops, the pools, the table-driven ADD) and the float32 ops lower here,
since their arrays depend on the implementation the layer runs as (streams.py lays them out).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..ir import Layer, TensorInfo, add_requantization, output_size, requantization
from . import sparsegen
from .cgen import CodegenError, Struct, c_array, c_float, fields
from .stock import STOCK
from .streams import (
    RQ_KIND_TBL,
    XIP_BLOCK_BYTES,
    Weighted,
    accumulator_bound,
    add_tables,
    dense_stream,
    folded_bias,
    generated_conv,
    input_layout,
    requantizer,
    sparse_fc_stream,
    sparse_offsets,
)

_GEOMETRY = ("in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w", "pad_h",
             "pad_w", "depth_multiplier")
_POOL_GEOMETRY = ("in_h", "in_w", "channels", "out_h", "out_w", "k_h", "k_w", "stride_h", "stride_w", "pad_h",
                  "pad_w")

CONV = Struct("pp_conv_t", (
    *fields("int16_t", *_GEOMETRY),
    *fields("int32_t", "input_offset", "output_offset", "act_min", "act_max"),
    *fields("*", "weights", "bias", "multiplier", "shift", "nz_count", "nz_packed", "stream"),
    *fields("int32_t", "row_bytes", "padded_rows", "row_lead", "row_copy", "scratch_bytes", "window_origin")))
FC = Struct("pp_fc_t", (
    *fields("int16_t", "in_size", "out_size", "per_channel"),
    *fields("int32_t", "input_offset", "output_offset", "act_min", "act_max"),
    *fields("*", "weights", "bias", "multiplier", "shift", "stream")))
POOL = Struct("pp_pool_t", (*fields("int16_t", *_POOL_GEOMETRY), *fields("int32_t", "act_min", "act_max")))
ADD_TABLES = Struct("pp_add_tab_t", (
    ("size", "int32_t"), ("w", "uint32_t"), ("m", "uint32_t"), ("p", "int32_t"), ("o_min", "int32_t"),
    *fields("int32_t", "output_offset", "output_multiplier", "output_shift", "act_min", "act_max"),
    *fields("*", "terms1", "terms2", "thresholds")))
CONV_F32 = Struct("pp_conv_f32_t", (
    *fields("int16_t", *_GEOMETRY), *fields("float", "act_min", "act_max"), *fields("*", "weights", "bias")))
FC_F32 = Struct("pp_fc_f32_t", (
    *fields("int16_t", "in_size", "out_size"), *fields("float", "act_min", "act_max"),
    *fields("*", "weights", "bias")))
POOL_F32 = Struct("pp_pool_f32_t", (*fields("int16_t", *_POOL_GEOMETRY), *fields("float", "act_min", "act_max")))
SOFTMAX_F32 = Struct("pp_softmax_f32_t", (*fields("int16_t", "rows", "depth"), ("beta", "float")))


def _stock_structs() -> list[Struct]:
    return list(dict.fromkeys(s.struct for s in STOCK.values()))


# every descriptor struct of kernels/pp_kernels.h, in the header's order (a test reads the header back)
STRUCTS: dict[str, Struct] = {s.name: s for s in (CONV, FC, POOL, STOCK["ADD"].struct, ADD_TABLES,
                                                  *(s for s in _stock_structs() if s.name != "pp_add_t"),
                                                  CONV_F32, FC_F32, POOL_F32, SOFTMAX_F32)}
# the descriptors a model.c of each graph dtype uses (and asserts the sizes of)
DTYPE_STRUCTS = {"int8": tuple(s for n, s in STRUCTS.items() if not n.endswith("_f32_t")),
                 "float32": tuple(s for n, s in STRUCTS.items() if n.endswith("_f32_t"))}


@dataclass(frozen=True)
class Step:
    """One layer to lower, with everything its C depends on."""

    name: str                       # its descriptor's C name (layer<i>), the prefix of its arrays
    layer: Layer
    inputs: tuple[TensorInfo, ...]  # the tensors it reads, in operand order
    impl: str                       # the implementation it runs as (kernelsets.choose_kernel)
    dtype: str                      # the graph's dtype: a float32 graph lowers to TFLM's float kernels
    staged: bool                    # its kernel data (or generated code) go to SRAM
    sources: tuple[str, ...]        # C expressions of its input buffers
    output: str                     # C expression of its output buffer
    scratch: str                    # C expression of the arena's scratch space ("0": none)

    @property
    def inp(self) -> TensorInfo:
        return self.inputs[0]


@dataclass(frozen=True)
class Lowered:
    """One layer as C."""

    text: str        # its arrays and descriptor (and declarations), before pp_model_run
    call: str        # the statement of pp_model_run that runs it
    note: str = ""   # added to the layer's comment
    asm: str = ""    # assembly of generated code


def _call(step: Step, kernel: str, cast: str = "") -> str:
    """The common calling convention: ``<kernel>_<impl>(&descriptor, inputs..., output, scratch)``."""
    srcs = ", ".join(f"{cast}{s}" for s in step.sources)
    return f"{kernel}_{step.impl}(&{step.name}, {srcs}, {cast.replace('const ', '')}{step.output}, {step.scratch});"


def _padding(layer: Layer, inp: TensorInfo, kh: int, kw: int) -> tuple[int, int]:
    """The leading (top, left) padding of a windowed op."""
    _, pad_h = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    _, pad_w = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    return pad_h, pad_w


def _conv_geometry(layer: Layer, inp: TensorInfo) -> dict[str, int]:
    kh, kw = layer.weights.shape[1:3]
    pad_h, pad_w = _padding(layer, inp, kh, kw)
    out = layer.output
    depth_mult = out.shape[2] // inp.shape[2] if layer.op == "DEPTHWISE_CONV_2D" else 1
    return {"in_h": inp.shape[0], "in_w": inp.shape[1], "in_c": inp.shape[2],
            "out_h": out.shape[0], "out_w": out.shape[1], "out_c": out.shape[2], "k_h": kh, "k_w": kw,
            "stride_h": layer.stride[0], "stride_w": layer.stride[1], "pad_h": pad_h, "pad_w": pad_w,
            "depth_multiplier": depth_mult}


def _pool_geometry(layer: Layer, inp: TensorInfo) -> dict[str, int]:
    kh, kw = layer.size
    pad_h, pad_w = _padding(layer, inp, kh, kw)
    out = layer.output
    return {"in_h": inp.shape[0], "in_w": inp.shape[1], "channels": inp.shape[2], "out_h": out.shape[0],
            "out_w": out.shape[1], "k_h": kh, "k_w": kw, "stride_h": layer.stride[0], "stride_w": layer.stride[1],
            "pad_h": pad_h, "pad_w": pad_w}


def _weight_arrays(name: str, layer: Weighted, inp: TensorInfo, impl: str, rq, mult: np.ndarray,
                   shift: np.ndarray, sram: bool) -> tuple[str, dict[str, str]]:
    """C arrays in the format ``impl`` reads (the kernel's streamed data in SRAM when ``sram``);
    returns the code and the descriptor's pointer fields."""
    ptrs = {f: "0" for f in ("weights", "bias", "multiplier", "shift", "nz_count", "nz_packed", "stream")}
    if impl == "generated":  # the weights are in the generated code; the descriptor is geometry only
        return "", ptrs
    if impl == "dense" or (impl == "sparse" and layer.op == "FULLY_CONNECTED"):
        # one stream, read in order by the assembly (kernels/dense.c, kernels/sparse.c)
        rqz = requantizer(name, layer, rq, len(mult), tables=sram)
        stream = (sparse_fc_stream(layer, rq, rqz) if impl == "sparse"
                  else dense_stream(layer, inp, rq, rqz, staged=sram))
        tables = "" if rqz.tables is None else c_array("uint32_t", rqz.table_name, rqz.tables, sram=sram)
        return tables + c_array("int32_t", f"{name}_d", stream, sram=sram), {**ptrs, "stream": f"{name}_d"}
    ptrs.update(weights=f"{name}_w", bias=f"{name}_b", multiplier=f"{name}_m", shift=f"{name}_s")
    rescale = c_array("int32_t", f"{name}_m", mult) + c_array("int32_t", f"{name}_s", shift)
    if impl in ("tflmref", "tflmskip", "cmsisnn"):  # stock kernels: raw weights, raw bias
        return (c_array("int8_t", f"{name}_w", layer.weights) + c_array("int32_t", f"{name}_b", layer.bias)
                + rescale, ptrs)
    bias = c_array("int32_t", f"{name}_b", folded_bias(layer, rq), sram=sram)
    offs, w = sparse_offsets(layer, inp)
    nz = w != 0
    counts = c_array("uint16_t", f"{name}_n", nz.sum(axis=1), sram=sram)
    ptrs.update(nz_count=f"{name}_n", nz_packed=f"{name}_o")
    # the data-driven sparse convolution: one word per nonzero, offset << 8 | value (kernels/sparse.c)
    packed = (offs[nz].astype(np.int64) << 8) | (w[nz].astype(np.int64) & 0xFF)
    code = (c_array("int8_t", f"{name}_w", np.zeros(0)) + bias + counts
            + c_array("uint32_t", f"{name}_o", packed, sram=sram))
    return code + rescale, ptrs


def _conv_descriptor(step: Step, impl: str) -> str:
    layer, inp = step.layer, step.inp
    rq = requantization(layer, inp)
    data, ptrs = _weight_arrays(step.name, layer, inp, impl, rq, rq.multiplier, rq.shift, step.staged)
    return data + CONV.initializer(step.name, {
        **_conv_geometry(layer, inp), "input_offset": rq.input_offset, "output_offset": rq.output_offset,
        "act_min": layer.activation.min, "act_max": layer.activation.max, **ptrs,
        **input_layout(layer, inp, step.impl).fields()})


def _conv(step: Step) -> Lowered:
    if generated_conv(step.layer, step.impl):
        return _generated_conv(step)
    kernel = "pp_depthwise" if step.layer.op == "DEPTHWISE_CONV_2D" else "pp_conv2d"
    return Lowered(_conv_descriptor(step, step.impl), _call(step, kernel))


def _generated_conv(step: Step) -> Lowered:
    """A sparse convolution as straight-line code (sparsegen.py): the descriptor holds the geometry
    for pp_conv_flipped, which pads and sign-flips the input the code reads."""
    name, layer, inp, sram = step.name, step.layer, step.inp, step.staged
    rq = requantization(layer, inp)
    desc = _conv_descriptor(step, "generated")
    row = input_layout(layer, inp, step.impl).row_bytes
    section = f".data.{name}_code" if sram else f".text.{name}_code"
    rqz = requantizer(name, layer, rq, layer.weights.shape[0], tables=sram)
    tables = list(rqz.rq_tables) if rqz.kind == RQ_KIND_TBL else None
    if tables is not None:
        desc = c_array("uint32_t", rqz.table_name, rqz.tables, sram=sram, used=True) + desc
    code = sparsegen.generate_conv(f"pp_sgen_{name}", layer, inp, row, rqz.bias(folded_bias(layer, rq, -128)),
                                   section, accumulator_bound(layer, rq), tables, rqz.table_name,
                                   None if sram else XIP_BLOCK_BYTES)
    return Lowered(f"{desc}void pp_sgen_{name}(const uint8_t *window, int8_t *out);\n",
                   f"pp_sgen_{name}(pp_conv_flipped(&{name}, {step.sources[0]}, {step.scratch}), {step.output});",
                   note=f" (generated code, pp_sgen_{name})", asm=code)


def _fc(step: Step) -> Lowered:
    layer, inp = step.layer, step.inp
    rq = requantization(layer, inp)
    per_channel = int(len(layer.weight_scales) > 1)
    mult = rq.multiplier if per_channel else rq.multiplier[:1]
    shift = rq.shift if per_channel else rq.shift[:1]
    data, ptrs = _weight_arrays(step.name, layer, inp, step.impl, rq, mult, shift, step.staged)
    del ptrs["nz_count"], ptrs["nz_packed"]
    desc = FC.initializer(step.name, {
        "in_size": inp.size, "out_size": layer.output.size, "per_channel": per_channel,
        "input_offset": rq.input_offset, "output_offset": layer.output.zero_point,
        "act_min": layer.activation.min, "act_max": layer.activation.max, **ptrs})
    return Lowered(data + desc, _call(step, "pp_fc"))


def _pool(step: Step) -> Lowered:
    layer = step.layer
    desc = POOL.initializer(step.name, {**_pool_geometry(layer, step.inp), "act_min": layer.activation.min,
                                        "act_max": layer.activation.max})
    return Lowered(desc, _call(step, "pp_maxpool" if layer.op == "MAX_POOL_2D" else "pp_avgpool"))


def _table_add(step: Step) -> Lowered:
    """Our ADD (kernels/add.c, pp_add_dense): per-byte term tables and a threshold table."""
    name, layer = step.name, step.layer
    rq = add_requantization(*step.inputs, layer.output)
    lo, hi = layer.activation.min, layer.activation.max
    terms, table = add_tables(rq, lo, hi)
    data = c_array("int32_t", f"{name}_a", terms[0]) + c_array("int32_t", f"{name}_b", terms[1])
    rqt = {"w": 0, "m": 0, "p": 0, "o_min": 0}
    if table is not None:
        data += c_array("uint32_t", f"{name}_t", table.thresholds)
        rqt = {"w": f"{table.w}u", "m": f"{table.m}u", "p": table.p, "o_min": table.o_min}
    desc = ADD_TABLES.initializer(name, {
        "size": layer.output.size, **rqt, "output_offset": rq.output_offset,
        "output_multiplier": rq.output_multiplier, "output_shift": rq.output_shift, "act_min": lo,
        "act_max": hi, "terms1": f"{name}_a", "terms2": f"{name}_b",
        "thresholds": "0" if table is None else f"{name}_t"})
    return Lowered(data + desc, _call(step, "pp_add"))


def _stock(step: Step) -> Lowered:
    """A stock op from its record in stock.py."""
    low = STOCK[step.layer.op]
    desc = low.struct.initializer(step.name, low.values(step.layer, step.inputs))
    return Lowered(desc, _call(step, low.kernel_name(step.layer, step.inputs)))


# --- float32 graphs: TFLM's float reference kernels (kernels/tflm_float.c) -------------------------

_FLOAT = "(const float *)"   # the buffers are bytes; TFLM's float kernels take floats


def _float_bounds(layer: Layer) -> dict[str, str]:
    return {"act_min": c_float(layer.activation.min), "act_max": c_float(layer.activation.max)}


def _float_weights(name: str, layer: Weighted) -> tuple[str, dict[str, str]]:
    data = c_array("float", f"{name}_w", layer.weights) + c_array("float", f"{name}_b", layer.bias)
    return data, {"weights": f"{name}_w", "bias": f"{name}_b"}


def _float_conv(step: Step) -> Lowered:
    data, ptrs = _float_weights(step.name, step.layer)
    desc = CONV_F32.initializer(step.name, {**_conv_geometry(step.layer, step.inp), **_float_bounds(step.layer),
                                            **ptrs})
    kernel = "pp_depthwise_f32" if step.layer.op == "DEPTHWISE_CONV_2D" else "pp_conv2d_f32"
    return Lowered(data + desc, _call(step, kernel, _FLOAT))


def _float_fc(step: Step) -> Lowered:
    data, ptrs = _float_weights(step.name, step.layer)
    desc = FC_F32.initializer(step.name, {"in_size": step.inp.size, "out_size": step.layer.output.size,
                                          **_float_bounds(step.layer), **ptrs})
    return Lowered(data + desc, _call(step, "pp_fc_f32", _FLOAT))


def _float_pool(step: Step) -> Lowered:
    desc = POOL_F32.initializer(step.name, {**_pool_geometry(step.layer, step.inp), **_float_bounds(step.layer)})
    kernel = "pp_maxpool_f32" if step.layer.op == "MAX_POOL_2D" else "pp_avgpool_f32"
    return Lowered(desc, _call(step, kernel, _FLOAT))


def _float_softmax(step: Step) -> Lowered:
    out = step.layer.output
    depth = out.shape[-1]
    desc = SOFTMAX_F32.initializer(step.name, {"rows": out.size // depth, "depth": depth,
                                               "beta": c_float(step.layer.beta)})
    return Lowered(desc, _call(step, "pp_softmax_f32", _FLOAT))


Lowering = Callable[[Step], Lowered]
# the ops with our kernels (a layer that runs as 'stock' lowers by its record in stock.py)
INT8: dict[str, Lowering] = {"CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fc,
                             "MAX_POOL_2D": _pool, "AVERAGE_POOL_2D": _pool, "ADD": _table_add}
FLOAT32: dict[str, Lowering] = {"CONV_2D": _float_conv, "DEPTHWISE_CONV_2D": _float_conv,
                                "FULLY_CONNECTED": _float_fc, "MAX_POOL_2D": _float_pool,
                                "AVERAGE_POOL_2D": _float_pool, "SOFTMAX": _float_softmax}


def lower(step: Step) -> Lowered:
    """The C of one layer (not a reshape: that is a view, which ``codegen.generate`` handles)."""
    if step.dtype == "float32":
        table = FLOAT32
    elif step.impl == "stock":
        return _stock(step)
    else:
        table = INT8
    if step.layer.op not in table:
        raise CodegenError(f"no {step.dtype} C kernel for {step.layer.op}")
    return table[step.layer.op](step)
