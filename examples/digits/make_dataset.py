"""Build ``digits.npz``, the small second dataset shipped with powerprune, from scikit-learn's copy of
the UCI "Optical Recognition of Handwritten Digits" data (1,797 8x8 images, 10 classes, CC BY 4.0).

    python examples/digits/make_dataset.py                 # needs scikit-learn installed
    python examples/digits/make_dataset.py --wheel scikit_learn-*.whl   # or just its wheel file

Pixels 0..16 become uint8 0..255; a fixed shuffle puts 1,437 images in x_train and 360 in x_test.
"""

from __future__ import annotations

import argparse
import gzip
import io
import zipfile
from pathlib import Path

import numpy as np

MEMBER = "sklearn/datasets/data/digits.csv.gz"


def read_csv(wheel: str | None) -> bytes:
    if wheel:
        with zipfile.ZipFile(wheel) as z:
            return gzip.decompress(z.read(MEMBER))
    from importlib import resources

    return gzip.decompress((resources.files("sklearn") / "datasets/data/digits.csv.gz").read_bytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", help="a scikit-learn wheel to read the CSV from")
    ap.add_argument("--out", default=str(Path(__file__).with_name("digits.npz")))
    args = ap.parse_args()
    table = np.loadtxt(io.BytesIO(read_csv(args.wheel)), delimiter=",")
    images = np.round(table[:, :64].reshape(-1, 8, 8) * 255 / 16).astype(np.uint8)
    labels = table[:, 64].astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    images, labels = images[order], labels[order]
    cut = len(labels) - 360
    np.savez_compressed(args.out, x_train=images[:cut], y_train=labels[:cut], x_test=images[cut:], y_test=labels[cut:])
    print(f"{len(labels)} images: {cut} train, {len(labels) - cut} test -> {args.out}")


if __name__ == "__main__":
    main()
