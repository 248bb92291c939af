"""Shared fixtures: small slices of the real FashionMNIST and a briefly trained LeNet.

Accuracy is not the point of these tests (benchmarks measure it); shapes, rates and bit-exactness are,
and they hold for a model trained for one short epoch just as for a converged one.
"""

from __future__ import annotations

import os

import pytest
import torch

from powerprune.data import load_fashion_mnist
from powerprune.model import lenet5
from powerprune.seqnet import SeqNet
from powerprune.train import Recipe, fit, seed_everything

torch.set_num_threads(2)

# `auto` measures its plan on the virtual Pico (powerprune/mcu/autotune.py): three extra firmwares per
# model. Tests that check kernels, not plans, run auto on the cost model's plan, which mixes dense and
# sparse layers just the same; tests/test_autotune.py switches measuring back on and checks the
# measured plans, their cycles and their outputs.
os.environ.setdefault("POWERPRUNE_AUTO_PLAN", "predicted")


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
