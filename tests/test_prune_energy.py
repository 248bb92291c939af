"""The energy search never returns a network at chance accuracy (it once returned LeNet at widths
[1, 5, 18, 57] and 10.00 %): it refuses actions that leave the validation accuracy at chance, and a
budget that can only be met that way ends in one line instead of a dead model."""

import copy
import importlib

import numpy as np
import pytest
import torch

from powerprune.mcu.costmodel import auto_cycles
from powerprune.prune import CollapseError, PruneError, prune
from powerprune.results import chance_accuracy

pytestmark = pytest.mark.slow  # trains and fine-tunes networks


def test_chance_is_the_majority_class_share():
    assert chance_accuracy(np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])) == pytest.approx(0.1)
    assert chance_accuracy(np.array([3, 3, 3, 1])) == pytest.approx(0.75)


def test_a_network_already_at_chance_is_never_pruned_further(trained, train_small, quick_finetune):
    """Every first-layer channel dead (a bias no input can overcome, as a dead ReLU): each candidate scores
    chance, so none is taken and no model comes back."""
    dead = copy.deepcopy(trained)
    with torch.no_grad():
        dead.conv0.bias.fill_(-1e6)
    with pytest.raises((PruneError, CollapseError)) as err:
        prune(dead, "energy", None, train_small, finetune=quick_finetune, energy_budget=0.5, cycles=auto_cycles,
              progress=False)
    assert "\n" not in str(err.value)


def test_fine_tuning_that_kills_the_network_ends_in_one_line_naming_the_budget(trained, train_small, quick_finetune,
                                                                                monkeypatch):
    """Fine-tuning can kill a layer's last channels (ReLUs that never fire again), as in the collapsed run:
    the accuracy check after fine-tuning refuses the budget instead of returning the dead model."""
    energy = importlib.import_module("powerprune.prune.energy")

    def fit_that_kills(model, *args, **kwargs):
        with torch.no_grad():
            model.conv0.bias.fill_(-1e6)

    monkeypatch.setattr(energy, "fit", fit_that_kills)
    with pytest.raises(CollapseError, match=r"energy budget 0\.5 \(E/2\) collapses the network: .* widths \["):
        prune(trained, "energy", None, train_small.take(600), finetune=quick_finetune, energy_budget=0.5,
              cycles=auto_cycles, progress=False)
