"""RESHAPE: the same values in another shape; int8 or float32, nothing is computed."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from .base import Builtin, Op, Site, TensorInfo, no_macs
from .tflite_io import Subgraph, Writer


@dataclass(eq=False)
class Reshape:
    output: TensorInfo
    op: str = field(default="RESHAPE", init=False)


def check(layer: Reshape, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    if inp.size != layer.output.size:
        raise site.error(f"reshape {inp.shape} -> {layer.output.shape} changes the size")


def run(layer: Reshape, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """Both dtypes: a view with the output shape."""
    (x,) = args
    return x.reshape((len(x),) + layer.output.shape)


def export(layer: Reshape, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    """The new shape both as a constant input and in the options, as the converter writes it."""
    new_shape = np.array((1,) + layer.output.shape, "<i4")
    shape_t = w.int32_constant(f"layer{i}/shape", new_shape)
    opt = fb.ReshapeOptionsT()
    opt.newShape = [int(v) for v in new_shape]
    w.op(fb.BuiltinOperator.RESHAPE, [reads[0], shape_t], [out], fb.BuiltinOptions.ReshapeOptions, opt)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Reshape:
    """The output tensor's shape is the new shape; the shape input and options need not be read."""
    return Reshape(out)


OP = Op(Reshape, (Builtin(fb.BuiltinOperator.RESHAPE, None, 1),), arity=1, weighted=False,
        check=check, run=run, run_f32=run, macs=no_macs, export=export, import_=import_)
