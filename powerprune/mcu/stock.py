"""The lowering of the stock ops: ops without weights whose one C kernel every kernel set shares
(kernels/stock_ops.c, and TFLM's arithmetic ADD in kernels/add.c, which the baselines run).

Each op is one ``StockLowering``: the descriptor struct it fills (name and fields, as declared in
``kernels/pp_kernels.h``), the C function it calls and a pure function from the layer and its input
tensors to the field values. Every parameter is derived from the tensors' scales here, as TFLM
derives it at Prepare time. A lowering imports nothing from ``mcu`` but ``cgen``, so it can live in
its op's module unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..fixedpoint import logistic_input_params, softmax_input_params
from ..ir import Layer, TensorInfo, add_requantization, mean_multiplier, requantize_multiplier
from .cgen import Struct, c_float, fields

Values = dict[str, int | str]


@dataclass(frozen=True)
class StockLowering:
    """How one stock op becomes C: ``struct`` filled with ``values(layer, inputs)``, then
    ``<kernel>_stock(&descriptor, inputs..., output, scratch)``."""

    op: str
    struct: Struct
    kernel: str
    values: Callable[[Layer, Sequence[TensorInfo]], Values]
    # for an op whose C function depends on its tensors' dtypes: picks it in place of ``kernel``
    kernel_for: Callable[[Layer, Sequence[TensorInfo]], str] | None = None

    def kernel_name(self, layer: Layer, inputs: Sequence[TensorInfo]) -> str:
        return self.kernel if self.kernel_for is None else self.kernel_for(layer, inputs)


def _as_hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A tensor of rank <= 3 as H x W x C, leading axes of size 1 added."""
    return (1,) * (3 - len(shape)) + tuple(shape)


def _add(layer: Layer, inputs: Sequence[TensorInfo]) -> Values:
    rq = add_requantization(*inputs, layer.output)
    return {"size": layer.output.size, "left_shift": rq.left_shift,
            "input1_offset": rq.input_offsets[0], "input1_multiplier": rq.input_multipliers[0],
            "input1_shift": rq.input_shifts[0], "input2_offset": rq.input_offsets[1],
            "input2_multiplier": rq.input_multipliers[1], "input2_shift": rq.input_shifts[1],
            "output_offset": rq.output_offset, "output_multiplier": rq.output_multiplier,
            "output_shift": rq.output_shift, "act_min": layer.activation.min, "act_max": layer.activation.max}


def _softmax(layer: Layer, inputs: Sequence[TensorInfo]) -> Values:
    inp = inputs[0]
    mult, shift, diff_min = softmax_input_params(layer.beta, inp.scale)
    return {"rows": inp.size // inp.shape[-1], "depth": inp.shape[-1], "input_multiplier": mult,
            "input_left_shift": shift, "diff_min": diff_min}


def _logistic(layer: Layer, inputs: Sequence[TensorInfo]) -> Values:
    inp = inputs[0]
    mult, shift, radius = logistic_input_params(inp.scale)
    return {"size": inp.size, "input_zero_point": inp.zero_point, "input_range_radius": radius,
            "input_multiplier": mult, "input_shift": shift}


def _mean(layer: Layer, inputs: Sequence[TensorInfo]) -> Values:
    inp, out = inputs[0], layer.output
    mult, shift = mean_multiplier(inp, out)
    return {"in_h": inp.shape[0], "in_w": inp.shape[1], "channels": inp.shape[2],
            "input_zero_point": inp.zero_point, "output_zero_point": out.zero_point, "multiplier": mult,
            "shift": shift}


def _pad(layer: Layer, inputs: Sequence[TensorInfo]) -> Values:
    inp, out = inputs[0], layer.output
    (ih, iw, ic), (oh, ow, oc) = _as_hwc(inp.shape), _as_hwc(out.shape)
    top, left, front = (before for before, _ in ((0, 0),) * (3 - len(layer.paddings)) + layer.paddings)
    return {"in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "pad_top": top,
            "pad_left": left, "pad_front": front, "pad_value": out.zero_point}


def _quant(layer: Layer, inputs: Sequence[TensorInfo]) -> Values:
    """QUANTIZE and DEQUANTIZE: an int8 -> int8 requantization takes multiplier and shift, a
    conversion from or to float32 the int8 side's scale."""
    inp, out = inputs[0], layer.output
    mult, shift = requantize_multiplier(inp, out) if not (inp.is_float or out.is_float) else (0, 0)
    scale = inp.scale if layer.op == "DEQUANTIZE" else out.scale
    return {"size": inp.size, "input_zero_point": inp.zero_point, "output_zero_point": out.zero_point,
            "multiplier": mult, "shift": shift, "scale": c_float(scale)}


_QUANT = Struct("pp_quant_t", (*fields("int32_t", "size", "input_zero_point", "output_zero_point", "multiplier",
                                       "shift"), ("scale", "float")))

STOCK: dict[str, StockLowering] = {s.op: s for s in (
    StockLowering("ADD", Struct("pp_add_t", fields(
        "int32_t", "size", "left_shift", "input1_offset", "input1_multiplier", "input1_shift", "input2_offset",
        "input2_multiplier", "input2_shift", "output_offset", "output_multiplier", "output_shift", "act_min",
        "act_max")), "pp_add", _add),
    StockLowering("SOFTMAX", Struct("pp_softmax_t", fields(
        "int32_t", "rows", "depth", "input_multiplier", "input_left_shift", "diff_min")), "pp_softmax", _softmax),
    StockLowering("LOGISTIC", Struct("pp_logistic_t", fields(
        "int32_t", "size", "input_zero_point", "input_range_radius", "input_multiplier", "input_shift")),
        "pp_logistic", _logistic),
    StockLowering("MEAN", Struct("pp_mean_t", (
        *fields("int16_t", "in_h", "in_w", "channels"),
        *fields("int32_t", "input_zero_point", "output_zero_point", "multiplier", "shift"))), "pp_mean", _mean),
    StockLowering("PAD", Struct("pp_pad_t", (
        *fields("int16_t", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "pad_top", "pad_left", "pad_front"),
        ("pad_value", "int32_t"))), "pp_pad", _pad),
    StockLowering("QUANTIZE", _QUANT, "pp_quantize", _quant,
                  kernel_for=lambda layer, inputs: "pp_quantize" if inputs[0].is_float else "pp_requantize"),
    StockLowering("DEQUANTIZE", _QUANT, "pp_dequantize", _quant),
)}
