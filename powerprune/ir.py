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
no weight scales. Such a graph holds only the ops with a float32 kernel (``Op.float32``: no
converting ops, no ADD, so it is a chain). ``Graph.dtype`` tells the two kinds apart (float32 = every
tensor is float32) and ``Graph.validate`` checks both.

Everything about one op (its layer class, its own checks, kernels, .tflite form) lives in its module
of ``powerprune.ops``; this module keeps what concerns the graph as a whole and re-exports the layer
classes and helpers, so ``from powerprune.ir import Conv2D`` works everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .ops import BY_NAME, OPS, op_of
from .ops.add import Add
from .ops.base import (
    DTYPES,
    FLOAT32_MAX,
    SOFTMAX_OUTPUT,
    Activation,
    AddRequant,
    IRError,
    Layer,
    Requant,
    Site,
    TensorInfo,
    add_requantization,
    mean_multiplier,
    output_size,
    requantization,
    requantize_multiplier,
    same_padding,
)
from .ops.conv2d import Conv2D
from .ops.depthwise_conv2d import DepthwiseConv2D
from .ops.dequantize import Dequantize
from .ops.fully_connected import FullyConnected
from .ops.logistic import Logistic
from .ops.mean import Mean
from .ops.pad import Pad
from .ops.pool2d import Pool2D
from .ops.quantize import Quantize
from .ops.reshape import Reshape
from .ops.softmax import SOFTMAX_MAX_DEPTH, Softmax
from .ops.svdf import SVDF
from .ops.unidirectional_sequence_lstm import UnidirectionalSequenceLSTM

__all__ = [
    "DTYPES", "FLOAT32_MAX", "SOFTMAX_MAX_DEPTH", "SOFTMAX_OUTPUT", "WEIGHTED", "Activation", "Add", "AddRequant",
    "Conv2D", "DepthwiseConv2D", "Dequantize", "FullyConnected", "Graph", "IRError", "Layer", "Logistic", "Mean",
    "Pad", "Pool2D", "Quantize", "Requant", "Reshape", "SVDF", "Softmax", "TensorInfo", "UnidirectionalSequenceLSTM",
    "add_requantization", "mean_multiplier", "output_size", "requantization", "requantize_multiplier", "same_padding",
]

# the layer classes with weights, bias and weight scales, for backends that ask of a layer's type
WEIGHTED = tuple(op.layer for op in OPS if op.weighted)


def _check_tensor(t: TensorInfo, where: str) -> None:
    """A known dtype, and no quantization on a float32 tensor (so that no stage can mistake it)."""
    if t.dtype == "int16":  # only inside an op (an LSTM's cell state), not yet between layers
        raise IRError(f"{where}: int16 tensors between layers are not supported yet; graph tensors are int8 "
                      "or float32")
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
            op = op_of(layer)
            if not op.takes(len(ids)):
                takes = "one or more" if op.arity == "n" else op.arity
                raise IRError(f"{where}: reads {len(ids)} tensor(s) {list(ids)}, it takes {takes}")
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
        enter through a first QUANTIZE and leave through a last DEQUANTIZE, or float32 throughout.
        The graph-wide rules are checked here, each op's own constraints by its ``check`` hook."""
        self._validate_wiring()
        _check_tensor(self.input, "the graph input")
        for i, layer in enumerate(self.layers):
            _check_tensor(layer.output, f"layer {i} ({layer.op})")
        float_graph = self.dtype == "float32"
        if float_graph:
            self._validate_float32()
        elif self.input.is_float and not (self.layers and op_of(self.layers[0]).reads_float
                                          and self.readers(0) == [0]):
            raise IRError("a float32 model input must feed a QUANTIZE layer (and nothing else) in an int8 model, "
                          "or every tensor must be float32 (a float32 model)")
        for i, layer, inp in self.steps():
            where = f"layer {i} ({layer.op})"
            op = op_of(layer)
            if not float_graph:
                if layer.output.is_float != op.writes_float:
                    raise IRError(f"{where}: only DEQUANTIZE writes float32 in an int8 model, and it writes "
                                  "nothing else")
                if op.writes_float and i != len(self.layers) - 1:
                    raise IRError(f"{where}: DEQUANTIZE must be the last layer (float32 only leaves the model)")
                if inp.is_float and not op.reads_float:
                    raise IRError(f"{where}: takes int8 input, got float32")
            op.check(layer, self.inputs_of(i), Site(i, layer.op, self.reads[i], float_graph))

    def _validate_float32(self) -> None:
        """A float32 graph runs TFLM's float reference kernels, which exist here for the paper's layers
        only; every other op (ADD, and so residual networks, LOGISTIC, MEAN, PAD, QUANTIZE, DEQUANTIZE)
        is int8 only. With one-input layers only, the wiring rules make every float32 graph a chain."""
        for i, layer in enumerate(self.layers):
            if not op_of(layer).float32:
                detail = (f"{layer.op} has no float32 kernel: a float32 model holds {_float32_op_names()} only; "
                          "quantize it to int8 for the other ops")
                raise IRError(f"layer {i} ({layer.op}): {detail}", i, "output", detail)

    # --- sizes a user asks about ---------------------------------------------------------------
    def layer_stats(self) -> list[dict]:
        """Per layer: op, the tensor ids it reads, shapes (input: the first one it reads), params
        (weights + biases), nonzeros, MACs (dense, the op's ``macs``), sparsity."""
        rows = []
        for i, layer, inp in self.steps():
            op = op_of(layer)
            arrays = (layer.weights, layer.bias) if op.weighted else op.constants(layer) if op.constants else ()
            params = sum(a.size for a in arrays)
            nonzeros = sum(int(np.count_nonzero(a)) for a in arrays)
            rows.append({
                "index": i, "op": layer.op, "reads": list(self.reads[i]), "input": inp.shape,
                "output": layer.output.shape,
                "params": params, "nonzeros": nonzeros, "macs": op.macs(layer, self.inputs_of(i)),
                "sparsity": 1 - nonzeros / params if params else 0.0,
            })
        return rows

    def totals(self) -> dict:
        rows = self.layer_stats()
        return {k: sum(r[k] for r in rows) for k in ("params", "nonzeros", "macs")}


def _float32_op_names() -> str:
    """"CONV_2D, ... and SOFTMAX": the ops a float32 graph may hold, for its error message."""
    names = [name for name, op in BY_NAME.items() if op.float32]
    return ", ".join(names[:-1]) + " and " + names[-1]
