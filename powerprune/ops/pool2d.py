"""MAX_POOL_2D and AVERAGE_POOL_2D: one layer class, ``kind`` tells them apart. Pooling keeps the
channels and the quantization; int8 or float32, a fused activation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from .base import Activation, Builtin, Op, Site, TensorInfo, check_window, no_macs
from .kernels import F32_LOWEST, activate_f32, pad_for_window, windows
from .tflite_io import ACT_CODE, PAD_CODE, Subgraph, Writer, fused_activation, read_geometry


@dataclass(eq=False)
class Pool2D:
    kind: str                      # "MAX" | "AVERAGE"
    size: tuple[int, int]
    stride: tuple[int, int]
    padding: str
    activation: Activation
    output: TensorInfo

    @property
    def op(self) -> str:
        return f"{self.kind}_POOL_2D"


def check(layer: Pool2D, inputs: tuple[TensorInfo, ...], site: Site) -> None:
    (inp,) = inputs
    out = layer.output
    check_window(layer, layer.size, inp, site)
    if inp.shape[2] != out.shape[2]:
        raise site.error("pooling cannot change channels")
    if (inp.scale, inp.zero_point) != (out.scale, out.zero_point):
        raise site.error("pooling input and output must share quantization")


def run(layer: Pool2D, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    (x,) = args
    kh, kw = layer.size
    act = layer.activation
    if layer.kind == "MAX":
        xs = pad_for_window(x.astype(np.int16), layer, kh, kw, -129)  # below int8: never the max
        out = windows(xs, kh, kw, layer.stride).max(axis=(4, 5))
    else:
        valid = pad_for_window(np.ones(x.shape[:3] + (1,), np.int64), layer, kh, kw, 0)
        xs = pad_for_window(x.astype(np.int64), layer, kh, kw, 0)
        total = windows(xs, kh, kw, layer.stride).sum(axis=(4, 5))
        count = windows(valid, kh, kw, layer.stride).sum(axis=(4, 5))
        # TFLM rounds the average half away from zero with integer division
        half = count // 2
        out = np.where(total > 0, (total + half) // count, -((-total + half) // count))
    return np.clip(out, act.min, act.max).astype(np.int8)


def run_f32(layer: Pool2D, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """TFLM clamps the window to the image; a pad that can never win (max) or adds +0 (average) is the
    same, and the average divides by the number of real taps."""
    (x,) = args
    kh, kw = layer.size
    if layer.kind == "MAX":
        win = windows(pad_for_window(x, layer, kh, kw, -np.inf), kh, kw, layer.stride)
        out = np.full(win.shape[:4], F32_LOWEST, np.float32)
        for ky in range(kh):
            for kx in range(kw):
                v = win[..., ky, kx]
                out = np.where(out < v, v, out)
    else:
        win = windows(pad_for_window(x, layer, kh, kw, 0.0), kh, kw, layer.stride)
        valid = windows(pad_for_window(np.ones(x.shape[:3] + (1,), np.float32), layer, kh, kw, 0.0), kh, kw,
                        layer.stride)
        total = np.zeros(win.shape[:4], np.float32)
        for ky in range(kh):
            for kx in range(kw):
                total += win[..., ky, kx]
        out = total / valid.sum(axis=(4, 5), dtype=np.float32)
    return activate_f32(out, layer.activation)


def export(layer: Pool2D, w: Writer, i: int, reads: list[int], inputs: tuple[TensorInfo, ...], out: int) -> None:
    opt = fb.Pool2DOptionsT()
    opt.padding = PAD_CODE[layer.padding]
    opt.strideH, opt.strideW = layer.stride
    opt.filterHeight, opt.filterWidth = layer.size
    opt.fusedActivationFunction = ACT_CODE[layer.activation.kind]
    code = fb.BuiltinOperator.MAX_POOL_2D if layer.kind == "MAX" else fb.BuiltinOperator.AVERAGE_POOL_2D
    w.op(code, [reads[0]], [out], fb.BuiltinOptions.Pool2DOptions, opt)


def import_(g: Subgraph, code: int, op: fb.OperatorT, out: TensorInfo, where: str) -> Pool2D:
    opt = op.builtinOptions
    kind = "MAX" if code == fb.BuiltinOperator.MAX_POOL_2D else "AVERAGE"
    act = fused_activation(op, out, where)
    window = (int(opt.filterHeight), int(opt.filterWidth))
    stride, padding = read_geometry(opt, where, window)
    return Pool2D(kind, window, stride, padding, act, out)


OP = Op(Pool2D, (Builtin(fb.BuiltinOperator.MAX_POOL_2D, fb.BuiltinOptions.Pool2DOptions, 1),
                 Builtin(fb.BuiltinOperator.AVERAGE_POOL_2D, fb.BuiltinOptions.Pool2DOptions, 1)),
        arity=1, weighted=False, check=check, run=run, run_f32=run_f32, macs=no_macs, export=export, import_=import_)
