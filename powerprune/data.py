"""FashionMNIST from Debian's ``dataset-fashion-mnist`` package, and your own data (arrays, .npz, torch).

The machines this tool runs on have no internet, so nothing is downloaded: the IDX files come from
the Debian package, and a missing or damaged file is reported naming that package.
"""

from __future__ import annotations

import gzip
import os
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
DEBIAN_PACKAGE = "dataset-fashion-mnist"
# (H, W, C) of every FashionMNIST image: what a model must take to run on the default data, known
# without reading the files.
FASHION_MNIST_SHAPE = (28, 28, 1)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

_FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}
_SPLIT_SIZE = {"train": 60000, "test": 10000}
_IDX_MAGIC_IMAGES = 0x00000803  # unsigned byte, 3 dimensions
_IDX_MAGIC_LABELS = 0x00000801  # unsigned byte, 1 dimension


class DatasetError(RuntimeError):
    """The dataset is missing, damaged, or the user's arrays do not describe images and labels."""


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 NHWC (N, H, W, C) and int64 labels; the one shape everything downstream takes
    (FashionMNIST is (N, 28, 28, 1))."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, n: int | None) -> Dataset:
        """The first ``n`` samples (all when ``n`` is None); slices, so it costs nothing."""
        if n is not None and n < 0:
            raise DatasetError(f"cannot take {n} samples: a count must not be negative")
        if n is None or n >= len(self):
            return self
        return Dataset(self.images[:n], self.labels[:n])

    def as_float(self) -> np.ndarray:
        """Pixels in [0, 1] as float32 NCHW, the layout PyTorch convolutions expect."""
        return (self.images.astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy()


def _data_dir() -> Path:
    return Path(os.environ.get("POWERPRUNE_FASHION_MNIST", DEFAULT_DIR))


def _read_idx(path: Path, magic: int, count: int) -> np.ndarray:
    if not path.exists():
        raise DatasetError(
            f"FashionMNIST file {path} not found; install the Debian package "
            f"'{DEBIAN_PACKAGE}' (apt-get install {DEBIAN_PACKAGE}) or run `make setup`"
        )
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DatasetError(f"{path} is not a valid gzip file ({exc}); reinstall '{DEBIAN_PACKAGE}'") from exc
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or struct.unpack(">I", raw[:4])[0] != magic:
        raise DatasetError(f"{path} has a wrong IDX magic number; reinstall '{DEBIAN_PACKAGE}'")
    dims = struct.unpack(">" + "I" * ndim, raw[4:header])
    if dims[0] != count or len(raw) != header + int(np.prod(dims)):
        raise DatasetError(
            f"{path} holds {dims} with {len(raw) - header} data bytes; expected {count} items. "
            f"Reinstall '{DEBIAN_PACKAGE}'"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def load_fashion_mnist(split: str = "train", limit: int | None = None) -> Dataset:
    """Load a split ("train" or "test") of FashionMNIST, checking magic numbers and sizes."""
    if split not in _SPLIT_SIZE:
        raise DatasetError(f"unknown split {split!r}; use 'train' or 'test'")
    root = _data_dir()
    n = _SPLIT_SIZE[split]
    images = _read_idx(root / _FILES[(split, "images")], _IDX_MAGIC_IMAGES, n)
    labels = _read_idx(root / _FILES[(split, "labels")], _IDX_MAGIC_LABELS, n)
    return Dataset(images[..., None], labels.astype(np.int64)).take(limit)


def from_arrays(images: np.ndarray, labels: np.ndarray) -> Dataset:
    """Wrap user arrays: images (N,H,W) or (N,H,W,C), uint8 0..255 or float 0..1; labels (N,)."""
    images = np.asarray(images)
    labels = _integer_labels(np.asarray(labels))
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise DatasetError(f"images must be (N,H,W) or (N,H,W,C), got shape {images.shape}")
    if labels.shape != (images.shape[0],):
        raise DatasetError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
    if images.shape[0] == 0 or images.size == 0:
        raise DatasetError(f"no images (shape {images.shape})")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise DatasetError(f"images must be uint8 or float, got {images.dtype}")
        if not np.isfinite(images).all():
            raise DatasetError("float images contain NaN or infinity")
        if images.min() < 0.0 or images.max() > 1.0:
            raise DatasetError("float images must lie in [0, 1]")
        images = np.round(images * 255.0).astype(np.uint8)
    return Dataset(np.ascontiguousarray(images), labels)


def _integer_labels(labels: np.ndarray) -> np.ndarray:
    """Class indices as int64; a fractional, NaN or negative label is an error, never truncated."""
    if labels.dtype == np.bool_ or not (np.issubdtype(labels.dtype, np.integer)
                                        or np.issubdtype(labels.dtype, np.floating)):
        raise DatasetError(f"labels must be integer class indices, got {labels.dtype}")
    if np.issubdtype(labels.dtype, np.floating) and not (np.isfinite(labels) & (labels == np.round(labels))).all():
        raise DatasetError("labels must be whole class indices; found NaN, infinity or a fraction")
    if labels.size and labels.min() < 0:
        raise DatasetError(f"labels must be class indices >= 0, found {labels.min()}")
    return labels.astype(np.int64)


def check_labels(data: Dataset, classes: int) -> None:
    """Every label must name one of the model's ``classes`` outputs: a larger one crashes training
    and silently never matches in an accuracy."""
    if len(data) and int(data.labels.max()) >= classes:
        raise DatasetError(f"label {int(data.labels.max())} is out of range: the model has {classes} outputs "
                           f"(labels 0..{classes - 1})")


def check_images(data: Dataset, input_shape: tuple[int, ...] | None) -> None:
    """The images must have the shape the model takes (``input_shape``: channels, height, width, as a
    SeqNet records it; None for a model that does not say). Without this, a test split of another size
    than the training split fails deep inside torch with a matrix-shape message."""
    if input_shape is None or not len(data):
        return
    c, h, w = input_shape
    if data.images.shape[1:] != (h, w, c):
        got = "x".join(map(str, data.images.shape[1:]))
        raise DatasetError(f"images are {got} (height x width x channels) but the model takes {h}x{w}x{c}")


def from_torch_dataset(dataset, limit: int | None = None) -> Dataset:
    """Wrap a ``torch.utils.data.Dataset`` of (image, label) pairs: images as CHW/HW tensors or
    arrays (float in [0, 1] or uint8), or PIL images; read once into memory."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    images, labels = [], []
    for i in range(n):
        x, y = dataset[i]
        a = np.asarray(x.numpy() if hasattr(x, "numpy") else x)
        if a.ndim == 3 and hasattr(x, "numpy"):
            a = a.transpose(1, 2, 0)  # torch tensors are CHW
        images.append(a)
        labels.append(int(y))
    if not images:
        raise DatasetError("the torch dataset is empty")
    return from_arrays(np.stack(images), np.array(labels))


def load_npz(path: str | Path, split: str = "train", limit: int | None = None) -> Dataset:
    """A dataset of your own as one .npz with ``x_train, y_train, x_test, y_test`` (images (N,H,W) or
    (N,H,W,C), uint8 pixels or float in [0, 1]); what ``--data`` reads."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"dataset file {path} not found")
    if not zipfile.is_zipfile(path):
        raise DatasetError(f"{path} is not a readable .npz file (not an .npz archive); a dataset file holds "
                           "x_train, y_train, x_test and y_test (np.savez)")
    try:
        with zipfile.ZipFile(path) as z, np.load(path, allow_pickle=False) as npz:
            keys = set(npz.files)
            need = [f"x_{split}", f"y_{split}"]
            if not set(need) <= keys:
                raise DatasetError(f"{path} has arrays {sorted(keys)}; a dataset file needs "
                                   "x_train, y_train, x_test and y_test")
            for name in need:
                info = z.getinfo(f"{name}.npy")
                with z.open(info) as f:
                    _check_npy_header(f, info.file_size, f"{path}: {name}")
            images, labels = npz[need[0]], npz[need[1]]
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise DatasetError(f"{path} is not a readable .npz file ({exc})") from exc
    return from_arrays(images, labels).take(limit)


def _check_npy_header(f, size: int, where: str) -> None:
    """Read an .npy header and check that the file holds the data it announces, before numpy
    allocates it: a damaged header claiming 10^9 rows would otherwise ask for hundreds of GiB."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(f)
    if dtype.hasobject:
        raise DatasetError(f"{where}: holds Python objects; only numeric arrays are read")
    needed = int(np.prod(shape, dtype=np.float64) * dtype.itemsize)
    available = size - f.tell()
    if needed > available:
        raise DatasetError(f"{where}: the header announces shape {shape} ({needed} bytes) but only {available} "
                           "bytes follow; the file is truncated or damaged")


def load_npy(path: str | Path) -> np.ndarray:
    """One array from an .npy file, with the same checks as a dataset file: a truncated, empty or
    damaged file, or an .npz archive given where one array is expected, is a DatasetError."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"array file {path} not found")
    if zipfile.is_zipfile(path):
        raise DatasetError(f"{path} is an .npz archive; expected one array saved with np.save (.npy)")
    try:
        with path.open("rb") as f:
            _check_npy_header(f, path.stat().st_size, str(path))
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DatasetError(f"{path} is not a readable .npy file ({exc})") from exc
