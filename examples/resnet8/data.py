"""A synthetic CIFAR-sized dataset for the ResNet-8 example: nothing to download, made in a second.

Each of the 10 classes is a sinusoidal grating with its own orientation and frequency, in a random
colour, phase and contrast, under Gaussian pixel noise: 32x32x3 uint8 images that a small CNN learns
in an epoch or two, so pruning, APoZ and calibration see activations shaped by training rather than by
random weights. It stands in for CIFAR-10 where only shapes, speed and bit-exactness matter;
accuracies on it say nothing about CIFAR-10.

    python examples/resnet8/data.py resnet8-data.npz     # x_train, y_train, x_test, y_test
"""

import sys

import numpy as np


def make_images(n: int, seed: int, side: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (N, side, side, 3) uint8 and their labels 0..9, reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    angle = labels * np.pi / 10 + rng.normal(0, 0.05, n)
    freq = 0.15 + 0.06 * (labels % 5) + rng.normal(0, 0.005, n)
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float64)
    along = xx[None] * np.cos(angle)[:, None, None] + yy[None] * np.sin(angle)[:, None, None]
    wave = np.sin(2 * np.pi * freq[:, None, None] * along + rng.uniform(0, 2 * np.pi, n)[:, None, None])
    colour = rng.uniform(0.3, 1.0, (n, 1, 1, 3))
    contrast = rng.uniform(60, 120, (n, 1, 1, 1))
    img = 128 + contrast * wave[..., None] * colour + rng.normal(0, 20, (n, side, side, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), labels.astype(np.int64)


def make_dataset(n_train: int = 2000, n_test: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    x_train, y_train = make_images(n_train, seed)
    x_test, y_test = make_images(n_test, seed + 1)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


if __name__ == "__main__":
    np.savez_compressed(sys.argv[1] if len(sys.argv) > 1 else "resnet8-data.npz", **make_dataset())
