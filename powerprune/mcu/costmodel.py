"""Per-layer cycle model that lets the ``auto`` kernel set pick dense or sparse for each layer.

cycles = a x work + b x outputs + c, where work is the MACs a kernel performs (dense: all of them;
sparse: only those with a nonzero weight), outputs the layer's output elements (requantization,
bias, per-pixel and per-row loop overhead) and c a per-layer constant (call, input copy, set-up,
which decide small layers such as LeNet's last one). The coefficients were fitted on the virtual Pico (flash
layout, 125 MHz) by ``python bench/bench_kernels.py`` on layers whose kernel data codegen staged in
SRAM, as it does whenever they fit (staging.staging_plan); BENCHMARKS.md shows the fit. Refit them
when the kernels change.

Since the sparse convolutions became generated straight-line code (mcu/sparsegen.py), a sparse
convolution is cheaper than the dense one at every density (3.3 vs 4.0 cycles per MAC): ``auto``
keeps choosing per layer, and for fully connected layers the choice still flips near 50 % density.
"""

from __future__ import annotations

import numpy as np

from ..counts import layer_macs
from ..ir import Conv2D, FullyConnected, Layer

# (a: cycles per MAC performed, b: per output element, c: per layer), from bench/results/kernels.json
COEFFICIENTS = {
    ("dense", "CONV_2D"): (4.03, 44.4, 0.0),
    ("sparse", "CONV_2D"): (3.25, 26.0, 30204.0),
    ("dense", "FULLY_CONNECTED"): (4.03, 32.4, 1486.0),
    ("sparse", "FULLY_CONNECTED"): (8.04, 78.9, 265.0),
}


def density(layer: Layer) -> float:
    return float(np.count_nonzero(layer.weights)) / layer.weights.size


def macs(layer: Conv2D | FullyConnected) -> int:
    return layer_macs(layer.weights.size, layer.output.shape, layer.op)


def kernel_cycles(op: str, impl: str, macs: float, nonzero_macs: float, outputs: int) -> float:
    """The fitted model for one layer from its sizes alone, so pruning can plan with it on a float
    model before anything is quantized."""
    a, b, c = COEFFICIENTS[(impl, op)]
    return a * (nonzero_macs if impl == "sparse" else macs) + b * outputs + c


def auto_cycles(op: str, macs: float, nonzero_macs: float, outputs: int) -> float:
    """What the ``auto`` kernel set pays: the cheaper of dense and sparse."""
    return min(kernel_cycles(op, impl, macs, nonzero_macs, outputs) for impl in ("dense", "sparse"))


def layer_cycles(layer: Conv2D | FullyConnected, impl: str) -> float:
    """The fitted model for an int8 layer of the IR on implementation ``impl`` (dense or sparse)."""
    m = macs(layer)
    return kernel_cycles(layer.op, impl, m, m * density(layer), layer.output.size)


def prefers_sparse(layer: Layer) -> bool:
    if layer.op not in ("CONV_2D", "FULLY_CONNECTED"):
        return False
    return layer_cycles(layer, "sparse") < layer_cycles(layer, "dense")
