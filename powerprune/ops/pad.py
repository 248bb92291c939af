"""PAD: constant padding with the zero point (the padded value is real 0), int8."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from .base import Builtin, CKernel, Op, Site, TensorInfo, c_fields, no_macs
from .tflite_io import Subgraph, TFLiteError, Writer, int32_constant


@dataclass(eq=False)
class Pad:
    """Constant padding with the zero point (the padded value is real 0): ``paddings`` holds
    (before, after) for every axis of the input (batch left out)."""

    paddings: tuple[tuple[int, int], ...]
    output: TensorInfo
    op: str = field(default="PAD", init=False)


def check(layer: Pad, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    if len(layer.paddings) != len(inp.shape) or any(len(p) != 2 for p in layer.paddings):
        raise site.error(f"needs one (before, after) pair per input axis, got {layer.paddings}", "input")
    if any(v < 0 for p in layer.paddings for v in p):
        raise site.error(f"negative paddings {layer.paddings} are not supported", "input")
    want = tuple(n + a + b for n, (a, b) in zip(inp.shape, layer.paddings, strict=True))
    if out.shape != want:
        raise site.error(f"shape {out.shape}, but input {inp.shape} padded by {layer.paddings} gives {want}",
                         "output")
    if (inp.scale, inp.zero_point) != (out.scale, out.zero_point):
        raise site.error("scale and zero point differ from the input's; TFLM's PAD copies int8 values "
                         "unchanged, so both must be the same", "output")


def run(layer: Pad, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """Constant padding with the output zero point (TFLM's PAD without a constant_values input)."""
    (x,) = args
    return np.pad(x, ((0, 0), *layer.paddings), constant_values=layer.output.zero_point)


def export(layer: Pad, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    paddings = w.int32_constant(f"layer{i}/paddings", np.array(((0, 0), *layer.paddings)))  # batch: none
    w.op(fb.BuiltinOperator.PAD, [reads[0], paddings], [out], fb.BuiltinOptions.PadOptions, fb.PadOptionsT())


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Pad:
    """PAD's (before, after) per axis, batch left out (it must not be padded)."""
    if len(op.inputs) > 2:
        raise TFLiteError(f"{where}: a constant_values input is not supported; PAD pads with the zero point")
    rank = len(g.tensors[op.inputs[0]].shape)
    pads = int32_constant(g, op, 1, "paddings", where)
    label = g.label(op.inputs[1], "paddings")
    if pads.shape != (rank, 2) or rank > 4:
        raise TFLiteError(f"{where}: {label} have shape {pads.shape}; TFLM needs (rank, 2) for an input of rank "
                          f"{rank} <= 4")
    if pads[0].any() and rank > 1:
        raise TFLiteError(f"{where}: {label} pad the batch axis ({pads[0].tolist()}), which powerprune does not "
                          "support")
    rows = pads[1:] if rank > 1 else pads
    return Pad(tuple((int(a), int(b)) for a, b in rows), out)



def _as_hwc(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """A tensor of rank <= 3 as H x W x C, leading axes of size 1 added."""
    return (1,) * (3 - len(shape)) + tuple(shape)


def c_values(layer: Pad, inputs: tuple[TensorInfo, ...]) -> dict[str, int | float]:
    inp, out = inputs[0], layer.output
    (ih, iw, ic), (oh, ow, oc) = _as_hwc(inp.shape), _as_hwc(out.shape)
    top, left, front = (before for before, _ in ((0, 0),) * (3 - len(layer.paddings)) + layer.paddings)
    return {"in_h": ih, "in_w": iw, "in_c": ic, "out_h": oh, "out_w": ow, "out_c": oc, "pad_top": top,
            "pad_left": left, "pad_front": front, "pad_value": out.zero_point}


OP = Op(Pad, (Builtin(fb.BuiltinOperator.PAD, None, 2),), arity=1, weighted=False,
        check=check, run=run, run_f32=None, macs=no_macs, export=export, import_=import_,
        c=CKernel("pp_pad_t", (*c_fields("int16_t", "in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "pad_top",
                                       "pad_left", "pad_front"), ("pad_value", "int32_t")), "pp_pad", c_values))
