"""Real int8 models that nobody here wrote match TFLM row by row (fixtures: tests/fixtures/real_models).

The MLPerf Tiny anomaly-detection autoencoder is the case that caught the fully connected multiplier
fault: with the scale product formed in float32, 11 of these 2,000 rows differed from TFLM. The
keyword spotters (MLPerf Tiny's DS-CNN and TFLM's micro_speech) end in SOFTMAX. ``bench/verify_real_models.py``
runs more rows through every kernel set on the virtual Pico; here the Pico sees a slice (emulating
4.6 M to 89 M cycles per row is the slow part).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from powerprune.data import load_fashion_mnist
from powerprune.mcu.codegen import KERNEL_SETS
from powerprune.mcu.profile import run_on_rp2040
from powerprune.oracle import tflm_run
from powerprune.quantize import quantize_images
from powerprune.reference import run
from powerprune.tflite import load_tflite

pytestmark = pytest.mark.slow  # thousands of rows through TFLM, and every kernel set on the virtual Pico

FIXTURES = Path(__file__).parent / "fixtures" / "real_models"
PICO_ROWS = {"hello_world_int8": 500, "ad01_int8": 12, "kws_ref_model": 1, "micro_speech_quantized": 2}
HOST_ROWS = {"hello_world_int8": 2000, "ad01_int8": 2000, "kws_ref_model": 500, "micro_speech_quantized": 500}


def seeded_rows(graph, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=(n,) + graph.input.shape, dtype=np.int8)


@pytest.fixture(scope="module", params=sorted(PICO_ROWS))
def real_model(request):
    path = FIXTURES / f"{request.param}.tflite"
    return request.param, path, load_tflite(path)


def test_host_reference_matches_tflm_on_seeded_rows(real_model):
    name, path, graph = real_model
    x = seeded_rows(graph, HOST_ROWS[name])
    ours, theirs = run(graph, x).reshape(len(x), -1), tflm_run(path.read_bytes(), x).reshape(len(x), -1)
    assert np.array_equal(ours, theirs), f"{name}: {(ours != theirs).any(axis=1).sum()} rows differ"


def test_every_kernel_set_on_the_virtual_pico_matches_tflm(real_model):
    name, path, graph = real_model
    x = seeded_rows(graph, PICO_ROWS[name], seed=1)
    theirs = tflm_run(path.read_bytes(), x).reshape(len(x), -1)
    for kernels in KERNEL_SETS:
        pico = run_on_rp2040(graph, x, kernels=kernels).outputs.reshape(len(x), -1)
        assert np.array_equal(pico, theirs), f"{name} on {kernels}: {(pico != theirs).any(axis=1).sum()} rows differ"


def test_converter_made_lenet_matches_tflm_on_all_10000_test_images():
    """The Keras + tfmot + official converter LeNet (tests/fixtures), every FashionMNIST test image."""
    path = FIXTURES.parent / "keras_tfmot_lenet_75.tflite"
    graph = load_tflite(path)
    x = quantize_images(graph, load_fashion_mnist("test").images)
    ours, theirs = run(graph, x), tflm_run(path.read_bytes(), x)
    assert np.array_equal(ours, theirs), f"{(ours != theirs).any(axis=1).sum()} of 10,000 images differ"
