"""The graph IR: the one object every backend consumes.

A ``Graph`` is a DAG of tensors: tensor 0 is the graph input, tensor i+1 the output of layer i,
layers are kept in execution (topological) order, and each layer records the ids of the tensors it
reads (``Graph.reads``). The common case, a chain where layer i reads tensor i, is the default, so a
chain is built and consumed exactly as before; residual networks add ``Add`` layers that read two
earlier tensors. Everything follows the TFLite int8 quantization spec: asymmetric int8
activations (scale, zero point per tensor), symmetric int8 weights (zero point 0) with per-channel or
per-tensor scales, int32 biases with scale = input scale x weight scale. Layouts are TFLite's: NHWC
activations (batch left out), OHWI conv weights, (out, in) fully connected weights.

In an int8 graph, float enters and leaves only at the boundary, as the converter writes a model with
float input or output: the graph input may be a float32 tensor when the first layer is a ``Quantize``,
and the last layer may be a ``Dequantize`` whose output is float32. Every tensor in between is int8.

Quantized multipliers are *derived* from the float scales (``requantization``) rather than stored,
so an imported, exported or generated model can never disagree with its own scales.

The same layers also describe a float32 graph, what the paper deployed: every tensor's ``dtype`` is
"float32" (scale 0 and zero point 0: no quantization), weights and biases are float32 and there are
no weight scales. Such a graph holds only the layers of ``FLOAT32_LAYERS`` (no converting ops, no ADD,
so it is a chain). ``Graph.dtype`` tells the two kinds apart (float32 = every tensor is float32) and
``Graph.validate`` checks both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .counts import layer_macs
from .fixedpoint import (
    ADD_LEFT_SHIFT,
    LOGISTIC_INPUT_INTEGER_BITS,
    add_real_multipliers,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    real_multiplier,
    round_half_away,
    softmax_real_multiplier,
)


class IRError(ValueError):
    """A graph that is inconsistent or uses something the IR does not support. ``layer`` and
    ``tensor`` ("input" or "output") say where, when one tensor of one layer is at fault, so that the
    .tflite importer can name the operator and tensor of the file; ``detail`` is the message without
    the layer prefix."""

    def __init__(self, message: str, layer: int | None = None, tensor: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.layer, self.tensor, self.detail = layer, tensor, detail or message


DTYPES = {"int8": np.int8, "float32": np.float32}


DTYPES = {"int8": np.int8, "float32": np.float32}  # what a tensor holds, and its numpy type
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TensorInfo:
    """Shape (without batch) and per-tensor int8 quantization of an activation, or a float32 activation
    (``dtype`` "float32", see ``TensorInfo.float32``), which carries no quantization (scale 0, zero
    point 0): every tensor of a float32 graph, or the input or output at an int8 model's float boundary."""

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
    def is_float(self) -> bool:
        return self.dtype == "float32"

    @property
    def np_dtype(self) -> type:
        return DTYPES[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.np_dtype).itemsize

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values -> what this tensor holds: int8 with its parameters (round half away from zero,
        as TFLite), or float32 unchanged for a float tensor."""
        if self.is_float:
            return np.asarray(x, dtype=np.float32)
        q = round_half_away(x / np.float32(self.scale)) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        if self.is_float:
            return np.asarray(q, dtype=np.float32)
        return (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)


@dataclass(frozen=True)
class Activation:
    """Fused activation as the clamp TFLite applies (int8 bounds, or float bounds on a float32 output);
    ``kind`` is kept for export."""

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
        if out.is_float:
            return Activation(kind, -FLOAT32_MAX if kind == "NONE" else 0.0, 6.0 if kind == "RELU6" else FLOAT32_MAX)
        lo, hi = -128, 127
        if kind in ("RELU", "RELU6"):
            lo = max(lo, out.zero_point)
        if kind == "RELU6":
            hi = min(hi, out.zero_point + int(round_half_away(6.0 / np.float32(out.scale))))
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
class Add:
    """Elementwise sum of two int8 tensors of the same shape (TFLite ADD without broadcasting), each
    input rescaled to a common scale first; the fused activation clamps the result. It has no
    weights: its requantization comes from the three tensors' scales (``add_requantization``)."""

    activation: Activation
    output: TensorInfo
    op: str = field(default="ADD", init=False)


@dataclass(eq=False)
class Softmax:
    """softmax(beta x) over the last axis, in the dtype of its tensors. int8: TFLM's integer algorithm,
    which needs the output quantized with scale 1/256 and zero point -128 (``validate``); float32:
    TFLM's float kernel with expf, what the paper's network ends with."""

    beta: float
    output: TensorInfo
    op: str = field(default="SOFTMAX", init=False)


@dataclass(eq=False)
class Logistic:
    """int8 sigmoid; TFLM's integer path writes outputs in steps of 1/256 from -128."""

    output: TensorInfo
    op: str = field(default="LOGISTIC", init=False)


@dataclass(eq=False)
class Mean:
    """Mean over height and width of an HWC tensor: output (1, 1, C) with ``keep_dims``, else (C,)."""

    keep_dims: bool
    output: TensorInfo
    op: str = field(default="MEAN", init=False)


@dataclass(eq=False)
class Pad:
    """Constant padding with the zero point (the padded value is real 0): ``paddings`` holds
    (before, after) for every axis of the input (batch left out)."""

    paddings: tuple[tuple[int, int], ...]
    output: TensorInfo
    op: str = field(default="PAD", init=False)


@dataclass(eq=False)
class Quantize:
    """float32 -> int8 (the first layer of a float-input model) or int8 -> int8 with other
    quantization parameters."""

    output: TensorInfo
    op: str = field(default="QUANTIZE", init=False)


@dataclass(eq=False)
class Dequantize:
    """int8 -> float32: the last layer of a float-output model."""

    output: TensorInfo
    op: str = field(default="DEQUANTIZE", init=False)


Layer = (Conv2D | DepthwiseConv2D | FullyConnected | Pool2D | Reshape | Add | Softmax | Logistic | Mean | Pad
         | Quantize | Dequantize)
WEIGHTED = (Conv2D, DepthwiseConv2D, FullyConnected)
# layers that read more than one tensor, with how many; every other layer reads exactly one
ARITY: dict[type, int] = {Add: 2}


# the layers a float32 graph may hold: those the paper's network uses, with TFLM float reference kernels
FLOAT32_LAYERS = (Conv2D, DepthwiseConv2D, FullyConnected, Pool2D, Reshape, Softmax)


def arity(layer: Layer) -> int:
    """How many tensors ``layer`` reads."""
    return ARITY.get(type(layer), 1)


SOFTMAX_OUTPUT = (1.0 / 256, -128)  # the (scale, zero point) TFLM's int8 SOFTMAX and LOGISTIC produce
SOFTMAX_MAX_DEPTH = 4095            # 4096 exps of 1.0 would overflow the int32 Q12.19 sum


@dataclass(frozen=True)
class Requant:
    """What an int8 kernel needs to go from int32 accumulators back to int8."""

    input_offset: int              # -input zero point
    output_offset: int             # output zero point
    multiplier: np.ndarray         # int32 per output channel
    shift: np.ndarray              # int32 per output channel


def requantization(layer: Layer, inp: TensorInfo) -> Requant:
    """Per-channel multipliers exactly as TFLM derives them from the scales at Prepare time."""
    if not isinstance(layer, WEIGHTED) or layer.output.is_float:
        raise IRError(f"{layer.output.dtype} {layer.op} has no requantization")
    channels = layer.bias.shape[0]
    scales = np.broadcast_to(layer.weight_scales, (channels,))
    pairs = [quantize_multiplier(real_multiplier(inp.scale, float(s), layer.output.scale)) for s in scales]
    mult = np.array([p[0] for p in pairs], dtype=np.int64)
    shift = np.array([p[1] for p in pairs], dtype=np.int64)
    return Requant(-inp.zero_point, layer.output.zero_point, mult, shift)


@dataclass(frozen=True)
class AddRequant:
    """What TFLM's int8 ADD derives from the three scales at Prepare time: both inputs are shifted left
    by ``left_shift`` and scaled to half of the larger input scale (multiplier < 1 each), summed, and
    the sum is scaled to the output. Shifts are <= 0 (right shifts), as TFLM requires."""

    left_shift: int
    input_offsets: tuple[int, int]        # -zero point of each input
    input_multipliers: tuple[int, int]
    input_shifts: tuple[int, int]
    output_offset: int
    output_multiplier: int
    output_shift: int

    def scaled_input(self, k: int, x: np.ndarray) -> np.ndarray:
        """Input k (0 or 1) as TFLM brings it to the common scale: offset, shifted up by left_shift,
        one rounding multiply. Every value fits int32 (|x + offset| <= 255, 255 << 20 < 2^28)."""
        shifted = (np.asarray(x, np.int64) + self.input_offsets[k]) << self.left_shift
        return multiply_by_quantized_multiplier(shifted, self.input_multipliers[k], self.input_shifts[k])

    def output(self, total: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """The int8 output of a sum of two scaled inputs: the second rounding multiply, the output zero
        point, the fused activation's clamp."""
        y = multiply_by_quantized_multiplier(np.asarray(total, np.int64), self.output_multiplier, self.output_shift)
        return np.clip(y + self.output_offset, lo, hi)


def add_requantization(a: TensorInfo, b: TensorInfo, out: TensorInfo) -> AddRequant:
    """The integer parameters of ``out = a + b`` exactly as TFLM's CalculateOpDataAdd derives them."""
    reals = add_real_multipliers(a.scale, b.scale, out.scale)
    (m1, s1), (m2, s2), (mo, so) = (quantize_multiplier(r) for r in reals)
    return AddRequant(ADD_LEFT_SHIFT, (-a.zero_point, -b.zero_point), (m1, m2), (s1, s2), out.zero_point, mo, so)
def requantize_multiplier(inp: TensorInfo, out: TensorInfo) -> tuple[int, int]:
    """(multiplier, shift) of an int8 -> int8 QUANTIZE: input scale / output scale in double."""
    return quantize_multiplier(float(np.float32(inp.scale)) / float(np.float32(out.scale)))


def mean_multiplier(inp: TensorInfo, out: TensorInfo) -> tuple[int, int]:
    """(multiplier, shift) of TFLM's int8 MEAN over H x W = n values: the requantization multiplier of
    input scale / output scale with 1/n folded in. The fold shifts the significand left by
    floor(log2 n) (at most 32, and no further than keeps the shift >= -31) before the integer
    division by n, so precision survives; the kernel then requantizes sum - n x input zero point."""
    multiplier, shift = quantize_multiplier(float(np.float32(inp.scale)) / float(np.float32(out.scale)))
    n = inp.shape[0] * inp.shape[1]
    fold = min(n.bit_length() - 1, 32, 31 + shift)
    return (multiplier << fold) // n, shift - fold


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
    """A known dtype, and no quantization on a float32 tensor (so that no stage can mistake it)."""
    if t.dtype not in DTYPES:
        raise IRError(f"{where}: unknown dtype {t.dtype!r}; choose from {list(DTYPES)}")
    if t.is_float and (t.scale, t.zero_point) != (0.0, 0):
        raise IRError(f"{where}: a float32 tensor has no quantization (scale 0, zero point 0)")


@dataclass(eq=False)
class Graph:
    """Layers in execution order over numbered tensors: 0 is the graph input, i+1 the output of layer
    i, and the last layer's output is the model output. ``dtype`` says whether it is an int8 or a
    float32 graph.

    ``reads[i]`` holds the tensor ids layer i reads (one for most layers, two for ``Add``). Leave it
    out for a chain, where layer i reads tensor i; it is then filled in, so every graph has it.
    """

    input: TensorInfo
    layers: list[Layer]
    name: str = "model"
    reads: list[tuple[int, ...]] | None = None

    def __post_init__(self) -> None:
        if self.reads is None:
            self.reads = [(i,) for i in range(len(self.layers))]
        else:
            self.reads = [tuple(int(t) for t in r) for r in self.reads]
        self.validate()

    @property
    def output(self) -> TensorInfo:
        return self.layers[-1].output if self.layers else self.input

    @property
    def is_chain(self) -> bool:
        """True when layer i reads exactly tensor i (the input, then each previous output)."""
        return all(r == (i,) for i, r in enumerate(self.reads))

    @property
    def dtype(self) -> str:
        """What the graph computes in: "float32" when every tensor is float32 (a float32 graph, the
        deployment the paper measured), else "int8" (whose input or output may still be float32 at the
        boundary: a first QUANTIZE, a last DEQUANTIZE). Backends pick their kernels by this."""
        tensors = (self.input, *(layer.output for layer in self.layers))
        return "float32" if all(t.is_float for t in tensors) else "int8"

    def tensor(self, t: int) -> TensorInfo:
        """Tensor ``t``: 0 is the graph input, t >= 1 the output of layer t - 1."""
        return self.input if t == 0 else self.layers[t - 1].output

    def inputs_of(self, i: int) -> tuple[TensorInfo, ...]:
        """Every tensor layer i reads, in operand order."""
        return tuple(self.tensor(t) for t in self.reads[i])

    def readers(self, t: int) -> list[int]:
        """Indices of the layers that read tensor ``t``, in execution order."""
        return [i for i, r in enumerate(self.reads) if t in r]

    def last_reads(self) -> list[int]:
        """For every tensor, the index of the last layer that reads it: after that layer ran, its
        memory may be reused. The model output is read by the caller, after every layer
        (``len(layers)``)."""
        last = [0] * (len(self.layers) + 1)
        for i, ids in enumerate(self.reads):
            for t in ids:
                last[t] = i
        last[len(self.layers)] = len(self.layers)
        return last

    def steps(self) -> Iterator[tuple[int, Layer, TensorInfo]]:
        """(index, layer, its first input tensor) in execution order; ``inputs_of`` gives all of them."""
        for i, layer in enumerate(self.layers):
            yield i, layer, self.tensor(self.reads[i][0])

    def _validate_wiring(self) -> None:
        """Tensor ids refer to earlier tensors only (so execution order is topological), each layer
        reads as many tensors as it takes, and nothing is computed for nobody: every tensor except
        the model output is read by some layer (an unread tensor is a dead branch or a second model
        output, neither of which any backend would handle)."""
        if not isinstance(self.reads, list) or len(self.reads) != len(self.layers):
            raise IRError(f"reads lists {len(self.reads)} layers' inputs for {len(self.layers)} layers")
        for i, (layer, ids) in enumerate(zip(self.layers, self.reads, strict=True)):
            where = f"layer {i} ({layer.op})"
            if len(ids) != arity(layer):
                raise IRError(f"{where}: reads {len(ids)} tensor(s) {list(ids)}, it takes {arity(layer)}")
            for t in ids:
                if not 0 <= t <= i:
                    raise IRError(f"{where}: reads tensor {t}, but only tensors 0..{i} (the input and the "
                                  "outputs of earlier layers) exist when it runs")
        read = {t for ids in self.reads for t in ids}
        for t in range(len(self.layers)):
            if t not in read:
                what = "the graph input" if t == 0 else f"the output of layer {t - 1} ({self.layers[t - 1].op})"
                raise IRError(f"tensor {t} ({what}) is never read; only the last layer's output may go "
                              "unread (it is the model output): remove the dead layer or wire it in")

    def validate(self) -> None:
        """Wiring, shapes, dtypes and quantization must fit; every later stage trusts this instead of
        re-checking. The dtypes make one of two kinds of graph (``dtype``): int8, where float32 may only
        enter through a first QUANTIZE and leave through a last DEQUANTIZE, or float32 throughout."""
        self._validate_wiring()
        _check_tensor(self.input, "the graph input")
        for i, layer in enumerate(self.layers):
            _check_tensor(layer.output, f"layer {i} ({layer.op})")
        float_graph = self.dtype == "float32"
        if float_graph:
            self._validate_float32()
        elif self.input.is_float and not (self.layers and isinstance(self.layers[0], Quantize)
                                          and self.readers(0) == [0]):
            raise IRError("a float32 model input must feed a QUANTIZE layer (and nothing else) in an int8 model, "
                          "or every tensor must be float32 (a float32 model)")
        for i, layer, inp in self.steps():
            where = f"layer {i} ({layer.op})"
            out = layer.output
            if not float_graph:
                if out.is_float != isinstance(layer, Dequantize):
                    raise IRError(f"{where}: only DEQUANTIZE writes float32 in an int8 model, and it writes "
                                  "nothing else")
                if isinstance(layer, Dequantize) and i != len(self.layers) - 1:
                    raise IRError(f"{where}: DEQUANTIZE must be the last layer (float32 only leaves the model)")
                if inp.is_float and not isinstance(layer, Quantize):
                    raise IRError(f"{where}: takes int8 input, got float32")
            self._validate_unary(i, layer, inp, out)
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
            elif isinstance(layer, Add):
                self._validate_add(i, layer)
            if isinstance(layer, WEIGHTED):
                if float_graph:
                    if layer.weights.dtype != np.float32 or layer.bias.dtype != np.float32 or layer.weight_scales.size:
                        raise IRError(f"{where}: a float32 layer has float32 weights and bias and no weight scales")
                    if not (np.isfinite(layer.weights).all() and np.isfinite(layer.bias).all()):
                        raise IRError(f"{where}: weights or bias contain NaN or infinity")
                elif layer.weights.dtype != np.int8 or layer.bias.dtype != np.int32:
                    raise IRError(f"{where}: weights must be int8 and bias int32")
                if layer.bias.shape != (layer.weights.shape[0 if not isinstance(layer, DepthwiseConv2D) else 3],):
                    raise IRError(f"{where}: bias shape {layer.bias.shape} does not match the weights")

    def _validate_float32(self) -> None:
        """A float32 graph runs TFLM's float reference kernels, which exist here for the paper's layers
        only; every other op (ADD, and so residual networks, LOGISTIC, MEAN, PAD, QUANTIZE, DEQUANTIZE)
        is int8 only. With one-input layers only, the wiring rules make every float32 graph a chain."""
        for i, layer in enumerate(self.layers):
            if not isinstance(layer, FLOAT32_LAYERS):
                detail = (f"{layer.op} has no float32 kernel: a float32 model holds CONV_2D, DEPTHWISE_CONV_2D, "
                          "FULLY_CONNECTED, MAX/AVERAGE_POOL_2D, RESHAPE and SOFTMAX only; quantize it to int8 "
                          "for the other ops")
                raise IRError(f"layer {i} ({layer.op}): {detail}", i, "output", detail)

    def _validate_add(self, i: int, layer: Add) -> None:
        """Equal shapes (no broadcasting) and scales TFLM's ADD accepts: its Prepare stops on an
        output multiplier >= 1, i.e. an output scale below max(input scales) / 2^19."""
        where = f"layer {i} ({layer.op})"
        a, b = self.inputs_of(i)
        if not a.shape == b.shape == layer.output.shape:
            raise IRError(f"{where}: adds tensors {list(self.reads[i])} of shapes {a.shape} and {b.shape} into "
                          f"{layer.output.shape}; the shapes must be equal (broadcasting is not supported)")
        rq = add_requantization(a, b, layer.output)
        if max(rq.output_shift, *rq.input_shifts) > 0:
            raise IRError(f"{where}: output scale {layer.output.scale:g} is too small for input scales "
                          f"{a.scale:g} and {b.scale:g} (int8 ADD needs output scale > max input scale / 2^19)")

    @staticmethod
    def _validate_unary(i: int, layer: Layer, inp: TensorInfo, out: TensorInfo) -> None:
        """The constraints TFLM's Prepare imposes on SOFTMAX, LOGISTIC, MEAN, PAD, QUANTIZE and
        DEQUANTIZE (and a few it would not notice but that would make it compute something else)."""

        def error(detail: str, tensor: str = "output") -> IRError:
            return IRError(f"layer {i} ({layer.op}): {detail}", i, tensor, detail)

        if isinstance(layer, Softmax | Logistic | Quantize | Dequantize) and inp.shape != out.shape:
            raise error(f"output shape {out.shape} differs from input shape {inp.shape}")
        if (isinstance(layer, Softmax | Logistic) and not out.is_float
                and (out.scale, out.zero_point) != SOFTMAX_OUTPUT):
            raise error(f"scale {out.scale:g} and zero point {out.zero_point}; TFLM's int8 kernel writes scale "
                        "1/256 (0.00390625) and zero point -128")
        if isinstance(layer, Softmax):
            if not (np.isfinite(layer.beta) and layer.beta > 0):
                raise error(f"beta must be finite and > 0, got {layer.beta}")
            if out.is_float:
                return  # TFLM's float softmax has no quantization to constrain
            if inp.shape[-1] > SOFTMAX_MAX_DEPTH:
                raise error(f"{inp.shape[-1]} values per row; TFLM's int8 softmax sums at most {SOFTMAX_MAX_DEPTH} "
                            "in its int32 accumulator", "input")
            real = softmax_real_multiplier(layer.beta, inp.scale)
            if real <= 1.0:
                raise error(f"beta x scale = {real / 2**26:g} is not above 2^-26, which TFLM's int8 softmax needs "
                            "(its input multiplier must exceed 1)", "input")
        elif isinstance(layer, Logistic):
            if float(np.float32(inp.scale)) * 2.0 ** (31 - LOGISTIC_INPUT_INTEGER_BITS) < 0.5:
                raise error(f"scale {inp.scale:g} is below 2^-28, which TFLM's int8 logistic cannot rescale",
                            "input")
        elif isinstance(layer, Mean):
            if len(inp.shape) != 3:
                raise error(f"shape {inp.shape}: MEAN averages height and width of an NHWC tensor", "input")
            want = (1, 1, inp.shape[2]) if layer.keep_dims else (inp.shape[2],)
            if out.shape != want:
                raise error(f"shape {out.shape}, expected {want} (keep_dims={layer.keep_dims})")
        elif isinstance(layer, Pad):
            if len(layer.paddings) != len(inp.shape) or any(len(p) != 2 for p in layer.paddings):
                raise error(f"needs one (before, after) pair per input axis, got {layer.paddings}", "input")
            if any(v < 0 for p in layer.paddings for v in p):
                raise error(f"negative paddings {layer.paddings} are not supported", "input")
            want = tuple(n + a + b for n, (a, b) in zip(inp.shape, layer.paddings, strict=True))
            if out.shape != want:
                raise error(f"shape {out.shape}, but input {inp.shape} padded by {layer.paddings} gives {want}")
            if (inp.scale, inp.zero_point) != (out.scale, out.zero_point):
                raise error("scale and zero point differ from the input's; TFLM's PAD copies int8 values "
                            "unchanged, so both must be the same")
        elif isinstance(layer, Quantize) and not inp.is_float:
            if requantize_multiplier(inp, out)[1] > 30:
                raise error(f"input scale / output scale = {inp.scale / out.scale:g} is too large for int8 "
                            "requantization")

    # --- sizes a user asks about ---------------------------------------------------------------
    def layer_stats(self) -> list[dict]:
        """Per layer: op, the tensor ids it reads, shapes (input: the first one it reads), params
        (weights + biases), nonzeros, MACs (dense), sparsity."""
        rows = []
        for i, layer, inp in self.steps():
            params = nonzeros = macs = 0
            if isinstance(layer, WEIGHTED):
                w = layer.weights
                params = w.size + layer.bias.size
                nonzeros = int(np.count_nonzero(w)) + int(np.count_nonzero(layer.bias))
                macs = layer_macs(w.size, layer.output.shape, layer.op)
            rows.append({
                "index": i, "op": layer.op, "reads": list(self.reads[i]), "input": inp.shape,
                "output": layer.output.shape,
                "params": params, "nonzeros": nonzeros, "macs": macs,
                "sparsity": 1 - nonzeros / params if params else 0.0,
            })
        return rows

    def totals(self) -> dict:
        rows = self.layer_stats()
        return {k: sum(r[k] for r in rows) for k in ("params", "nonzeros", "macs")}
