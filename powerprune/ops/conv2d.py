"""CONV_2D: a 2-D convolution over an HWC tensor with OHWI weights, int8 (per-channel weight scales) or
float32, a fused activation."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from ..counts import layer_macs
from .base import Activation, Builtin, Op, Site, TensorInfo, check_weights, check_window
from .kernels import activate_f32, finish, pad_for_window, windows
from .tflite_io import Subgraph, Writer, export_conv, import_conv


@dataclass(eq=False)
class Conv2D:
    weights: np.ndarray            # int8 (O, KH, KW, I)
    bias: np.ndarray               # int32 (O,)
    weight_scales: np.ndarray      # float32 (O,) per channel
    stride: tuple[int, int]
    padding: str                   # "SAME" | "VALID"
    activation: Activation
    output: TensorInfo
    op: str = field(default="CONV_2D", init=False)


def check(layer: Conv2D, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    check_window(layer, layer.weights.shape[1:3], inp, site)
    if layer.weights.shape[3] != inp.shape[2] or layer.weights.shape[0] != out.shape[2]:
        raise site.error(f"weights {layer.weights.shape} do not fit {inp.shape} -> {out.shape}")
    check_weights(layer, 0, site)


def run(layer: Conv2D, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """int8 im2col: one float64 matmul (exact, see ``powerprune.reference``), then TFLM's requantization."""
    (x,), (inp,) = args, inputs
    o, kh, kw, _ = layer.weights.shape
    xs = pad_for_window(x.astype(np.float64) - inp.zero_point, layer, kh, kw, 0)
    win = windows(xs, kh, kw, layer.stride)                       # N, OH, OW, C, KH, KW
    n, oh, ow = win.shape[:3]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n * oh * ow, -1)  # KH, KW, C order = OHWI
    acc = cols @ layer.weights.reshape(o, -1).T.astype(np.float64)
    acc = acc.reshape(n, oh, ow, o).astype(np.int64) + layer.bias
    return finish(acc, layer, inp)


def run_f32(layer: Conv2D, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """float32 in TFLM's tap order (filter y, filter x, input channel), one rounded add at a time."""
    (x,), (inp,) = args, inputs
    kh, kw = layer.weights.shape[1:3]
    out_c = layer.output.shape[2]
    win = windows(pad_for_window(x, layer, kh, kw, 0.0), kh, kw, layer.stride)  # N, OH, OW, C, KH, KW
    acc = np.zeros(win.shape[:3] + (out_c,), np.float32)
    for ky in range(kh):
        for kx in range(kw):
            for ic in range(inp.shape[2]):
                acc += win[:, :, :, ic, ky, kx, None] * layer.weights[:, ky, kx, ic]
    return activate_f32(acc + layer.bias, layer.activation)


def macs(layer: Conv2D, inputs: tuple[TensorInfo, ...]) -> int:
    """Every weight once per output pixel (``counts.layer_macs``, the one MAC formula)."""
    return layer_macs(layer.weights.size, layer.output.shape, layer.op)


def export(layer: Conv2D, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    export_conv(layer, w, i, reads, inputs, out, depthwise=False)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Conv2D:
    return import_conv(Conv2D, g, op, out, where, depthwise=False)


OP = Op(Conv2D, (Builtin(fb.BuiltinOperator.CONV_2D, fb.BuiltinOptions.Conv2DOptions, 2),), arity=1, weighted=True,
        check=check, run=run, run_f32=run_f32, macs=macs, export=export, import_=import_)
