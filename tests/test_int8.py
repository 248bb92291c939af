"""int8 IR, quantization and host reference against TFLite Micro's own interpreter."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerprune.api import int8_accuracy
from powerprune.oracle import tflm_run
from powerprune.quantize import quantize, quantize_images
from powerprune.reference import run
from powerprune.tflite import export_tflite

from .strategies import budget, random_graph


@pytest.mark.slow
def test_lenet_bit_exact_with_tflm_on_1000_images(lenet_graphs, test_small):
    x = quantize_images(lenet_graphs["dense"], test_small.images)
    for name, g in lenet_graphs.items():
        ours = run(g, x)
        theirs = tflm_run(export_tflite(g), x)
        assert theirs.shape == ours.shape
        assert np.array_equal(ours, theirs), f"{name}: {(ours != theirs).sum()} mismatching bytes"


@pytest.mark.slow
def test_pruned_zeros_survive_quantization(lenet_graphs):
    g = lenet_graphs["magnitude-16"]
    t = g.totals()
    assert t["params"] / t["nonzeros"] == pytest.approx(16, rel=0.02)
    assert lenet_graphs["apoz-4"].totals()["params"] < lenet_graphs["dense"].totals()["params"] / 3.9


@pytest.mark.slow
def test_int8_accuracy_close_to_float(trained, train_small, test_small):
    from powerprune.train import accuracy

    g = quantize(trained, train_small.take(300))
    assert abs(int8_accuracy(g, test_small) - accuracy(trained, test_small)) < 0.03


# --- property-based: random small graphs, every op and quantization corner, against TFLM -------------

@budget(150)  # every op and quantization corner needs more than 100
@given(g=random_graph(), seed=st.integers(0, 1000))
def test_random_graphs_bit_exact_with_tflm(g, seed):
    x = np.random.default_rng(seed).integers(-128, 128, size=(4,) + g.input.shape).astype(np.int8)
    ours = run(g, x).reshape(4, -1)
    theirs = tflm_run(export_tflite(g), x).reshape(4, -1)
    assert np.array_equal(ours, theirs), (ours, theirs)
