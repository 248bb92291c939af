"""High-level calls shared by the CLI and Python users: any model file -> int8 graph, and its report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import Dataset, check_labels, load_fashion_mnist, load_npy
from .ir import Graph, TensorInfo
from .metrics import dense_reference, model_stats, reference_params, widths
from .model import ModelFileError, load_model
from .quantize import DEFAULT_CALIBRATION, float32_graph, quantize, quantize_images
from .reference import run
from .tflite import load_tflite
from .train import accuracy


def load_graph(path: str | Path, calibration: int = DEFAULT_CALIBRATION,
               calibration_data: Dataset | None = None, dtype: str = "int8", softmax: bool = False) -> Graph:
    """A .tflite is imported as is (int8 or float32, as the file says); a .pt model is quantized with
    ``calibration`` training images, or with ``dtype`` "float32" kept in float32 (``softmax``: ending in
    a SOFTMAX, as the paper's model did)."""
    path = Path(path)
    if path.suffix == ".tflite":
        return load_tflite(path)
    if path.suffix != ".pt":
        raise ModelFileError(f"{path}: expected a .pt (powerprune) or .tflite model")
    model, _ = load_model(path)
    if dtype == "float32":
        return float32_graph(model, name=path.stem, softmax=softmax)
    data = calibration_data or load_fashion_mnist("train", calibration)
    return quantize(model, data.take(calibration), name=path.stem)


def int8_accuracy(graph: Graph, data: Dataset) -> float:
    """Top-1 accuracy of the deployed graph (int8, or float32 for a float32 graph), computed by the
    bit-exact host reference."""
    # the shape first: test images that do not fit the model make any label complaint beside the point
    if data.images.shape[1:] != tuple(graph.input.shape):
        raise ValueError(f"the model takes inputs of shape {tuple(graph.input.shape)}, the test images are "
                         f"{data.images.shape[1:]}")
    check_labels(data, graph.output.size)
    logits = run(graph, quantize_images(graph, data.images))
    return float((logits.reshape(len(data), -1).argmax(1) == data.labels).mean())


def evaluate_file(path: str | Path, test: Dataset) -> dict:
    """accuracy, params, nonzero_params, compression, macs (+ a few extras) of a model file."""
    path = Path(path)
    if path.suffix == ".tflite":
        graph = load_tflite(path)
        t = graph.totals()
        return {"accuracy": int8_accuracy(graph, test), "params": t["params"], "nonzero_params": t["nonzeros"],
                "compression": t["params"] / max(t["nonzeros"], 1), "macs": t["macs"], "int8": graph.dtype == "int8",
                "dtype": graph.dtype}
    model, info = load_model(path)
    s = model_stats(model)
    ref_weights = info.reference_weights or dense_reference(model).weights
    return {
        "accuracy": accuracy(model, test),
        "params": s.params,
        "nonzero_params": s.nonzero_params,
        "compression": s.compression(reference_params(model, info.reference_params)),
        "macs": s.macs,
        "nonzero_macs": s.nonzero_macs,
        "weight_compression": s.weight_compression(ref_weights),
        "method": info.method,
        "widths": widths(model),
    }


def load_inputs(path: str | Path, graph: Graph) -> np.ndarray:
    """X.npy as the graph's input: int8 is taken as already quantized, float32 is quantized, uint8 is
    read as pixels 0..255; a float32 graph takes float32 values as they are. A single sample without
    batch axis is accepted."""
    x = load_npy(path)
    if x.shape == graph.input.shape:
        x = x[None]
    if x.shape[1:] != graph.input.shape:
        # N,H,W for single-channel images is a common way to save them
        if x.ndim == len(graph.input.shape) and x.shape[1:] == graph.input.shape[:-1] and graph.input.shape[-1] == 1:
            x = x[..., None]
        else:
            raise ValueError(f"{path}: inputs have shape {x.shape}, the model takes (N, {graph.input.shape})")
    if graph.dtype == "float32" and x.dtype == np.int8:
        raise ValueError(f"{path}: int8 inputs are for an int8 model; this one is float32 (give float32 values or "
                         "uint8 pixels)")
    if x.dtype == np.int8:
        if graph.input.is_float:
            raise ValueError(f"{path}: the model takes float32 inputs (it quantizes them itself); save the real "
                             "values as float32")
        return x
    if x.dtype == np.uint8:
        return quantize_images(graph, x)
    if graph.dtype == "float32" and np.issubdtype(x.dtype, np.floating):
        if not np.isfinite(x).all():
            raise ValueError(f"{path}: float inputs contain NaN or infinity")
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.floating):
        _check_float_inputs(path, x, graph)
        return graph.input.quantize(x.astype(np.float32))
    raise ValueError(f"{path}: inputs must be int8 (quantized), float32 or uint8, got {x.dtype}")


def input_quantization(graph: Graph) -> TensorInfo:
    """The int8 encoding the model's inputs end up in: the input itself, or for a float-input model
    the output of its first layer (the QUANTIZE)."""
    return graph.layers[0].output if graph.input.is_float else graph.input


def random_inputs(graph: Graph, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded random inputs covering the model's whole int8 input range (for a float-input model,
    those int8 values dequantized, so its QUANTIZE sees every code); a float32 graph gets values in
    [0, 1), the range of the pixels it was trained on."""
    if graph.dtype == "float32":
        return np.random.default_rng(seed).random((n, *graph.input.shape), dtype=np.float32)
    q = np.random.default_rng(seed).integers(-128, 128, (n, *graph.input.shape), dtype=np.int8)
    return input_quantization(graph).dequantize(q) if graph.input.is_float else q


def _check_float_inputs(path: str | Path, x: np.ndarray, graph: Graph) -> None:
    """Float inputs are real values of the model's input tensor: NaN, infinity or values outside what
    its int8 encoding can hold (e.g. pixels 0..255 saved as float for a [0, 1] model) would be clipped
    into wrong inputs without a word. A float-input model quantizes them itself, with its QUANTIZE."""
    if not np.isfinite(x).all():
        raise ValueError(f"{path}: float inputs contain NaN or infinity")
    inp = input_quantization(graph)
    lo, hi = (-128 - inp.zero_point) * inp.scale, (127 - inp.zero_point) * inp.scale
    if x.size and (x.min() < lo - inp.scale / 2 or x.max() > hi + inp.scale / 2):
        raise ValueError(f"{path}: float inputs span [{x.min():g}, {x.max():g}], the model's int8 input holds "
                         f"[{lo:g}, {hi:g}]; save pixels 0..255 as uint8, or already quantized inputs as int8")
