"""Host reference interpreter: the IR evaluated in numpy, bit-exact with TFLite Micro's int8 kernels
and with its float32 reference kernels.

int8: accumulation happens in float64 BLAS matmuls: every int8 x int8 product and every partial sum
stays far below 2**53, so float64 is exact while being much faster than numpy's integer matmul.
Requantization then runs in int64 with TFLM's fixed-point rules (``fixedpoint``).

float32: float addition is not associative, so a matmul (which sums in its own order, in blocks and
with FMA) would differ from TFLM in the last bits. Instead every sum runs in TFLM's order, one term at a
time over the whole batch: an accumulator array starts at +0, and each weight tap adds its products
(numpy multiplies, then adds, each rounded to float32, as TFLM's scalar loop does). Out-of-image taps
are padded with zeros: TFLM skips them, and adding a zero product to a sum that starts at +0 never
changes it (a float32 sum starting at +0 is never -0). The SOFTMAX calls the C library's expf, the
function TFLM's std::exp(float) calls on this host.

State: a stateful op (UNIDIRECTIONAL_SEQUENCE_LSTM) keeps state from one inference to the next in TFLM
(variable tensors, kept until the interpreter is reset). ``run`` treats every row as one independent
inference from the reset state, the default and what "one row = one sequence" means; ``run(...,
stream=True)`` carries the state from row to row, as a device that never resets; ``Stream`` does the
same across calls, with ``reset`` for the device's reset command.

Each op's kernels live in its module of ``powerprune.ops``; this module runs a graph through them.
"""

from __future__ import annotations

import numpy as np

from .ir import Graph, Layer, TensorInfo
from .ops import op_of
from .ops.softmax import SoftmaxAbort, expf, softmax_arguments, softmax_from_exponentials

__all__ = ["BATCH", "SoftmaxAbort", "Stream", "expf", "run", "run_layer", "softmax_arguments",
           "softmax_from_exponentials"]

BATCH = 500  # images per chunk; bounds the im2col buffers to a few hundred MB


def _kernel(layer: Layer, args: list[np.ndarray], inputs: tuple[TensorInfo, ...]) -> np.ndarray:
    """One layer on its batched inputs. A layer that reads and writes float32 belongs to a float32 graph
    and runs TFLM's float kernel; QUANTIZE and DEQUANTIZE (float32 on one side only) are int8 layers at
    a float boundary."""
    op = op_of(layer)
    if inputs[0].is_float and layer.output.is_float:
        if op.run_f32 is None:
            raise TypeError(f"no float32 reference kernel for {type(layer).__name__}")
        return op.run_f32(layer, args, inputs)
    return op.run(layer, args, inputs)


def run_layer(x: np.ndarray, layer: Layer, inp: TensorInfo) -> np.ndarray:
    """One layer that reads one tensor on a batch of int8 (or float32) NHWC (or N, features) tensors."""
    return _kernel(layer, [x], (inp,))


def _checked_input(graph: Graph, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != graph.input.np_dtype:
        raise TypeError(f"reference input must be {graph.input.dtype}, got {x.dtype}; convert with "
                        "graph.input.quantize")
    if x.shape[1:] != graph.input.shape:
        raise ValueError(f"input shape {x.shape[1:]} does not match the model's {graph.input.shape}")
    return x


def run(graph: Graph, x: np.ndarray, batch: int = BATCH, stream: bool = False) -> np.ndarray:
    """Inputs (N, *input shape) -> outputs (N, *output shape): int8 (float32 at an int8 model's float
    boundary), or float32 throughout for a float32 graph. Each row is an independent inference (stateful
    layers start from their reset state); ``stream``: the rows are consecutive inferences of one device
    from reset, each stateful layer continuing from the state the previous row left."""
    if stream:
        return Stream(graph).run(x)
    x = _checked_input(graph, x)
    outs = [_run_batch(graph, x[i:i + batch]) for i in range(0, len(x), batch)]
    if not outs:
        return np.zeros((0,) + graph.output.shape, graph.output.np_dtype)
    return np.concatenate(outs)


class Stream:
    """The graph as a device that keeps its stateful layers' state between inferences (TFLM's variable
    tensors without a reset): ``run`` continues from where the previous call left, ``reset`` returns
    to the state after TFLM's ResetVariableTensors. A graph without stateful layers streams exactly as
    ``run`` computes it."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.state: dict[int, list[np.ndarray]] = {}
        self.reset()

    def reset(self) -> None:
        """Every stateful layer back to its reset state."""
        self.state = {i: op_of(layer).reset_state(layer) for i, layer in enumerate(self.graph.layers)
                      if op_of(layer).stateful}

    def run(self, x: np.ndarray) -> np.ndarray:
        """Rows (N, *input shape) as N consecutive inferences, in order; returns (N, *output shape)."""
        x = _checked_input(self.graph, x)
        if not self.state:
            return run(self.graph, x)
        outs = []
        for row in x:
            batched = {i: [s[None] for s in state] for i, state in self.state.items()}
            outs.append(_run_batch(self.graph, row[None], batched)[0])
            self.state = {i: [s[0] for s in state] for i, state in batched.items()}
        if not outs:
            return np.zeros((0,) + self.graph.output.shape, self.graph.output.np_dtype)
        return np.stack(outs)


def _run_batch(graph: Graph, x: np.ndarray, state: dict[int, list[np.ndarray]] | None = None) -> np.ndarray:
    """One chunk through the graph, holding each tensor only until its last reader ran. With ``state``
    (batched, by layer index) the stateful layers continue from it and leave their new state there."""
    values = {0: x}
    last = graph.last_reads()
    for i, layer, _ in graph.steps():
        args = [values[t] for t in graph.reads[i]]
        try:
            if state is not None and i in state:
                y, state[i] = op_of(layer).run_stateful(layer, args, graph.inputs_of(i), state[i])
            else:
                y = _kernel(layer, args, graph.inputs_of(i))
        except SoftmaxAbort as exc:
            raise SoftmaxAbort(f"layer {i} ({layer.op}): {exc}") from None
        for t in set(graph.reads[i]):
            if last[t] == i:
                del values[t]
        values[i + 1] = y
    return values[len(graph.layers)]
