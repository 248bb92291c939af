"""Per-layer cycle model that lets the ``auto`` kernel set pick dense or sparse for each layer.

cycles = a x work + b x outputs, where work is the MACs a kernel performs (dense: all of them;
sparse: only those with a nonzero weight) and outputs the layer's output elements (requantization,
window gathering, loop overhead). The coefficients were fitted on the virtual Pico (flash layout,
125 MHz, XIP misses included) by ``python bench/bench_kernels.py``; BENCHMARKS.md shows the fit.
Refit them when the kernels change.
"""

from __future__ import annotations

import numpy as np

from ..ir import Conv2D, FullyConnected, Layer

# (a: cycles per MAC performed, b: cycles per output element), from bench/results/kernels.json
COEFFICIENTS = {
    ("dense", "CONV_2D"): (8.55, 165.8),
    ("sparse", "CONV_2D"): (8.20, 136.3),
    ("dense", "FULLY_CONNECTED"): (14.29, 169.2),
    ("sparse", "FULLY_CONNECTED"): (25.34, 236.7),
}


def density(layer: Layer) -> float:
    return float(np.count_nonzero(layer.weights)) / layer.weights.size


def macs(layer: Conv2D | FullyConnected) -> int:
    pixels = 1 if isinstance(layer, FullyConnected) else layer.output.shape[0] * layer.output.shape[1]
    return layer.weights.size * pixels


def kernel_cycles(op: str, impl: str, macs: float, nonzero_macs: float, outputs: int) -> float:
    """The fitted model for one layer from its sizes alone, so pruning can plan with it on a float
    model before anything is quantized."""
    a, b = COEFFICIENTS[(impl, op)]
    return a * (nonzero_macs if impl == "sparse" else macs) + b * outputs


def auto_cycles(op: str, macs: float, nonzero_macs: float, outputs: int) -> float:
    """What the ``auto`` kernel set pays: the cheaper of dense and sparse."""
    return min(kernel_cycles(op, impl, macs, nonzero_macs, outputs) for impl in ("dense", "sparse"))


def layer_cycles(layer: Conv2D | FullyConnected, impl: str) -> float:
    """The fitted model for an int8 layer of the IR on implementation ``impl`` (dense or sparse)."""
    m = macs(layer)
    return kernel_cycles(layer.op, impl, m, m * density(layer), layer.output.size)


def prefers_sparse(layer: Layer) -> bool:
    if not isinstance(layer, Conv2D | FullyConnected):
        return False
    return layer_cycles(layer, "sparse") < layer_cycles(layer, "dense")
