"""What the LeNet benchmarks share: their options and the trained LeNet as an int8 graph with inputs."""

from __future__ import annotations

import argparse

import numpy as np

from powerprune.data import load_fashion_mnist
from powerprune.ir import Graph
from powerprune.model import load_model
from powerprune.quantize import DEFAULT_CALIBRATION, quantize, quantize_images


def options(images: int, out: str, description: str) -> argparse.Namespace:
    """--model (the trained baseline, `make bench` trains it), --images, --out."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--model", default="bench/work/base.pt")
    ap.add_argument("--images", type=int, default=images)
    ap.add_argument("--out", default=out)
    return ap.parse_args()


def lenet_graph(model_path: str, images: int) -> tuple[Graph, np.ndarray]:
    """The model quantized as every command quantizes it, and ``images`` test images in its int8."""
    model, _ = load_model(model_path)
    graph = quantize(model, load_fashion_mnist("train", DEFAULT_CALIBRATION))
    return graph, quantize_images(graph, load_fashion_mnist("test", images).images)
