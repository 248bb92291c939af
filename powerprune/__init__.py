"""powerprune: prune neural networks so they really run cheaper on microcontrollers, and measure it.

Python API in one screen::

    from powerprune import load_fashion_mnist, lenet5, fit, Recipe, prune, quantize, export_tflite
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    model = lenet5(); fit(model, train, Recipe())
    pruned = prune(model, "apoz", 4, train, test).model
    graph = quantize(pruned, train.take(500))      # int8 IR
    open("m.tflite", "wb").write(export_tflite(graph))

Your own network (any chain or residual network of supported PyTorch layers) and data work the same way:
``prune(my_module, "energy", 4, load_npz("data.npz"), cycles=auto_cycles)`` (the Pico's cost model,
from ``powerprune.mcu.costmodel``); see examples/digits/README.md.
"""

__version__ = "0.1.0"

import sys  # noqa: E402
from importlib import import_module  # noqa: E402
from types import ModuleType  # noqa: E402

from . import numerics  # noqa: E402

numerics.pin_environment()  # before anything imports torch: the same numbers on every machine

# The public API by the module that defines it. Names load on first use (PEP 562), so that importing a
# torch-free part of the package (the report, the IR, the .tflite reader) does not import torch.
_API = {
    "api": ("evaluate_file", "int8_accuracy", "load_graph"),
    "data": ("Dataset", "from_arrays", "from_torch_dataset", "load_fashion_mnist", "load_npz"),
    "ir": ("Graph",),
    "model": ("ARCHS", "LeNetArch", "build_arch", "lenet5", "load_model", "paper_cnn", "save_model"),
    "prune.api": ("prune",),
    "quantize": ("float32_graph", "quantize"),
    "reference": ("run_reference",),
    "seqnet": ("SeqNet", "from_torch"),
    "tflite": ("export_tflite", "import_tflite", "load_tflite"),
    "train": ("PAPER_TRAINING", "Recipe", "accuracy", "fit"),
}
_RENAMED = {"run_reference": "run"}  # exported under another name than its module's
_HOME = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_HOME)


def __getattr__(name: str) -> object:
    if name not in _HOME:
        raise AttributeError(f"module 'powerprune' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOME[name]}", __name__), _RENAMED.get(name, name))
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(ModuleType):
    """This package's module object. Two names of the API are also names of submodules (``prune``,
    ``quantize``), and importing a submodule makes Python bind it to the package's attribute of that
    name, which would hide the function. The API keeps its names; the submodules stay reachable as every
    import finds them, in ``sys.modules``."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _HOME and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
