"""Shared fixtures: small slices of the real FashionMNIST, a briefly trained LeNet and its int8 graphs
(dense and pruned), the digits example's data and model; the hypothesis profiles.

Accuracy is not the point of these tests (benchmarks measure it); shapes, rates and bit-exactness are,
and they hold for a model trained for one short epoch just as for a converged one.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from powerprune.cli.model import model_factory
from powerprune.data import load_fashion_mnist, load_npz
from powerprune.model import lenet5
from powerprune.prune import prune
from powerprune.quantize import quantize
from powerprune.seqnet import SeqNet
from powerprune.train import Recipe, fit, seed_everything

from .paths import DIGITS, DIGITS_EXAMPLE

torch.set_num_threads(2)

# `auto` measures its plan on the virtual Pico (powerprune/mcu/autotune.py): three extra firmwares per
# model. Tests that check kernels, not plans, run auto on the cost model's plan, which mixes dense and
# sparse layers just the same; tests/test_autotune.py switches measuring back on and checks the
# measured plans, their cycles and their outputs.
os.environ.setdefault("POWERPRUNE_AUTO_PLAN", "predicted")

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE (default ci). Both drop the per-example deadline and
# the too-slow health check: an example here may run TFLM or build firmware, and its time says nothing
# about a bug. A test that needs another number of examples than the profile's sets it with
# ``tests.strategies.budget``, which scales it with the profile.
# - ci: what `make test` and CI run. Hypothesis's 100 examples per test, derandomized (the examples follow
#   from each test's source) and without the example database, so every run on every machine tries the
#   same cases and a failure reproduces from the log alone.
# - dev: a tenth of the examples, random and remembered in .hypothesis/ (a failure found once is tried
#   first next time), for the edit-test loop (`HYPOTHESIS_PROFILE=dev make test-fast`).
_UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=100, derandomize=True, database=None, print_blob=True, **_UNTIMED)
settings.register_profile("dev", max_examples=10, **_UNTIMED)


def pytest_configure(config: pytest.Config) -> None:
    """Load the profile before any test module (and its settings) is imported."""
    profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
    if profile not in ("ci", "dev"):
        raise pytest.UsageError(f"HYPOTHESIS_PROFILE={profile!r}: the profiles are 'ci' (the default) and 'dev'")
    settings.load_profile(profile)


@pytest.fixture(scope="session")
def train_small():
    return load_fashion_mnist("train", 2000)


@pytest.fixture(scope="session")
def test_small():
    return load_fashion_mnist("test", 1000)


@pytest.fixture(scope="session")
def trained(train_small) -> SeqNet:
    seed_everything(0)
    model = lenet5()
    fit(model, train_small, Recipe(epochs=1, batch_size=64), progress=False)
    return model


@pytest.fixture(scope="session")
def quick_finetune() -> Recipe:
    return Recipe(epochs=1, lr=5e-4, batch_size=128)


@pytest.fixture(scope="session")
def digits():
    """The bring-your-own-model example's dataset: (train, test)."""
    return load_npz(DIGITS, "train"), load_npz(DIGITS, "test")


@pytest.fixture(scope="session")
def digits_model(digits):
    """The example's own PyTorch model (not a SeqNet), trained on its digits."""
    seed_everything(0)
    model = model_factory(f"{DIGITS_EXAMPLE / 'model.py'}:make_model")()
    fit(model, digits[0], Recipe(epochs=8, lr=3e-3, batch_size=32), progress=False)
    return model


@pytest.fixture(scope="session")
def lenet_graphs(trained, train_small, quick_finetune):
    """The trained LeNet quantized dense and pruned 4x and 16x by magnitude and APoZ, by name."""
    graphs = {"dense": quantize(trained, train_small.take(200))}
    for method, rate in (("magnitude", 4), ("magnitude", 16), ("apoz", 4), ("apoz", 16)):
        m = prune(trained, method, rate, train_small, finetune=quick_finetune, progress=False).model
        graphs[f"{method}-{rate}"] = quantize(m, train_small.take(200))
    return graphs
