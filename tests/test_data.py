import gzip
import struct

import numpy as np
import pytest

from powerprune.data import DatasetError, from_arrays, load_fashion_mnist, load_npz


def test_real_files_have_expected_shapes_and_labels():
    train = load_fashion_mnist("train")
    test = load_fashion_mnist("test")
    assert train.images.shape == (60000, 28, 28, 1) and train.images.dtype == np.uint8
    assert test.images.shape == (10000, 28, 28, 1)
    assert set(np.unique(test.labels)) == set(range(10))
    assert np.bincount(test.labels).tolist() == [1000] * 10  # FashionMNIST's test set is balanced


def test_limit_takes_a_prefix():
    assert len(load_fashion_mnist("test", 17)) == 17


def _write_idx(path, magic, dims, payload):
    path.write_bytes(gzip.compress(struct.pack(">I", magic) + struct.pack(">" + "I" * len(dims), *dims) + payload))


def test_missing_files_name_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("POWERPRUNE_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DatasetError, match="dataset-fashion-mnist"):
        load_fashion_mnist("test")


def test_corrupt_files_are_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("POWERPRUNE_FASHION_MNIST", str(tmp_path))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DatasetError, match="gzip"):
        load_fashion_mnist("test")
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x801, (10000, 28, 28), b"\0" * 10)  # wrong magic
    with pytest.raises(DatasetError, match="magic"):
        load_fashion_mnist("test")
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", 0x803, (10000, 28, 28), b"\0" * 100)  # truncated
    with pytest.raises(DatasetError, match="expected 10000"):
        load_fashion_mnist("test")


def test_user_arrays():
    d = from_arrays(np.random.rand(5, 28, 28).astype(np.float32), np.arange(5))
    assert d.images.shape == (5, 28, 28, 1) and d.images.dtype == np.uint8
    with pytest.raises(DatasetError):
        from_arrays(np.zeros((5, 28)), np.arange(5))
    with pytest.raises(DatasetError):
        from_arrays(np.zeros((5, 28, 28), np.uint8), np.arange(4))
    with pytest.raises(DatasetError):
        from_arrays(np.full((2, 28, 28), 3.0), np.arange(2))


def test_the_shipped_digits_fixture_is_a_real_second_dataset(digits):
    train, test = digits
    assert train.images.shape == (1437, 8, 8, 1) and test.images.shape == (360, 8, 8, 1)
    assert set(np.unique(train.labels)) == set(range(10)) and train.images.max() == 255


def test_bad_dataset_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(DatasetError, match="x_train, y_train"):
        load_npz(tmp_path / "x.npz")
    (tmp_path / "y.npz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="not a readable"):
        load_npz(tmp_path / "y.npz")
