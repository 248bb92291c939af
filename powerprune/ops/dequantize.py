"""DEQUANTIZE: int8 -> float32, the last layer of a float-output model."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from .base import Builtin, CKernel, Op, Site, TensorInfo, check_same_shape, no_macs
from .quantize import QUANT_FIELDS, quant_values
from .tflite_io import Subgraph, Writer


@dataclass(eq=False)
class Dequantize:
    """int8 -> float32: the last layer of a float-output model."""

    output: TensorInfo
    op: str = field(default="DEQUANTIZE", init=False)


def check(layer: Dequantize, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    check_same_shape(inputs[0], layer.output, site)


def run(layer: Dequantize, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """scale x (q - zero point) as one float32 multiplication, as TFLM's reference Dequantize."""
    (x,), (inp,) = args, inputs
    return (np.float32(inp.scale) * (x.astype(np.float32) - np.float32(inp.zero_point))).astype(np.float32)


def export(layer: Dequantize, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...],
           out: int) -> None:
    w.op(fb.BuiltinOperator.DEQUANTIZE, [reads[0]], [out], fb.BuiltinOptions.NONE, None)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Dequantize:
    return Dequantize(out)



OP = Op(Dequantize, (Builtin(fb.BuiltinOperator.DEQUANTIZE, None, 1),), arity=1, weighted=False,
        check=check, run=run, run_f32=None, macs=no_macs, export=export, import_=import_, writes_float=True,
        c=CKernel("pp_quant_t", QUANT_FIELDS, "pp_dequantize", quant_values))
