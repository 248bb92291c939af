"""The graph IR: the one object every backend consumes.

A ``Graph`` is a chain of int8 layers following the TFLite int8 quantization spec: asymmetric int8
activations (scale, zero point per tensor), symmetric int8 weights (zero point 0) with per-channel or
per-tensor scales, int32 biases with scale = input scale x weight scale. Layouts are TFLite's: NHWC
activations (batch left out), OHWI conv weights, (out, in) fully connected weights.

Quantized multipliers are *derived* from the float scales (``requantization``) rather than stored,
so an imported, exported or generated model can never disagree with its own scales.

The same layers also describe a float32 graph, what the paper deployed: every tensor's ``dtype`` is
"float32" (scale 0 and zero point 0: no quantization), weights and biases are float32 and there are
no weight scales. A graph is one dtype throughout (no converting ops); ``Graph.validate`` checks it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .fixedpoint import quantize_multiplier, real_multiplier, round_half_away


class IRError(ValueError):
    """A graph that is inconsistent or uses something the IR does not support."""


DTYPES = {"int8": np.int8, "float32": np.float32}  # what a tensor holds, and its numpy type
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TensorInfo:
    """Shape (without batch) and per-tensor int8 quantization of an activation, or a float32 activation
    (``dtype`` "float32": scale 0 and zero point 0, see ``TensorInfo.float32``)."""

    shape: tuple[int, ...]
    scale: float
    zero_point: int
    dtype: str = "int8"

    @staticmethod
    def float32(shape: tuple[int, ...]) -> TensorInfo:
        return TensorInfo(tuple(shape), 0.0, 0, "float32")

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def numpy_dtype(self) -> type:
        return DTYPES[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.numpy_dtype).itemsize

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float -> this tensor's values: int8 with its scale and zero point (round half away from zero,
        as TFLite); a float32 tensor takes the values as they are."""
        if self.dtype == "float32":
            return np.asarray(x, np.float32)
        q = round_half_away(x / np.float32(self.scale)) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.dtype == "float32":
            return np.asarray(q, np.float32)
        return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)


@dataclass(frozen=True)
class Activation:
    """Fused activation as the int8 clamp TFLite applies; ``kind`` is kept for export."""

    kind: str  # "NONE", "RELU", "RELU6"
    min: int | float
    max: int | float

    @staticmethod
    def for_output(kind: str, out: TensorInfo) -> Activation:
        """The clamp TFLite's CalculateActivationRangeQuantized derives for ``kind`` on ``out``; on a
        float32 output the one CalculateActivationRange derives (NONE: the whole finite float range,
        so TFLM clamps an infinity to the largest float)."""
        if kind not in ("NONE", "RELU", "RELU6"):
            raise IRError(f"unsupported fused activation {kind}")
        if out.dtype == "float32":
            return Activation(kind, -FLOAT32_MAX if kind == "NONE" else 0.0, 6.0 if kind == "RELU6" else FLOAT32_MAX)
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


@dataclass(eq=False)
class Softmax:
    """softmax(beta x) over the last axis; float32 only (what the paper's network ends with)."""

    beta: float
    output: TensorInfo
    op: str = field(default="SOFTMAX", init=False)


Layer = Conv2D | DepthwiseConv2D | FullyConnected | Pool2D | Reshape | Softmax
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
    if not isinstance(layer, WEIGHTED) or layer.output.dtype != "int8":
        raise IRError(f"{layer.output.dtype} {layer.op} has no requantization")
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


def _check_tensor(t: TensorInfo, where: str) -> None:
    if t.dtype not in DTYPES:
        raise IRError(f"{where}: unknown dtype {t.dtype!r}; choose from {list(DTYPES)}")
    if t.dtype == "float32" and (t.scale, t.zero_point) != (0.0, 0):
        raise IRError(f"{where}: a float32 tensor has no quantization (scale 0, zero point 0)")


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

    @property
    def dtype(self) -> str:
        """"int8" or "float32": every tensor of a graph has the same (``validate``)."""
        return self.input.dtype

    def steps(self) -> Iterator[tuple[int, Layer, TensorInfo]]:
        """(index, layer, its input tensor) in execution order."""
        inp = self.input
        for i, layer in enumerate(self.layers):
            yield i, layer, inp
            inp = layer.output

    def validate(self) -> None:
        """Shapes and dtypes must chain; every later stage trusts this instead of re-checking."""
        _check_tensor(self.input, "the graph input")
        for i, layer, inp in self.steps():
            where = f"layer {i} ({layer.op})"
            out = layer.output
            _check_tensor(out, where)
            if out.dtype != inp.dtype:
                raise IRError(f"{where}: turns {inp.dtype} into {out.dtype}; a graph is one dtype throughout")
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
            elif isinstance(layer, Softmax):
                if out.dtype != "float32":
                    raise IRError(f"{where}: only float32 SOFTMAX is supported")
                if inp.shape != out.shape or not (np.isfinite(layer.beta) and layer.beta > 0):
                    raise IRError(f"{where}: softmax keeps the shape {inp.shape} and needs a finite beta > 0, "
                                  f"got {out.shape} and {layer.beta}")
            if isinstance(layer, WEIGHTED) and out.dtype == "float32":
                if layer.weights.dtype != np.float32 or layer.bias.dtype != np.float32 or layer.weight_scales.size:
                    raise IRError(f"{where}: a float32 layer has float32 weights and bias and no weight scales")
                if not (np.isfinite(layer.weights).all() and np.isfinite(layer.bias).all()):
                    raise IRError(f"{where}: weights or bias contain NaN or infinity")
            elif isinstance(layer, WEIGHTED):
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
