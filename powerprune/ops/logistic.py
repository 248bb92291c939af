"""LOGISTIC: the int8 sigmoid; TFLM's integer path writes outputs in steps of 1/256 from -128."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..fixedpoint import (
    LOGISTIC_INPUT_INTEGER_BITS,
    logistic_input_params,
    logistic_q,
    multiply_by_quantized_multiplier,
    rounding_divide_by_pot,
)
from .base import Builtin, CKernel, Op, Site, TensorInfo, c_fields, check_same_shape, check_unit_output, no_macs
from .tflite_io import Subgraph, Writer


@dataclass(eq=False)
class Logistic:
    """int8 sigmoid; TFLM's integer path writes outputs in steps of 1/256 from -128."""

    output: TensorInfo
    op: str = field(default="LOGISTIC", init=False)


def check(layer: Logistic, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    check_same_shape(inp, layer.output, site)
    check_unit_output(layer.output, site)
    if float(np.float32(inp.scale)) * 2.0 ** (31 - LOGISTIC_INPUT_INTEGER_BITS) < 0.5:
        raise site.error(f"scale {inp.scale:g} is below 2^-28, which TFLM's int8 logistic cannot rescale", "input")


def run(layer: Logistic, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """TFLM's integer logistic: inputs beyond +-radius saturate, the rest are rescaled to Q4.27,
    go through gemmlowp's fixed-point logistic and are rounded to 1/256 steps from -128."""
    (x,), (inp,) = args, inputs
    multiplier, shift, radius = logistic_input_params(inp.scale)
    v = x.astype(np.int64) - inp.zero_point
    saturated = np.where(v <= -radius, -128, 127)  # input 0 with radius 0 lands on -128, as in TFLM
    if radius == 0:
        return saturated.astype(np.int8)
    inside = np.clip(v, 1 - radius, radius - 1)  # |v| < radius keeps the Q4.27 rescale within int32
    q = logistic_q(multiply_by_quantized_multiplier(inside, multiplier, shift), LOGISTIC_INPUT_INTEGER_BITS)
    mid = np.clip(rounding_divide_by_pot(q, 31 - 8) - 128, -128, 127)
    return np.where((v > -radius) & (v < radius), mid, saturated).astype(np.int8)


def export(layer: Logistic, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    w.op(fb.BuiltinOperator.LOGISTIC, [reads[0]], [out], fb.BuiltinOptions.NONE, None)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Logistic:
    return Logistic(out)



def c_values(layer: Logistic, inputs: tuple[TensorInfo, ...]) -> dict[str, int | float]:
    inp = inputs[0]
    mult, shift, radius = logistic_input_params(inp.scale)
    return {"size": inp.size, "input_zero_point": inp.zero_point, "input_range_radius": radius,
            "input_multiplier": mult, "input_shift": shift}


OP = Op(Logistic, (Builtin(fb.BuiltinOperator.LOGISTIC, None, 1),), arity=1, weighted=False,
        check=check, run=run, run_f32=None, macs=no_macs, export=export, import_=import_,
        c=CKernel("pp_logistic_t", c_fields("int32_t", "size", "input_zero_point", "input_range_radius",
                                           "input_multiplier", "input_shift"), "pp_logistic", c_values))
