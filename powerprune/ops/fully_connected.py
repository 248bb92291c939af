"""FULLY_CONNECTED: (out, in) weights times the flattened input, int8 (per-tensor or per-channel weight
scales) or float32, a fused activation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..counts import layer_macs
from .base import Activation, Builtin, Op, Site, TensorInfo, check_weights
from .kernels import activate_f32, finish
from .tflite_io import ACT_CODE, Subgraph, Writer, fused_activation, read_bias, read_weights, weighted_inputs


@dataclass(eq=False)
class FullyConnected:
    weights: np.ndarray            # int8 (O, I)
    bias: np.ndarray               # int32 (O,)
    weight_scales: np.ndarray      # float32 (1,) per tensor or (O,) per channel
    activation: Activation
    output: TensorInfo
    op: str = field(default="FULLY_CONNECTED", init=False)


def check(layer: FullyConnected, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    if layer.weights.shape != (out.size, inp.size):
        raise site.error(f"weights {layer.weights.shape} do not fit {inp.size} -> {out.size}")
    check_weights(layer, 0, site)


def run(layer: FullyConnected, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    (x,), (inp,) = args, inputs
    xs = x.reshape(len(x), -1).astype(np.float64) - inp.zero_point
    acc = (xs @ layer.weights.T.astype(np.float64)).astype(np.int64) + layer.bias
    return finish(acc, layer, inp)


def run_f32(layer: FullyConnected, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """float32 in TFLM's order: input feature by input feature, one rounded add at a time."""
    (x,) = args
    xs = x.reshape(len(x), -1)
    acc = np.zeros((len(x), layer.weights.shape[0]), np.float32)
    for d in range(xs.shape[1]):
        acc += xs[:, d, None] * layer.weights[:, d]
    return activate_f32(acc + layer.bias, layer.activation)


def macs(layer: FullyConnected, inputs: tuple[TensorInfo, ...]) -> int:
    """Every weight once (``counts.layer_macs``, the one MAC formula)."""
    return layer_macs(layer.weights.size, layer.output.shape, layer.op)


def export(layer: FullyConnected, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...],
           out: int) -> None:
    weights, bias = weighted_inputs(w, i, layer, inputs[0], 0)
    opt = fb.FullyConnectedOptionsT()
    opt.fusedActivationFunction = ACT_CODE[layer.activation.kind]
    w.op(fb.BuiltinOperator.FULLY_CONNECTED, [reads[0], weights, bias], [out],
         fb.BuiltinOptions.FullyConnectedOptions, opt)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> FullyConnected:
    """The layer's output shape is (O,): one value per row of the weights."""
    wq, scales = read_weights(g, op, 2, 0, where, out.dtype)
    bias = read_bias(g, op, wq.shape[0], where, out.dtype)
    act = fused_activation(op, out, where)
    return FullyConnected(wq.copy(), bias, scales.copy(), act,
                          TensorInfo((wq.shape[0],), out.scale, out.zero_point, out.dtype))


OP = Op(FullyConnected, (Builtin(fb.BuiltinOperator.FULLY_CONNECTED, fb.BuiltinOptions.FullyConnectedOptions, 2),),
        arity=1, weighted=True, check=check, run=run, run_f32=run_f32, macs=macs, export=export, import_=import_)
