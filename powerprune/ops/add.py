"""ADD: the elementwise sum of two int8 tensors of one shape (no broadcasting), each rescaled to a
common scale first, with a fused activation; the op that makes residual networks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from .base import Activation, Builtin, CKernel, Op, Site, TensorInfo, add_requantization, c_fields, no_macs
from .tflite_io import ACT_CODE, Subgraph, TFLiteError, Writer, fused_activation


@dataclass(eq=False)
class Add:
    """Elementwise sum of two int8 tensors of the same shape (TFLite ADD without broadcasting), each
    input rescaled to a common scale first; the fused activation clamps the result. It has no
    weights: its requantization comes from the three tensors' scales (``add_requantization``)."""

    activation: Activation
    output: TensorInfo
    op: str = field(default="ADD", init=False)


def check(layer: Add, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    """Equal shapes (no broadcasting) and scales TFLM's ADD accepts: its Prepare stops on an
    output multiplier >= 1, i.e. an output scale below max(input scales) / 2^19."""
    a, b = inputs
    if not a.shape == b.shape == layer.output.shape:
        raise site.error(f"adds tensors {list(site.reads)} of shapes {a.shape} and {b.shape} into "
                         f"{layer.output.shape}; the shapes must be equal (broadcasting is not supported)")
    rq = add_requantization(a, b, layer.output)
    if max(rq.output_shift, *rq.input_shifts) > 0:
        raise site.error(f"output scale {layer.output.scale:g} is too small for input scales "
                         f"{a.scale:g} and {b.scale:g} (int8 ADD needs output scale > max input scale / 2^19)")


def run(layer: Add, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """TFLM's int8 ADD, step for step: offset and shift each input up by 2^20, scale each to the
    common scale (a rounding multiply), add, scale the sum to the output (a second rounding), add
    the output zero point, clamp (``AddRequant``). Every intermediate fits int32, so int64 here is exact."""
    (a, b), (ta, tb) = args, inputs
    rq = add_requantization(ta, tb, layer.output)
    total = rq.scaled_input(0, a) + rq.scaled_input(1, b)
    return rq.output(total, layer.activation.min, layer.activation.max).astype(np.int8)


def export(layer: Add, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    opt = fb.AddOptionsT()
    opt.fusedActivationFunction = ACT_CODE[layer.activation.kind]
    w.op(fb.BuiltinOperator.ADD, list(reads), [out], fb.BuiltinOptions.AddOptions, opt)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Add:
    (a, la), (b, lb) = (g.tensor(t, f"input {k + 1}", where) for k, t in enumerate(op.inputs[:2]))
    sa, sb = ([int(d) for d in t.shape] for t in (a, b))
    if sa != sb:
        raise TFLiteError(f"{where}: {la} has shape {sa} and {lb} {sb}; only ADD of equal shapes is "
                          "supported (no broadcasting)")
    return Add(fused_activation(op, out, where), out)



def c_values(layer: Add, inputs: tuple[TensorInfo, ...]) -> dict[str, int | float]:
    """TFLM's arithmetic ADD (what the baselines run; our sets run a table-driven one, mcu/lowering.py)."""
    rq = add_requantization(*inputs, layer.output)
    return {"size": layer.output.size, "left_shift": rq.left_shift,
            "input1_offset": rq.input_offsets[0], "input1_multiplier": rq.input_multipliers[0],
            "input1_shift": rq.input_shifts[0], "input2_offset": rq.input_offsets[1],
            "input2_multiplier": rq.input_multipliers[1], "input2_shift": rq.input_shifts[1],
            "output_offset": rq.output_offset, "output_multiplier": rq.output_multiplier,
            "output_shift": rq.output_shift, "act_min": layer.activation.min, "act_max": layer.activation.max}


OP = Op(Add, (Builtin(fb.BuiltinOperator.ADD, fb.BuiltinOptions.AddOptions, 2),), arity=2, weighted=False,
        check=check, run=run, run_f32=None, macs=no_macs, export=export, import_=import_,
        c=CKernel("pp_add_t", c_fields(
            "int32_t", "size", "left_shift", "input1_offset", "input1_multiplier", "input1_shift", "input2_offset",
            "input2_multiplier", "input2_shift", "output_offset", "output_multiplier", "output_shift", "act_min",
            "act_max"), "pp_add", c_values))
