"""The lowering of the stock ops: ops without weights whose one C kernel every kernel set shares
(kernels/stock_ops.c, and TFLM's arithmetic ADD in kernels/add.c, which the baselines run).

What each op's descriptor holds is the op's own business: its module in ``powerprune/ops/`` declares a
``CKernel`` (struct, fields, C function, and the field values derived from the tensors' scales, as
TFLM derives them at Prepare time). This module only makes C of it: one ``StockLowering`` per
registered op that has one, a float field written as an exact float literal. A new stock op therefore
needs no line here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..ir import Layer, TensorInfo
from ..ops import BY_NAME, CKernel
from .cgen import Struct, c_float

Values = dict[str, int | str]


@dataclass(frozen=True)
class StockLowering:
    """How one stock op becomes C: ``struct`` filled with ``values(layer, inputs)``, then
    ``<kernel>_stock(&descriptor, inputs..., output, scratch)``."""

    op: str
    struct: Struct
    kernel: str
    values: Callable[[Layer, Sequence[TensorInfo]], Values]
    # for an op whose C function depends on its tensors' dtypes: picks it in place of ``kernel``
    kernel_for: Callable[[Layer, Sequence[TensorInfo]], str] | None = None

    def kernel_name(self, layer: Layer, inputs: Sequence[TensorInfo]) -> str:
        return self.kernel if self.kernel_for is None else self.kernel_for(layer, inputs)


def _lowering(op: str, c: CKernel) -> StockLowering:
    struct = Struct(c.struct, c.fields)
    floats = {name for name, ctype in c.fields if ctype == "float"}

    def values(layer: Layer, inputs: Sequence[TensorInfo]) -> Values:
        return {k: c_float(v) if k in floats else v for k, v in c.values(layer, tuple(inputs)).items()}

    return StockLowering(op, struct, c.kernel, values, c.kernel_for)


# by op name: every registered op that declares its one C kernel
STOCK: dict[str, StockLowering] = {name: _lowering(name, op.c) for name, op in BY_NAME.items() if op.c is not None}
