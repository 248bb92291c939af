"""Per-layer cost model that lets the ``auto`` kernel set pick dense or sparse.

The inner loops cost a fixed number of cycles per multiply-accumulate (dense: every weight) or per
nonzero weight (sparse: one more load for the offset); everything else (requantization, loop setup,
padding) is the same for both, so the choice reduces to comparing the two per-weight costs scaled by
density. The constants are fitted by ``python bench/bench_kernels.py`` on the virtual Pico
(BENCHMARKS.md shows the fit); refit them when the kernels change.
"""

from __future__ import annotations

import numpy as np

from ..ir import Conv2D, FullyConnected, Layer

# cycles per weight visited in the inner loop, measured on the virtual Pico (flash layout)
DENSE_CYCLES_PER_MAC = {"CONV_2D": 8.6, "FULLY_CONNECTED": 9.3}
SPARSE_CYCLES_PER_NONZERO = {"CONV_2D": 9.6, "FULLY_CONNECTED": 11.3}


def density(layer: Layer) -> float:
    return float(np.count_nonzero(layer.weights)) / layer.weights.size


def prefers_sparse(layer: Layer) -> bool:
    if not isinstance(layer, Conv2D | FullyConnected):
        return False
    return density(layer) * SPARSE_CYCLES_PER_NONZERO[layer.op] < DENSE_CYCLES_PER_MAC[layer.op]
