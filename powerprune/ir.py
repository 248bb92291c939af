"""The int8 graph IR: the one object every backend consumes.

A ``Graph`` is a chain of int8 layers following the TFLite int8 quantization spec: asymmetric int8
activations (scale, zero point per tensor), symmetric int8 weights (zero point 0) with per-channel or
per-tensor scales, int32 biases with scale = input scale x weight scale. Layouts are TFLite's: NHWC
activations (batch left out), OHWI conv weights, (out, in) fully connected weights.

Quantized multipliers are *derived* from the float scales (``requantization``) rather than stored,
so an imported, exported or generated model can never disagree with its own scales.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .fixedpoint import quantize_multiplier, real_multiplier, round_half_away


class IRError(ValueError):
    """A graph that is inconsistent or uses something the IR does not support."""


@dataclass(frozen=True)
class TensorInfo:
    """Shape (without batch) and per-tensor int8 quantization of an activation."""

    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float -> int8 with this tensor's parameters (round half away from zero, as TFLite)."""
        q = round_half_away(x / np.float32(self.scale)) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)


@dataclass(frozen=True)
class Activation:
    """Fused activation as the int8 clamp TFLite applies; ``kind`` is kept for export."""

    kind: str  # "NONE", "RELU", "RELU6"
    min: int
    max: int

    @staticmethod
    def for_output(kind: str, out: TensorInfo) -> Activation:
        """The clamp TFLite's CalculateActivationRangeQuantized derives for ``kind`` on ``out``."""
        lo, hi = -128, 127
        if kind in ("RELU", "RELU6"):
            lo = max(lo, out.zero_point)
        if kind == "RELU6":
            hi = min(hi, out.zero_point + int(round_half_away(6.0 / np.float32(out.scale))))
        if kind not in ("NONE", "RELU", "RELU6"):
            raise IRError(f"unsupported fused activation {kind}")
        return Activation(kind, lo, hi)


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


@dataclass(eq=False)
class FullyConnected:
    weights: np.ndarray            # int8 (O, I)
    bias: np.ndarray               # int32 (O,)
    weight_scales: np.ndarray      # float32 (1,) per tensor or (O,) per channel
    activation: Activation
    output: TensorInfo
    op: str = field(default="FULLY_CONNECTED", init=False)


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


@dataclass(eq=False)
class Reshape:
    output: TensorInfo
    op: str = field(default="RESHAPE", init=False)


Layer = Conv2D | DepthwiseConv2D | FullyConnected | Pool2D | Reshape
WEIGHTED = (Conv2D, DepthwiseConv2D, FullyConnected)


@dataclass(frozen=True)
class Requant:
    """What an int8 kernel needs to go from int32 accumulators back to int8."""

    input_offset: int              # -input zero point
    output_offset: int             # output zero point
    multiplier: np.ndarray         # int32 per output channel
    shift: np.ndarray              # int32 per output channel


def requantization(layer: Layer, inp: TensorInfo) -> Requant:
    """Per-channel multipliers exactly as TFLM derives them from the scales at Prepare time."""
    if not isinstance(layer, WEIGHTED):
        raise IRError(f"{layer.op} has no requantization")
    channels = layer.bias.shape[0]
    scales = np.broadcast_to(layer.weight_scales, (channels,))
    pairs = [quantize_multiplier(real_multiplier(inp.scale, float(s), layer.output.scale)) for s in scales]
    mult = np.array([p[0] for p in pairs], dtype=np.int64)
    shift = np.array([p[1] for p in pairs], dtype=np.int64)
    return Requant(-inp.zero_point, layer.output.zero_point, mult, shift)


def same_padding(in_size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(output size, leading pad) for TFLite SAME padding; the extra odd pixel goes at the end."""
    out = (in_size + stride - 1) // stride
    total = max((out - 1) * stride + kernel - in_size, 0)
    return out, total // 2


def output_size(in_size: int, kernel: int, stride: int, padding: str) -> tuple[int, int]:
    """(output size, leading pad) along one spatial axis."""
    if padding == "SAME":
        return same_padding(in_size, kernel, stride)
    if padding == "VALID":
        if in_size < kernel:
            raise IRError(f"VALID window {kernel} larger than input {in_size}")
        return (in_size - kernel) // stride + 1, 0
    raise IRError(f"unknown padding {padding!r}")


@dataclass(eq=False)
class Graph:
    """A chain of int8 layers: the input feeds layer 0, each layer feeds the next."""

    input: TensorInfo
    layers: list[Layer]
    name: str = "model"

    def __post_init__(self) -> None:
        self.validate()

    @property
    def output(self) -> TensorInfo:
        return self.layers[-1].output if self.layers else self.input

    def steps(self) -> Iterator[tuple[int, Layer, TensorInfo]]:
        """(index, layer, its input tensor) in execution order."""
        inp = self.input
        for i, layer in enumerate(self.layers):
            yield i, layer, inp
            inp = layer.output

    def validate(self) -> None:
        """Shapes and dtypes must chain; every later stage trusts this instead of re-checking."""
        for i, layer, inp in self.steps():
            where = f"layer {i} ({layer.op})"
            out = layer.output
            if isinstance(layer, Conv2D | DepthwiseConv2D | Pool2D):
                if len(inp.shape) != 3 or len(out.shape) != 3:
                    raise IRError(f"{where}: expects HWC tensors, got {inp.shape} -> {out.shape}")
                kh, kw = layer.size if isinstance(layer, Pool2D) else layer.weights.shape[1:3]
                oh, _ = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
                ow, _ = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
                if (oh, ow) != out.shape[:2]:
                    raise IRError(f"{where}: output {out.shape[:2]} but geometry gives {(oh, ow)}")
            if isinstance(layer, Conv2D):
                if layer.weights.shape[3] != inp.shape[2] or layer.weights.shape[0] != out.shape[2]:
                    raise IRError(f"{where}: weights {layer.weights.shape} do not fit {inp.shape} -> {out.shape}")
            elif isinstance(layer, DepthwiseConv2D):
                if layer.weights.shape[3] != out.shape[2] or out.shape[2] % inp.shape[2]:
                    raise IRError(f"{where}: weights {layer.weights.shape} do not fit {inp.shape} -> {out.shape}")
            elif isinstance(layer, FullyConnected):
                if layer.weights.shape != (out.size, inp.size):
                    raise IRError(f"{where}: weights {layer.weights.shape} do not fit {inp.size} -> {out.size}")
            elif isinstance(layer, Pool2D):
                if inp.shape[2] != out.shape[2]:
                    raise IRError(f"{where}: pooling cannot change channels")
                if (inp.scale, inp.zero_point) != (out.scale, out.zero_point):
                    raise IRError(f"{where}: pooling input and output must share quantization")
            elif isinstance(layer, Reshape):
                if inp.size != out.size:
                    raise IRError(f"{where}: reshape {inp.shape} -> {out.shape} changes the size")
            if isinstance(layer, WEIGHTED):
                if layer.weights.dtype != np.int8 or layer.bias.dtype != np.int32:
                    raise IRError(f"{where}: weights must be int8 and bias int32")
                if layer.bias.shape != (layer.weights.shape[0 if not isinstance(layer, DepthwiseConv2D) else 3],):
                    raise IRError(f"{where}: bias shape {layer.bias.shape} does not match the weights")

    # --- sizes a user asks about ---------------------------------------------------------------
    def layer_stats(self) -> list[dict]:
        """Per layer: op, shapes, params (weights + biases), nonzeros, MACs (dense), sparsity."""
        rows = []
        for i, layer, inp in self.steps():
            params = nonzeros = macs = 0
            if isinstance(layer, WEIGHTED):
                w = layer.weights
                params = w.size + layer.bias.size
                nonzeros = int(np.count_nonzero(w)) + int(np.count_nonzero(layer.bias))
                pixels = 1 if isinstance(layer, FullyConnected) else layer.output.shape[0] * layer.output.shape[1]
                macs = w.size * pixels
            rows.append({
                "index": i, "op": layer.op, "input": inp.shape, "output": layer.output.shape,
                "params": params, "nonzeros": nonzeros, "macs": macs,
                "sparsity": 1 - nonzeros / params if params else 0.0,
            })
        return rows

    def totals(self) -> dict:
        rows = self.layer_stats()
        return {k: sum(r[k] for r in rows) for k in ("params", "nonzeros", "macs")}
