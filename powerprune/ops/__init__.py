"""The op registry: one module per op holds everything the host side knows about it (the IR layer
class, what ``Graph.validate`` checks of it, its int8 and float32 reference kernels, its .tflite import
and export, its arity, float32 support, weights, MACs and C descriptor) in one ``Op`` record, and
``MODULES`` below registers them. ``Graph.validate``, ``reference`` and ``tflite`` loop over the registry instead of
asking each layer's type in turn; docs/adding-an-op.md lists the steps for a new op.

Registration order is the order the importer names the supported ops in.
"""

from __future__ import annotations

from importlib import import_module

from .base import REGISTRY, CKernel, Op, op_of
from .tflite_io import OP_NAMES

# Every op, by the name of its module: the one line a new op adds. The order is the order the importer
# names the supported ops in when it refuses a file.
MODULES = ("conv2d", "depthwise_conv2d", "fully_connected", "pool2d", "reshape", "add", "softmax", "logistic",
           "mean", "pad", "quantize", "dequantize", "unidirectional_sequence_lstm", "svdf")


def register(op: Op) -> None:
    """Make ``op`` known by its layer class, its op names (those of its TFLite builtins) and builtin codes."""
    REGISTRY.register(op, tuple(OP_NAMES[b.code] for b in op.builtins))


for _module in MODULES:
    register(import_module(f".{_module}", __name__).OP)

OPS: list[Op] = REGISTRY.ops                        # every registered op, in registration order
BY_NAME: dict[str, Op] = REGISTRY.by_name           # by a layer's ``op`` ("MAX_POOL_2D", ...)
BY_CLASS: dict[type, Op] = REGISTRY.by_class        # by layer class
BY_BUILTIN = REGISTRY.by_builtin                    # by TFLite builtin code: (op, its Builtin record)

__all__ = ["BY_BUILTIN", "BY_CLASS", "BY_NAME", "OPS", "CKernel", "Op", "op_of", "register"]
