"""DEPTHWISE_CONV_2D: each input channel convolved with its own ``multiplier`` filters (weights
(1, KH, KW, I x multiplier)), int8 or float32, a fused activation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..counts import layer_macs
from .base import Activation, Builtin, Op, Site, TensorInfo, check_weights, check_window
from .kernels import activate_f32, finish, pad_for_window, windows
from .tflite_io import Subgraph, Writer, export_conv, import_conv


@dataclass(eq=False)
class DepthwiseConv2D:
    weights: np.ndarray            # int8 (1, KH, KW, O), O = I x multiplier
    bias: np.ndarray
    weight_scales: np.ndarray
    stride: tuple[int, int]
    padding: str
    activation: Activation
    output: TensorInfo
    op: str = field(default="DEPTHWISE_CONV_2D", init=False)


def check(layer: DepthwiseConv2D, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    check_window(layer, layer.weights.shape[1:3], inp, site)
    if layer.weights.shape[3] != out.shape[2] or out.shape[2] % inp.shape[2]:
        raise site.error(f"weights {layer.weights.shape} do not fit {inp.shape} -> {out.shape}")
    check_weights(layer, 3, site)


def run(layer: DepthwiseConv2D, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    (x,), (inp,) = args, inputs
    _, kh, kw, o = layer.weights.shape
    mult = o // x.shape[3]
    xs = pad_for_window(x.astype(np.float64) - inp.zero_point, layer, kh, kw, 0)
    win = windows(xs, kh, kw, layer.stride)                       # N, OH, OW, C, KH, KW
    win = np.repeat(win, mult, axis=3)                            # output channel o reads input o // mult
    acc = np.einsum("nhwokl,klo->nhwo", win, layer.weights[0].astype(np.float64))
    return finish(acc.astype(np.int64) + layer.bias, layer, inp)


def run_f32(layer: DepthwiseConv2D, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """float32 one tap at a time over all output channels: channel o reads input channel o // multiplier."""
    (x,), (inp,) = args, inputs
    kh, kw = layer.weights.shape[1:3]
    out_c = layer.output.shape[2]
    win = windows(pad_for_window(x, layer, kh, kw, 0.0), kh, kw, layer.stride)  # N, OH, OW, C, KH, KW
    acc = np.zeros(win.shape[:3] + (out_c,), np.float32)
    src = np.arange(out_c) // (out_c // inp.shape[2])
    for ky in range(kh):
        for kx in range(kw):
            acc += win[:, :, :, src, ky, kx] * layer.weights[0, ky, kx]
    return activate_f32(acc + layer.bias, layer.activation)


def macs(layer: DepthwiseConv2D, inputs: tuple[TensorInfo, ...]) -> int:
    """Every weight once per output pixel (``counts.layer_macs``, the one MAC formula)."""
    return layer_macs(layer.weights.size, layer.output.shape, layer.op)


def export(layer: DepthwiseConv2D, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...],
           out: int) -> None:
    export_conv(layer, w, i, reads, inputs, out, depthwise=True)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> DepthwiseConv2D:
    return import_conv(DepthwiseConv2D, g, op, out, where, depthwise=True)


OP = Op(DepthwiseConv2D,
        (Builtin(fb.BuiltinOperator.DEPTHWISE_CONV_2D, fb.BuiltinOptions.DepthwiseConv2DOptions, 2),),
        arity=1, weighted=True, check=check, run=run, run_f32=run_f32, macs=macs, export=export, import_=import_)
