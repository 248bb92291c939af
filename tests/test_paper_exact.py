"""Issue 16, the paper's system as it was measured: its network on the command line and in `run` with
its recipe, the zero-skipping runtime (`tflm-skip`), float32 end to end, and the bundled paper-exact
config with the paper's published measurements beside ours."""

from __future__ import annotations

import pytest

from powerprune.cli import main
from powerprune.metrics import model_stats
from powerprune.model import load_model
from powerprune.sweep import ConfigError, SweepConfig, load_config, train_key
from powerprune.train import DEFAULT_TRAINING, PAPER_TRAINING, Recipe, recipe_for

SMALL = ["--train-limit", "300", "--test-limit", "100"]


# --- 1. --arch paper --------------------------------------------------------------------------------

def test_train_arch_paper_gives_the_papers_network_with_its_recipe(tmp_path, capsys):
    assert main(["train", "--arch", "paper", "--out", str(tmp_path / "p.pt"), "--epochs", "1", *SMALL]) == 0
    model, info = load_model(tmp_path / "p.pt")
    assert model_stats(model).params == 110742
    assert info.history[0]["recipe"]["optimizer"] == "rmsprop" and info.history[0]["recipe"]["lr"] == 1e-3
    assert "110,742 parameters" in capsys.readouterr().out
    # an option overrides one part of the recipe, the rest stays the network's
    assert main(["train", "--arch", "paper", "--optimizer", "adam", "--out", str(tmp_path / "a.pt"), "--epochs", "1",
                 *SMALL]) == 0
    assert load_model(tmp_path / "a.pt")[1].history[0]["recipe"] == {**vars(PAPER_TRAINING), "optimizer": "adam",
                                                                     "epochs": 1}


def test_arch_and_model_def_exclude_each_other(tmp_path, capsys):
    assert main(["train", "--arch", "paper", "--model-def", "x.py:f", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--arch" in capsys.readouterr().err
    assert recipe_for("lenet") == DEFAULT_TRAINING and recipe_for("paper") == PAPER_TRAINING
    with pytest.raises(ValueError, match="unknown architecture"):
        recipe_for("vgg")


def test_the_run_optimizer_joins_the_keys_only_when_it_is_not_adam():
    cfg = SweepConfig()
    assert cfg.optimizer == "adam"
    recipe = Recipe(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=0, optimizer=cfg.optimizer)
    assert train_key(cfg, recipe) == "train-04c3ef923825ef91"  # as tests/test_paper_arch.py pins it
    rms = load_config(None, optimizer="rmsprop")
    assert train_key(rms, Recipe(epochs=rms.epochs, lr=rms.lr, batch_size=rms.batch_size, seed=0,
                                 optimizer=rms.optimizer)) != train_key(cfg, recipe)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        load_config(None, optimizer="sgd")
