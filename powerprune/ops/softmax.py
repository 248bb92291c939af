"""SOFTMAX: softmax(beta x) over the last axis. int8: TFLM's integer algorithm (output quantized with
scale 1/256 and zero point -128); float32: TFLM's float kernel with the C library's expf, what the
paper's network ends with."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..fixedpoint import (
    SOFTMAX_DIFF_INTEGER_BITS,
    SOFTMAX_SUM_INTEGER_BITS,
    count_leading_zeros32,
    exp_on_negative_values,
    one_over_one_plus_x_for_x_in_0_1,
    rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
    softmax_input_params,
    softmax_real_multiplier,
    wrap32,
)
from .base import Builtin, CKernel, Op, Site, TensorInfo, c_fields, check_same_shape, check_unit_output, no_macs
from .kernels import F32_LOWEST
from .tflite_io import Subgraph, Writer

SOFTMAX_MAX_DEPTH = 4095  # 4096 exps of 1.0 would overflow the int32 Q12.19 sum


@dataclass(eq=False)
class Softmax:
    """softmax(beta x) over the last axis, in the dtype of its tensors. int8: TFLM's integer algorithm,
    which needs the output quantized with scale 1/256 and zero point -128 (``validate``); float32:
    TFLM's float kernel with expf, what the paper's network ends with."""

    beta: float
    output: TensorInfo
    op: str = field(default="SOFTMAX", init=False)


def check(layer: Softmax, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    check_same_shape(inp, out, site)
    check_unit_output(out, site)
    if not (np.isfinite(layer.beta) and layer.beta > 0):
        raise site.error(f"beta must be finite and > 0, got {layer.beta}", "output")
    if out.is_float:
        return  # TFLM's float softmax has no quantization to constrain
    if inp.shape[-1] > SOFTMAX_MAX_DEPTH:
        raise site.error(f"{inp.shape[-1]} values per row; TFLM's int8 softmax sums at most {SOFTMAX_MAX_DEPTH} "
                         "in its int32 accumulator", "input")
    real = softmax_real_multiplier(layer.beta, inp.scale)
    if real <= 1.0:
        raise site.error(f"beta x scale = {real / 2**26:g} is not above 2^-26, which TFLM's int8 softmax needs "
                         "(its input multiplier must exceed 1)", "input")


class SoftmaxAbort(ValueError):
    """An input on which TFLM's int8 softmax stops with a failed TFLITE_CHECK instead of an output."""


def run(layer: Softmax, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """TFLM's integer softmax, row by row over the last axis: differences to the row maximum, rescaled
    by beta x input scale to Q5.26, exp in fixed point, their sum in Q12.19, its reciprocal, and each
    exp times the reciprocal rounded to 1/256 steps. Differences below diff_min count as exp = 0."""
    (x,), (inp,) = args, inputs
    multiplier, shift, diff_min = softmax_input_params(layer.beta, inp.scale)
    rows = x.reshape(-1, x.shape[-1]).astype(np.int64)
    diff = rows - rows.max(axis=1, keepdims=True)
    counts = diff >= diff_min
    scaled = saturating_rounding_doubling_high_mul(wrap32(diff * (1 << shift)), multiplier)
    exps = exp_on_negative_values(scaled, SOFTMAX_DIFF_INTEGER_BITS)                        # Q0.31
    terms = rounding_divide_by_pot(exps, SOFTMAX_SUM_INTEGER_BITS)                          # Q12.19
    total = wrap32(np.where(counts, terms, 0).sum(axis=1, keepdims=True))
    headroom = count_leading_zeros32(total)
    bits_over_unit = SOFTMAX_SUM_INTEGER_BITS - headroom
    reciprocal = one_over_one_plus_x_for_x_in_0_1(wrap32((total << headroom) - (1 << 31)))
    exponent = bits_over_unit + 31 - 8
    if (exponent > 31).any():
        raise SoftmaxAbort("the exponentials of a row sum to 512 or more, where TFLM's int8 softmax fails a "
                           "TFLITE_CHECK: it has no output for this input")
    out = rounding_divide_by_pot(saturating_rounding_doubling_high_mul(reciprocal, exps), exponent) - 128
    out = np.where(counts, np.clip(out, -128, 127), -128)
    return out.astype(np.int8).reshape(x.shape)


@functools.cache
def _libm_expf():
    name = ctypes.util.find_library("m") or "libm.so.6"
    f = ctypes.CDLL(name).expf
    f.restype, f.argtypes = ctypes.c_float, [ctypes.c_float]
    return f


def expf(x: np.ndarray) -> np.ndarray:
    """The C library's expf element by element (numpy's own float32 exp rounds differently)."""
    f = _libm_expf()
    flat = np.asarray(x, np.float32).ravel()
    return np.fromiter((f(float(v)) for v in flat), np.float32, len(flat)).reshape(np.shape(x))


def softmax_arguments(x: np.ndarray, beta: float) -> np.ndarray:
    """What TFLM's float softmax passes to expf, row by row over the last axis: (x - row max) * beta."""
    rows = x.reshape(-1, x.shape[-1])
    top = np.full(len(rows), F32_LOWEST, np.float32)
    for c in range(rows.shape[1]):
        top = np.where(top < rows[:, c], rows[:, c], top)
    return (rows - top[:, None]) * np.float32(beta)


def softmax_from_exponentials(e: np.ndarray) -> np.ndarray:
    """The rest of TFLM's float softmax: the exponentials (rows x depth) summed in order, each divided."""
    total = np.zeros(len(e), np.float32)
    for c in range(e.shape[1]):
        total += e[:, c]
    return e / total[:, None]


def run_f32(layer: Softmax, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    (x,) = args
    return softmax_from_exponentials(expf(softmax_arguments(x, layer.beta))).reshape(x.shape)


def export(layer: Softmax, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    opt = fb.SoftmaxOptionsT()
    opt.beta = float(layer.beta)
    w.op(fb.BuiltinOperator.SOFTMAX, [reads[0]], [out], fb.BuiltinOptions.SoftmaxOptions, opt)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Softmax:
    return Softmax(float(np.float32(op.builtinOptions.beta)), out)



def c_values(layer: Softmax, inputs: tuple[TensorInfo, ...]) -> dict[str, int | float]:
    inp = inputs[0]
    mult, shift, diff_min = softmax_input_params(layer.beta, inp.scale)
    return {"rows": inp.size // inp.shape[-1], "depth": inp.shape[-1], "input_multiplier": mult,
            "input_left_shift": shift, "diff_min": diff_min}


OP = Op(Softmax, (Builtin(fb.BuiltinOperator.SOFTMAX, fb.BuiltinOptions.SoftmaxOptions, 1),), arity=1,
        weighted=False, check=check, run=run, run_f32=run_f32, macs=no_macs, export=export, import_=import_,
        c=CKernel("pp_softmax_t", c_fields("int32_t", "rows", "depth", "input_multiplier", "input_left_shift",
                                          "diff_min"), "pp_softmax", c_values))
