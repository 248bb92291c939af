"""The kernel sets, as records of what each can do, and the per-layer choice of an implementation.

A kernel set is what a user names (``--kernels dense``); an implementation is the C a layer actually
runs (the suffix of its kernel function: ``pp_conv2d_dense``). A set says, per op kind, which
implementations it would run the layer as, and where a layer lies outside an implementation's limits
(``fits``) the set's fallbacks are tried in order, so that every set runs every int8 model. ``auto``
is the one set with two candidates for some ops; it picks between them per layer, by the cost model
or (``mcu.autotune``) by measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..ir import Graph, Layer, TensorInfo, output_size, requantization
from . import costmodel
from .cgen import CodegenError
from .stock import STOCK
from .streams import DENSE_CONV_WEIGHTS_MAX, WEIGHTED_OPS, accumulator_bound, depthwise_groups

# the implementations (C function suffixes) a layer can run as; "stock" is the one kernel every set
# shares for an op without weights (kernels/stock_ops.c, kernels/add.c)
IMPLEMENTATIONS = ("tflmref", "tflmskip", "cmsisnn", "dense", "sparse", "stock")


@dataclass(frozen=True)
class KernelSet:
    """What one kernel set runs each kind of layer as. A field holding several implementations lets
    the set choose per layer (``auto``); ops not named here (SOFTMAX, LOGISTIC, MEAN, PAD, QUANTIZE,
    DEQUANTIZE) run their stock kernel in every set, RESHAPE is a view (its impl is 'tflmref')."""

    name: str
    family: Literal["stock", "adapted", "ours"]   # a baseline as pico-tflmicro ships it, the paper's
                                                  # adapted TFLM, or powerprune's own kernels
    dtypes: tuple[str, ...]           # the graph dtypes (``Graph.dtype``) it has kernels for
    conv: tuple[str, ...]             # CONV_2D
    depthwise: tuple[str, ...]        # DEPTHWISE_CONV_2D
    fully_connected: tuple[str, ...]  # FULLY_CONNECTED
    pool: tuple[str, ...]             # MAX_POOL_2D and AVERAGE_POOL_2D
    add: str                          # ADD: 'stock' (TFLM's arithmetic) or 'dense' (table-driven, add.c)
    fallbacks: tuple[str, ...] = ()   # tried in order when a layer is outside its implementation's limits
    stages: bool = False              # whether its kernels' data may be copied to SRAM (staging.py)

    def candidates(self, op: str) -> tuple[str, ...]:
        """The implementations this set would run a layer of ``op`` as, before its limits are checked."""
        by_op = dict(zip(_SET_OPS, (self.conv, self.depthwise, self.fully_connected, self.pool, self.pool,
                                    (self.add,), ("tflmref",)), strict=True))
        if not has_c_kernel(op):
            raise CodegenError(f"no C kernel for {op} yet: the host reference runs it (infer --on host), "
                               "profile, deploy and infer --on rp2040 cannot")
        return by_op.get(op, ("stock",))

    @property
    def per_layer(self) -> bool:
        """Whether the set chooses between implementations layer by layer (and so takes a plan)."""
        return any(len(c) > 1 for c in (self.conv, self.depthwise, self.fully_connected, self.pool))


_TFLM = ("tflmref",)
SETS: tuple[KernelSet, ...] = (
    # TFLM's reference kernels; CMSIS-NN's pure-C path for the M0+ (kernels/cmsis_nn.c)
    KernelSet("tflm-ref", "stock", ("int8", "float32"), _TFLM, _TFLM, _TFLM, _TFLM, "stock"),
    KernelSet("cmsis-nn", "stock", ("int8",), ("cmsisnn",), ("cmsisnn",), ("cmsisnn",), ("cmsisnn",), "stock"),
    # ours: dense and sparse share the depthwise kernel (a depthwise layer has few weights per output,
    # 9 for 3x3, so skipping zeros saves little next to the per-output requantization), the pools and
    # the table-driven ADD; a sparse layer the sparse kernels cannot take runs dense, then tflm-ref
    KernelSet("dense", "ours", ("int8",), ("dense",), ("dense",), ("dense",), ("dense",), "dense",
              fallbacks=_TFLM, stages=True),
    KernelSet("sparse", "ours", ("int8",), ("sparse",), ("dense",), ("sparse",), ("dense",), "dense",
              fallbacks=("dense", "tflmref"), stages=True),
    KernelSet("auto", "ours", ("int8",), ("dense", "sparse"), ("dense",), ("dense", "sparse"), ("dense",), "dense",
              fallbacks=("dense", "tflmref"), stages=True),
    # the paper's "adapted TFLM": the tflm-ref loops skipping the multiply of a zero weight (pools
    # have no weights, so they are tflm-ref's); only the paper-exact run profiles it by default
    KernelSet("tflm-skip", "adapted", ("int8", "float32"), ("tflmskip",), ("tflmskip",), ("tflmskip",), _TFLM,
              "stock"),
)
BY_NAME = {s.name: s for s in SETS}

KERNEL_SETS = tuple(s.name for s in SETS)
OUR_SETS = tuple(s.name for s in SETS if s.family == "ours")
ADAPTED_KERNELS = next(s.name for s in SETS if s.family == "adapted")
# float32 graphs run on TFLM's float reference kernels, stock or zero-skipping (kernels/tflm_float.c)
FLOAT_KERNEL_SETS = tuple(s.name for s in SETS if "float32" in s.dtypes)


def kernel_set(name: str) -> KernelSet:
    """The record of the set called ``name``; a CodegenError naming the sets for any other name."""
    if name not in BY_NAME:
        raise CodegenError(f"unknown kernel set {name!r}; available: {', '.join(KERNEL_SETS)}")
    return BY_NAME[name]


def _require(kset: KernelSet, dtype: str) -> None:
    if dtype not in kset.dtypes:
        raise CodegenError(f"kernel set {kset.name!r} has no {dtype} kernels; a {dtype} model runs on "
                           f"{' or '.join(kernel_sets(dtype))}")


def kernel_sets(dtype: str) -> tuple[str, ...]:
    """The kernel sets that can run a graph of ``dtype`` (``Graph.dtype``)."""
    return tuple(s.name for s in SETS if dtype in s.dtypes)


def fits(impl: str, layer: Layer, inp: TensorInfo) -> bool:
    """Whether ``impl`` has a kernel for this layer: the limits of our fast kernels (the stock ones run
    anything the IR admits). 'dense' has kernels for the weighted ops, the pools and ADD; 'sparse' for
    CONV_2D and FULLY_CONNECTED."""
    if impl not in ("dense", "sparse"):
        return True
    op = layer.op
    if impl == "dense" and op in ("ADD", "AVERAGE_POOL_2D"):
        return True  # the table-driven ADD; the average pool takes any window and padding (dense_dw.c)
    if impl == "dense" and op == "MAX_POOL_2D":  # windows that never cross the input's edge
        return layer.padding == "VALID" or all(
            output_size(n, k, s, "SAME")[1] == 0 and (n - k) % s == 0
            for n, k, s in zip(inp.shape[:2], layer.size, layer.stride, strict=True))
    if op not in (WEIGHTED_OPS if impl == "dense" else ("CONV_2D", "FULLY_CONNECTED")):
        return False
    if accumulator_bound(layer, requantization(layer, inp)) >= 2**30:
        return False  # the fast requantization (kernels/pp_m0.h) needs |accumulator| < 2^30
    if impl == "sparse":  # a sparse FC entry holds its input index in 24 bits
        return op == "CONV_2D" or inp.size < 2**24
    if op == "DEPTHWISE_CONV_2D":  # the int32 weight stream would crowd the 2 MB of flash
        taps = layer.weights.shape[1] * layer.weights.shape[2]
        return 4 * (layer.weights.size + taps * len(depthwise_groups(layer, inp))) <= DENSE_CONV_WEIGHTS_MAX
    if op == "CONV_2D":  # the dense convolution's int32 weights would crowd the 2 MB of flash
        return 4 * layer.weights.size <= DENSE_CONV_WEIGHTS_MAX
    return True


def _resolve(kset: KernelSet, impl: str, layer: Layer, inp: TensorInfo) -> str:
    """``impl`` if it fits the layer, else the first of the set's fallbacks that does."""
    for candidate in (impl, *kset.fallbacks):
        if fits(candidate, layer, inp):
            return candidate
    raise CodegenError(f"kernel set {kset.name!r} has no kernel for {layer.op}")  # pragma: no cover - tflmref


def _options(kset: KernelSet, layer: Layer, inp: TensorInfo) -> tuple[str, ...]:
    """What the set may run one int8 layer as, each candidate after its fallbacks, without repeats."""
    return tuple(dict.fromkeys(_resolve(kset, c, layer, inp) for c in kset.candidates(layer.op)))


# the ops with a kernel set-specific C implementation; every other op with a C kernel has one stock kernel
_SET_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD", "RESHAPE")


def has_c_kernel(op: str) -> bool:
    """Whether the firmware can run ``op`` at all (an op the host reference runs, such as an LSTM, may
    have no C kernel yet)."""
    return op in _SET_OPS or op in STOCK


def choose_kernel(layer: Layer, inp: TensorInfo, kernels: str) -> str:
    """The C implementation ('tflmref', 'tflmskip', 'cmsisnn', 'dense', 'sparse' or 'stock') one layer
    gets under a kernel set. A set choosing per layer takes the cost model's prediction
    (``costmodel.prefers_sparse``) between its options. A layer of a float32 graph runs TFLM's float
    kernels, which only the sets with float32 in their ``dtypes`` have."""
    kset = kernel_set(kernels)
    if inp.is_float and layer.output.is_float:  # a float32 graph (QUANTIZE/DEQUANTIZE convert, below)
        _require(kset, "float32")
        impl = kset.candidates(layer.op)[0]
        return "tflmref" if impl == "stock" else impl   # float SOFTMAX is TFLM's reference kernel
    candidates = kset.candidates(layer.op)
    if len(candidates) == 1:
        return _resolve(kset, candidates[0], layer, inp)
    predicted = "sparse" if costmodel.prefers_sparse(layer) else "dense"
    return _resolve(kset, predicted, layer, inp)


def kernel_plan(graph: Graph, kernels: str) -> list[str]:
    """The implementation of every layer under ``kernels``; a CodegenError when the set cannot run the graph."""
    return [choose_kernel(layer, inp, kernels) for _, layer, inp in graph.steps()]


def auto_choices(graph: Graph) -> list[tuple[str, ...]]:
    """What ``auto`` may run each layer as: the implementation the ``dense`` set gives it and the one
    the ``sparse`` set gives it (one entry when they agree). ``mcu.autotune`` measures between them."""
    auto = kernel_set("auto")
    _require(auto, graph.dtype)
    return [_options(auto, layer, inp) for _, layer, inp in graph.steps()]


def checked_plan(graph: Graph, kernels: str, plan: Sequence[str] | None) -> list[str]:
    """``plan`` (one implementation per layer, for the ``auto`` set only) after checking that every entry
    is one ``auto`` may choose; without a plan, the set's own choice (``kernel_plan``)."""
    if plan is None:
        return kernel_plan(graph, kernels)
    if not kernel_set(kernels).per_layer:
        raise CodegenError(f"only the auto kernel set takes a per-layer plan, not {kernels!r}")
    if len(plan) != len(graph.layers):
        raise CodegenError(f"the plan names {len(plan)} implementations for {len(graph.layers)} layers")
    for i, (impl, choices) in enumerate(zip(plan, auto_choices(graph), strict=True)):
        if impl not in choices:
            raise CodegenError(f"layer {i} ({graph.layers[i].op}) cannot run as {impl!r} under auto; "
                               f"it can run as {' or '.join(map(repr, choices))}")
    return list(plan)


def reported(graph: Graph, impls: Sequence[str]) -> list[str]:
    """``impls`` as profiles report them: 'reshape' for a reshape (a view or a copy, no kernel)."""
    return ["reshape" if layer.op == "RESHAPE" else impl for layer, impl in zip(graph.layers, impls, strict=True)]


def layer_kernels(graph: Graph, kernels: str, plan: Sequence[str] | None = None) -> list[str]:
    """The implementation each layer gets under ``kernels`` (and ``plan``, see ``checked_plan``), as
    profiles report it: 'tflmref', 'tflmskip', 'cmsisnn', 'dense', 'sparse' or 'stock', and 'reshape'
    for a reshape (a view or a copy, no kernel)."""
    return reported(graph, checked_plan(graph, kernels, plan))
