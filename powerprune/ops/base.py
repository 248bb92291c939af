"""What every op module builds on: tensors and their quantization, the fused activation, the error the
IR raises, the requantization TFLM derives from scales, the ``Op`` record each op module fills in, and
the registry the records are looked up in.

The registry's storage lives here rather than in ``ops/__init__`` so that a helper shared by several
ops (``requantization`` asks whether a layer is weighted) can consult it without importing the op
modules, which import this one; ``ops/__init__`` holds the registration lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from ..fixedpoint import (
    ADD_LEFT_SHIFT,
    add_real_multipliers,
    multiply_by_quantized_multiplier,
    quantize_multiplier,
    real_multiplier,
    round_half_away,
)

if TYPE_CHECKING:  # only for annotations: tflite_io imports this module
    from .tflite_io import Subgraph, Writer


class IRError(ValueError):
    """A graph that is inconsistent or uses something the IR does not support. ``layer`` and
    ``tensor`` ("input" or "output") say where, when one tensor of one layer is at fault, so that the
    .tflite importer can name the operator and tensor of the file; ``detail`` is the message without
    the layer prefix."""

    def __init__(self, message: str, layer: int | None = None, tensor: str | None = None,
                 detail: str | None = None) -> None:
        super().__init__(message)
        self.layer, self.tensor, self.detail = layer, tensor, detail or message


DTYPES = {"int8": np.int8, "float32": np.float32}  # what a graph's tensors hold, and their numpy type
# every dtype a TensorInfo may describe: also int16, what TFLM's integer LSTM keeps its cell state in
TENSOR_DTYPES = {**DTYPES, "int16": np.int16}
INT_RANGES = {"int8": (-128, 127), "int16": (-32768, 32767)}
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class TensorInfo:
    """Shape (without batch) and per-tensor int8 quantization of an activation, or a float32 activation
    (``dtype`` "float32", see ``TensorInfo.float32``), which carries no quantization (scale 0, zero
    point 0): every tensor of a float32 graph, or the input or output at an int8 model's float boundary.
    An int16 one (symmetric, zero point 0) describes an LSTM's cell state; graphs do not pass int16
    tensors between layers yet (``Graph.validate``)."""

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
        return TENSOR_DTYPES[self.dtype]

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.np_dtype).itemsize

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Real values -> what this tensor holds: int8 (or int16) with its parameters (round half away from zero,
        as TFLite), or float32 unchanged for a float tensor."""
        if self.is_float:
            return np.asarray(x, dtype=np.float32)
        q = round_half_away(x / np.float32(self.scale)) + self.zero_point
        return np.clip(q, *INT_RANGES[self.dtype]).astype(self.np_dtype)

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


class Layer(Protocol):
    """What every IR layer has: the TFLite op name and the tensor it writes. Everything else about a
    layer's type is in its ``Op`` record (``op_of``)."""

    op: str
    output: TensorInfo


# --- the per-op record and the registry -------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """Where a layer's check runs, for its error messages: ``error(detail)`` says "layer i (OP): detail";
    with ``tensor`` ("input" or "output") it also records which tensor of the layer is at fault, so
    that the .tflite importer can name the file's operator and tensor."""

    index: int
    op: str
    reads: tuple[int, ...]   # the tensor ids the layer reads
    float_graph: bool        # the graph is float32 throughout

    def __str__(self) -> str:
        return f"layer {self.index} ({self.op})"

    def error(self, detail: str, tensor: str | None = None) -> IRError:
        if tensor is None:
            return IRError(f"{self}: {detail}")
        return IRError(f"{self}: {detail}", self.index, tensor, detail)


@dataclass(frozen=True)
class Builtin:
    """One TFLite builtin operator an op reads and writes: its code (``BuiltinOperator``), the builtin
    options type an operator of it must carry (None: none or optional, the import hook decides), and
    how many inputs it has at least (activations, then constants such as weights or a shape)."""

    code: int
    options: int | None
    min_inputs: int


CFields = tuple[tuple[str, str], ...]   # (field name, C type) in declaration order


def c_fields(ctype: str, *names: str) -> CFields:
    """Several descriptor fields of one C type.

    >>> c_fields("int16_t", "in_h", "in_w")
    (('in_h', 'int16_t'), ('in_w', 'int16_t'))
    """
    return tuple((n, ctype) for n in names)


@dataclass(frozen=True)
class CKernel:
    """The one C kernel an op without weights has in every kernel set (``mcu/kernels/stock_ops.c``,
    ``add.c``), as data: the descriptor ``struct`` of ``kernels/pp_kernels.h`` with its ``fields`` (a test
    holds them to the header), the C function (``kernel``, or ``kernel_for(layer, inputs)`` where the
    tensors' dtypes choose it) and ``values(layer, inputs)``, every field's value derived from the scales
    as TFLM derives it at Prepare time (plain numbers: ``mcu`` writes them as C)."""

    struct: str
    fields: CFields
    kernel: str
    values: Callable[[Any, tuple[TensorInfo, ...]], dict[str, int | float]]
    kernel_for: Callable[[Any, tuple[TensorInfo, ...]], str] | None = None


@dataclass(frozen=True)
class Op:
    """Everything the host side knows about one op type; each op module builds one (``OP``) and
    ``ops/__init__`` registers it. The hooks take the layer first:

    - ``check(layer, inputs, site)``: what ``Graph.validate`` asks of this op beyond the graph-wide wiring
      and dtype rules; ``inputs`` are the TensorInfos it reads; raise ``site.error(...)``.
    - ``run(layer, args, inputs)``: the int8 reference kernel, bit-exact with TFLM, on batched arrays
      (one per tensor read); ``run_f32`` the float32 one, None when the op has no float32 kernel.
    - ``macs(layer, inputs)``: dense multiply-accumulates per inference (0 for ops without weights).
    - ``export(layer, writer, index, reads, inputs, out)``: add the operator (and its constant inputs) to
      a ``tflite_io.Writer``; ``reads`` are the flatbuffer tensor ids of the activations it reads, ``out``
      the id of its output.
    - ``import_(subgraph, code, operator, out, where)``: the layer for one operator of a .tflite file
      whose builtin code is one of ``builtins``; raise ``TFLiteError`` naming ``where``.

    A stateful op (an LSTM: TFLM keeps its hidden and cell state in variable tensors that persist from
    one Invoke to the next until the interpreter is reset) also has ``reset_state(layer)``, the state
    of one sequence after a reset (a list of arrays), and ``run_stateful(layer, args, inputs, state)``,
    which starts each row of the batch from the batched ``state`` and returns (output, state after it).
    Its ``run`` is one independent sequence per row: ``run_stateful`` from the reset state.
    """

    layer: type
    builtins: tuple[Builtin, ...]
    arity: int | str   # how many tensors it reads; "n": any number >= 1 (a variadic op)
    weighted: bool     # holds weights, bias and weight scales (requantized per output channel)
    check: Callable[[Any, tuple[TensorInfo, ...], Site], None]
    run: Callable[[Any, list[np.ndarray], tuple[TensorInfo, ...]], np.ndarray]
    run_f32: Callable[[Any, list[np.ndarray], tuple[TensorInfo, ...]], np.ndarray] | None
    macs: Callable[[Any, tuple[TensorInfo, ...]], int]
    export: Callable[[Any, Writer, int, list[int], tuple[TensorInfo, ...], int], None]
    import_: Callable[[Subgraph, int, Any, TensorInfo, str], Any]
    # the int8 model's float boundary: an op that may read float32 (QUANTIZE, first) or writes float32
    # (DEQUANTIZE, last); every other op of an int8 model reads and writes int8
    reads_float: bool = False
    writes_float: bool = False
    # the constant arrays (weights, biases) of an op that holds them otherwise than ``weighted``'s
    # weights and bias (an LSTM's eight matrices and four biases): what ``layer_stats`` counts as params
    constants: Callable[[Any], tuple[np.ndarray, ...]] | None = None
    # its C kernel when it has one kernel for every set; ops with set-specific kernels (convolutions, FC,
    # pools, our table ADD) are lowered in ``mcu/lowering.py``, and an op with neither has no C kernel yet
    c: CKernel | None = None
    reset_state: Callable[[Any], list[np.ndarray]] | None = None
    run_stateful: Callable[[Any, list[np.ndarray], tuple[TensorInfo, ...], list[np.ndarray]],
                           tuple[np.ndarray, list[np.ndarray]]] | None = None

    @property
    def stateful(self) -> bool:
        """Whether the op carries state from one inference to the next (variable tensors in TFLM)."""
        return self.run_stateful is not None

    @property
    def float32(self) -> bool:
        """Whether a float32 graph may hold this op (it has a float32 reference kernel)."""
        return self.run_f32 is not None

    def takes(self, n: int) -> bool:
        """Whether a layer of this op may read ``n`` tensors."""
        return n >= 1 if self.arity == "n" else n == self.arity


@dataclass
class Registry:
    """The registered ops, found by layer class, by op name (a layer's ``op``) or by TFLite builtin code,
    in registration order (which orders the importer's list of supported ops)."""

    ops: list[Op]
    by_class: dict[type, Op]
    by_name: dict[str, Op]
    by_builtin: dict[int, tuple[Op, Builtin]]

    def register(self, op: Op, names: tuple[str, ...]) -> None:
        """Add ``op``, known by ``names`` (one per builtin); a second op for a class, name or code is a bug."""
        if op.layer in self.by_class or any(n in self.by_name for n in names) \
                or any(b.code in self.by_builtin for b in op.builtins):
            raise ValueError(f"op {op.layer.__name__} is registered twice or shares a name or builtin code")
        self.ops.append(op)
        self.by_class[op.layer] = op
        self.by_name.update(dict.fromkeys(names, op))
        self.by_builtin.update({b.code: (op, b) for b in op.builtins})

    def of(self, layer: Layer) -> Op:
        """The record of ``layer``'s type; a type nobody registered is one clear error."""
        try:
            return self.by_class[type(layer)]
        except KeyError:
            raise IRError(f"{type(layer).__name__} is not a registered op") from None


REGISTRY = Registry([], {}, {}, {})


def op_of(layer: Layer) -> Op:
    """The ``Op`` record of ``layer``."""
    return REGISTRY.of(layer)


def no_macs(layer: Layer, inputs: tuple[TensorInfo, ...]) -> int:
    """The ``macs`` hook of an op without weights: it does no dense multiply-accumulates."""
    return 0


# --- requantization, as TFLM derives it from the scales at Prepare time ------------------------------


@dataclass(frozen=True)
class Requant:
    """What an int8 kernel needs to go from int32 accumulators back to int8."""

    input_offset: int              # -input zero point
    output_offset: int             # output zero point
    multiplier: np.ndarray         # int32 per output channel
    shift: np.ndarray              # int32 per output channel


def requantization(layer: Layer, inp: TensorInfo) -> Requant:
    """Per-channel multipliers exactly as TFLM derives them from the scales at Prepare time."""
    if not op_of(layer).weighted or layer.output.is_float:
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


# --- geometry and the checks several ops share --------------------------------------------------------


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


def check_window(layer: Any, kernel: tuple[int, int], inp: TensorInfo, site: Site) -> None:
    """A sliding window (conv, depthwise conv, pool) over HWC tensors: the output's height and width
    are what stride, padding and the ``kernel`` window give."""
    out = layer.output
    if len(inp.shape) != 3 or len(out.shape) != 3:
        raise site.error(f"expects HWC tensors, got {inp.shape} -> {out.shape}")
    kh, kw = kernel
    oh, _ = output_size(inp.shape[0], kh, layer.stride[0], layer.padding)
    ow, _ = output_size(inp.shape[1], kw, layer.stride[1], layer.padding)
    if (oh, ow) != out.shape[:2]:
        raise site.error(f"output {out.shape[:2]} but geometry gives {(oh, ow)}")


def check_weights(layer: Any, channel_axis: int, site: Site) -> None:
    """Weights and bias of the graph's dtype (int8 and int32, or float32 with no weight scales, finite),
    one bias per output channel (``channel_axis`` of the weights)."""
    if site.float_graph:
        if layer.weights.dtype != np.float32 or layer.bias.dtype != np.float32 or layer.weight_scales.size:
            raise site.error("a float32 layer has float32 weights and bias and no weight scales")
        if not (np.isfinite(layer.weights).all() and np.isfinite(layer.bias).all()):
            raise site.error("weights or bias contain NaN or infinity")
    elif layer.weights.dtype != np.int8 or layer.bias.dtype != np.int32:
        raise site.error("weights must be int8 and bias int32")
    if layer.bias.shape != (layer.weights.shape[channel_axis],):
        raise site.error(f"bias shape {layer.bias.shape} does not match the weights")


def check_same_shape(inp: TensorInfo, out: TensorInfo, site: Site) -> None:
    """An elementwise op writes the shape it reads."""
    if inp.shape != out.shape:
        raise site.error(f"output shape {out.shape} differs from input shape {inp.shape}", "output")


SOFTMAX_OUTPUT = (1.0 / 256, -128)  # the (scale, zero point) TFLM's int8 SOFTMAX and LOGISTIC produce


def check_unit_output(out: TensorInfo, site: Site) -> None:
    """TFLM's int8 SOFTMAX and LOGISTIC write probabilities in steps of 1/256 from -128 and accept no
    other output quantization."""
    if not out.is_float and (out.scale, out.zero_point) != SOFTMAX_OUTPUT:
        raise site.error(f"scale {out.scale:g} and zero point {out.zero_point}; TFLM's int8 kernel writes scale "
                         "1/256 (0.00390625) and zero point -128", "output")
