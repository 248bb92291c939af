"""MEAN over height and width of an HWC tensor (global average pooling as converters write it): int8,
output (1, 1, C) with ``keep_dims``, else (C,)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..fixedpoint import multiply_by_quantized_multiplier, wrap32
from .base import Builtin, CKernel, Op, Site, TensorInfo, c_fields, mean_multiplier, no_macs
from .tflite_io import Subgraph, TFLiteError, Writer, int32_constant


@dataclass(eq=False)
class Mean:
    """Mean over height and width of an HWC tensor: output (1, 1, C) with ``keep_dims``, else (C,)."""

    keep_dims: bool
    output: TensorInfo
    op: str = field(default="MEAN", init=False)


def check(layer: Mean, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    if len(inp.shape) != 3:
        raise site.error(f"shape {inp.shape}: MEAN averages height and width of an NHWC tensor", "input")
    want = (1, 1, inp.shape[2]) if layer.keep_dims else (inp.shape[2],)
    if out.shape != want:
        raise site.error(f"shape {out.shape}, expected {want} (keep_dims={layer.keep_dims})", "output")


def run(layer: Mean, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """TFLM's int8 MEAN over H and W: the int32 sum of each channel minus n x input zero point,
    requantized with 1/n folded into the multiplier (``mean_multiplier``), plus the output zero point."""
    (x,), (inp,) = args, inputs
    n = inp.shape[0] * inp.shape[1]
    centered = wrap32(x.astype(np.int64).sum(axis=(1, 2)) - inp.zero_point * n)
    multiplier, shift = mean_multiplier(inp, layer.output)
    out = multiply_by_quantized_multiplier(centered, multiplier, shift) + layer.output.zero_point
    return np.clip(out, -128, 127).astype(np.int8).reshape((len(x),) + layer.output.shape)


def export(layer: Mean, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    axes = w.int32_constant(f"layer{i}/axes", np.array([1, 2]))  # H and W of the NHWC input
    opt = fb.ReducerOptionsT()
    opt.keepDims = bool(layer.keep_dims)
    w.op(fb.BuiltinOperator.MEAN, [reads[0], axes], [out], fb.BuiltinOptions.ReducerOptions, opt)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Mean:
    """MEAN must reduce exactly H and W of a 4-D NHWC input (axes 1 and 2, or -3 and -2); its options
    are optional (keep_dims defaults to false)."""
    rank = len(g.tensors[op.inputs[0]].shape)
    axes = int32_constant(g, op, 1, "axes", where).ravel()
    resolved = {int(a) + rank if a < 0 else int(a) for a in axes}
    if rank != 4 or resolved != {1, 2}:
        raise TFLiteError(f"{where}: {g.label(op.inputs[1], 'axes')} are {axes.tolist()} on a {rank}-D input; "
                          "powerprune supports MEAN over height and width of an NHWC tensor (axes [1, 2])")
    opt = op.builtinOptions
    if opt is not None and op.builtinOptionsType != fb.BuiltinOptions.ReducerOptions:
        raise TFLiteError(f"{where}: its builtin options are of the wrong type")
    return Mean(bool(opt.keepDims) if opt is not None else False, out)



def c_values(layer: Mean, inputs: tuple[TensorInfo, ...]) -> dict[str, int | float]:
    inp, out = inputs[0], layer.output
    mult, shift = mean_multiplier(inp, out)
    return {"in_h": inp.shape[0], "in_w": inp.shape[1], "channels": inp.shape[2],
            "input_zero_point": inp.zero_point, "output_zero_point": out.zero_point, "multiplier": mult,
            "shift": shift}


OP = Op(Mean, (Builtin(fb.BuiltinOperator.MEAN, None, 2),), arity=1, weighted=False,
        check=check, run=run, run_f32=None, macs=no_macs, export=export, import_=import_,
        c=CKernel("pp_mean_t", (*c_fields("int16_t", "in_h", "in_w", "channels"),
                              *c_fields("int32_t", "input_zero_point", "output_zero_point", "multiplier", "shift")),
                "pp_mean", c_values))
