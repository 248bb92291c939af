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

from .api import evaluate_file, int8_accuracy, load_graph  # noqa: E402
from .data import Dataset, from_arrays, from_torch_dataset, load_fashion_mnist, load_npz  # noqa: E402
from .ir import Graph  # noqa: E402
from .model import ARCHS, LeNetArch, build_arch, lenet5, load_model, paper_cnn, save_model  # noqa: E402
from .prune import prune  # noqa: E402
from .quantize import float32_graph, quantize  # noqa: E402
from .reference import run as run_reference  # noqa: E402
from .seqnet import SeqNet, from_torch  # noqa: E402
from .tflite import export_tflite, import_tflite, load_tflite  # noqa: E402
from .train import PAPER_TRAINING, Recipe, accuracy, fit  # noqa: E402

__all__ = [
    "ARCHS", "PAPER_TRAINING", "Dataset", "Graph", "LeNetArch", "Recipe", "SeqNet", "accuracy", "build_arch",
    "evaluate_file", "export_tflite", "fit", "float32_graph", "from_arrays", "from_torch", "from_torch_dataset",
    "import_tflite", "int8_accuracy", "lenet5", "load_fashion_mnist", "load_graph", "load_model", "load_npz",
    "load_tflite", "paper_cnn", "prune", "quantize", "run_reference", "save_model",
]
