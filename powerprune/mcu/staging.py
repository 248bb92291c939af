"""SRAM staging: which layers' kernel data (or generated code) are copied to SRAM at boot.

The flash layout executes from flash through the 16 KB XIP cache, where a miss costs ~40 cycles per
8-byte line (~5 cycles per byte). The dense and sparse kernels' data can instead be copied to SRAM
once at boot (a .data section). A convolution re-reads its data for every output pixel; the kernels
therefore run a layer left in flash in blocks of output channels under the cache's size
(``streams.XIP_BLOCK_BYTES``), each block over all pixels, so its data pass through the cache about
once per inference, as a fully connected layer's weights do. What staging saves is then that one
pass, plus the threshold-table requantization, which only staged layers use (its lookups land
anywhere in the table, and from flash a miss costs more than the arithmetic saves), plus for
generated code the larger channel groups of a layer that need not fit the cache. Each layer's data
is staged if it fits the budget, most cycles saved per byte first. The stock kernels (tflm-ref,
cmsis-nn) keep their weights in flash: they are the baselines as pico-tflmicro runs them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..ir import Graph, Layer, TensorInfo, requantization
from . import sparsegen
from .streams import WEIGHTED_OPS, dense_stream, generated_conv, record_channels, requantizer

STAGING_BUDGET = 160 * 1024   # bytes of SRAM for staged kernel data plus the arena
XIP_CYCLES_PER_BYTE = 5       # one ~40-cycle miss per 8-byte line
RQ_TABLE_SAVES = 26           # cycles per output of a threshold table (22) instead of the arithmetic (48)



def kernel_data_bytes(layer: Layer, inp: TensorInfo, impl: str) -> int:
    """Bytes of the arrays a dense or sparse kernel streams through (0 for every other kernel)."""
    if impl == "dense" and layer.op in WEIGHTED_OPS:
        rq = requantization(layer, inp)
        rqz = requantizer("", layer, rq, record_channels(layer))
        stream = dense_stream(layer, inp, rq, rqz)
        return 4 * len(stream) + (0 if rqz.tables is None else 4 * rqz.tables.size)
    if generated_conv(layer, impl):
        return sparsegen.code_bytes_estimate(layer) + 1024 * layer.weights.shape[0]  # code, tables
    if impl == "sparse" and layer.op in ("CONV_2D", "FULLY_CONNECTED"):
        return 4 * int(np.count_nonzero(layer.weights)) + 12 * layer.weights.shape[0]
    return 0


def staging_plan(graph: Graph, impls: Sequence[str], arena: int) -> set[int]:
    """Indices of the layers whose kernel data go to SRAM: most cycles saved per byte first (one pass
    through the XIP cache, and the table requantization where the kernel has one)."""
    candidates = []
    for (i, layer, inp), impl in zip(graph.steps(), impls, strict=True):
        size = kernel_data_bytes(layer, inp, impl)
        if size:
            tables = impl == "dense" or generated_conv(layer, impl) or layer.op == "FULLY_CONNECTED"
            saved = XIP_CYCLES_PER_BYTE * size + (RQ_TABLE_SAVES * layer.output.size if tables else 0)
            candidates.append((saved / size, size, i))
    staged, used = set(), arena
    for _, size, i in sorted(candidates, reverse=True):
        if used + size <= STAGING_BUDGET:
            staged.add(i)
            used += size
    return staged
