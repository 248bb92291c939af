"""QUANTIZE: float32 -> int8 (the first layer of a float-input model) or int8 -> int8 with other
quantization parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..fixedpoint import multiply_by_quantized_multiplier, round_half_away, wrap32
from .base import Builtin, CKernel, Op, Site, TensorInfo, c_fields, check_same_shape, no_macs, requantize_multiplier
from .tflite_io import Subgraph, Writer


@dataclass(eq=False)
class Quantize:
    """float32 -> int8 (the first layer of a float-input model) or int8 -> int8 with other
    quantization parameters."""

    output: TensorInfo
    op: str = field(default="QUANTIZE", init=False)


def check(layer: Quantize, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    check_same_shape(inp, out, site)
    if not inp.is_float and requantize_multiplier(inp, out)[1] > 30:
        raise site.error(f"input scale / output scale = {inp.scale / out.scale:g} is too large for int8 "
                         "requantization", "output")


def run(layer: Quantize, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """float32 -> int8: round(x / scale) (float32 division, half away from zero) + zero point, clamped;
    int8 -> int8: TFLM's Requantize with the multiplier of input scale / output scale."""
    (x,), (inp,) = args, inputs
    out = layer.output
    if inp.is_float:
        with np.errstate(invalid="ignore", over="ignore"):
            q = round_half_away(x.astype(np.float32) / np.float32(out.scale))
            # TFLM casts the rounded float to int32: undefined in C++ when out of range (or NaN); on the
            # x86 host the oracle runs on, that yields INT32_MIN, which the zero point then wraps
            v = np.where((q >= -(2.0**31)) & (q < 2.0**31), q, -(2.0**31)).astype(np.int64)
        return np.clip(wrap32(v + out.zero_point), -128, 127).astype(np.int8)
    multiplier, shift = requantize_multiplier(inp, out)
    v = multiply_by_quantized_multiplier(x.astype(np.int64) - inp.zero_point, multiplier, shift) + out.zero_point
    return np.clip(v, -128, 127).astype(np.int8)


def export(layer: Quantize, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    w.op(fb.BuiltinOperator.QUANTIZE, [reads[0]], [out], fb.BuiltinOptions.NONE, None)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Quantize:
    return Quantize(out)



# QUANTIZE's and DEQUANTIZE's descriptor (one struct, kernels/stock_ops.c)
QUANT_FIELDS = (*c_fields("int32_t", "size", "input_zero_point", "output_zero_point", "multiplier", "shift"),
                ("scale", "float"))


def quant_values(layer: Quantize, inputs: tuple[TensorInfo, ...]) -> dict[str, int | float]:
    """QUANTIZE and DEQUANTIZE: an int8 -> int8 requantization takes multiplier and shift, a
    conversion from or to float32 the int8 side's scale."""
    inp, out = inputs[0], layer.output
    mult, shift = requantize_multiplier(inp, out) if not (inp.is_float or out.is_float) else (0, 0)
    scale = inp.scale if layer.op == "DEQUANTIZE" else out.scale
    return {"size": inp.size, "input_zero_point": inp.zero_point, "output_zero_point": out.zero_point,
            "multiplier": mult, "shift": shift, "scale": float(scale)}


OP = Op(Quantize, (Builtin(fb.BuiltinOperator.QUANTIZE, None, 1),), arity=1, weighted=False,
        check=check, run=run, run_f32=None, macs=no_macs, export=export, import_=import_, reads_float=True,
        c=CKernel("pp_quant_t", QUANT_FIELDS, "pp_quantize", quant_values,
                kernel_for=lambda layer, inputs: "pp_quantize" if inputs[0].is_float else "pp_requantize"))
