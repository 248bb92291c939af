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


def predicted_cycles(layer: Conv2D | FullyConnected, impl: str) -> float:
    a, b = COEFFICIENTS[(impl, layer.op)]
    work = macs(layer) * (density(layer) if impl == "sparse" else 1.0)
    return a * work + b * layer.output.size


def prefers_sparse(layer: Layer) -> bool:
    if not isinstance(layer, Conv2D | FullyConnected):
        return False
    return predicted_cycles(layer, "sparse") < predicted_cycles(layer, "dense")
