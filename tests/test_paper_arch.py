"""The paper's own network and training recipe, beside our LeNet: the right size, selectable by name,
prunable by the paper's methods, bit-exact against TFLM once quantized, and no change to any
existing run's cache keys."""

import numpy as np
import pytest
import torch

from powerprune import ARCHS, PAPER_TRAINING, Recipe, build_arch, paper_cnn
from powerprune.cli import main
from powerprune.metrics import model_stats
from powerprune.model import lenet5, load_model, save_model
from powerprune.oracle import tflm_run
from powerprune.prune import prune
from powerprune.quantize import quantize, quantize_images
from powerprune.reference import run
from powerprune.sweep import ConfigError, SweepConfig, load_config, recipe_inputs, stage_key, train_key
from powerprune.tflite import export_tflite
from powerprune.train import DEFAULT_TRAINING, fit, make_optimizer, recipe_for, seed_everything

SMALL = ["--train-limit", "300", "--test-limit", "100"]


@pytest.fixture(scope="module")
def trained_paper(train_small):
    seed_everything(0)
    model = paper_cnn()
    fit(model, train_small, Recipe(epochs=1, lr=1e-3, batch_size=64, optimizer="rmsprop"), progress=False)
    return model


def test_paper_cnn_has_the_papers_110742_parameters_and_800_flattened_features():
    net = paper_cnn()
    assert model_stats(net).params == 110742
    fc_in = [e["in"] for e in net.spec if e["type"] == "linear"]
    assert fc_in == [800, 120, 84]
    assert [e["type"] for e in net.spec].count("avgpool") == 2
    assert net(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_architectures_are_chosen_by_name_and_lenet_stays_the_default(tmp_path):
    assert set(ARCHS) == {"lenet", "paper"}
    assert model_stats(build_arch("lenet")).params == model_stats(lenet5()).params
    assert model_stats(build_arch("paper")).params == 110742
    with pytest.raises(ValueError, match="unknown architecture"):
        build_arch("vgg")
    assert SweepConfig().arch == "lenet"
    assert load_config(None, arch="paper").arch == "paper"
    with pytest.raises(ConfigError, match="unknown arch"):
        load_config(None, arch="vgg")
    save_model(paper_cnn(), tmp_path / "p.pt")  # a SeqNet: saved by its spec, loaded without code
    assert model_stats(load_model(tmp_path / "p.pt")[0]).params == 110742


def test_default_runs_keep_the_cache_keys_they_had_before_arch_and_optimizer_existed():
    """Hashes computed with the code before this change: every cached LeNet result stays valid."""
    cfg = SweepConfig()
    recipe = Recipe(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=0)
    assert train_key(cfg, recipe) == "train-04c3ef923825ef91"
    quick = SweepConfig.quick()
    assert train_key(quick, Recipe(epochs=quick.epochs, lr=quick.lr, batch_size=quick.batch_size, seed=1)) \
        == "train-795e7cefab0f1a7e"
    finetune = Recipe(epochs=cfg.finetune_epochs, lr=cfg.finetune_lr, batch_size=cfg.batch_size, seed=0)
    assert stage_key("prune", base="train-x", method="magnitude", rate=4.0, recipe=recipe_inputs(finetune),
                     schedule=cfg.magnitude_schedule, scope=cfg.magnitude_scope) == "prune-566bd90909401793"
    # a different network or optimizer is a different model, so it gets its own key
    assert train_key(SweepConfig(arch="paper"), recipe) != train_key(cfg, recipe)
    assert recipe_inputs(PAPER_TRAINING)["optimizer"] == "rmsprop"


def test_paper_recipe_is_rmsprop_with_keras_defaults_and_adam_stays_the_default():
    assert Recipe().optimizer == "adam"
    assert PAPER_TRAINING.optimizer == "rmsprop" and PAPER_TRAINING.batch_size == 64 and PAPER_TRAINING.lr == 1e-3
    opt = make_optimizer(paper_cnn().parameters(), PAPER_TRAINING)
    assert isinstance(opt, torch.optim.RMSprop)
    assert opt.defaults["alpha"] == 0.9 and opt.defaults["eps"] == 1e-7
    assert isinstance(make_optimizer(paper_cnn().parameters(), Recipe()), torch.optim.Adam)
    with pytest.raises(ValueError, match="unknown optimizer"):
        Recipe(optimizer="sgd")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["magnitude", "apoz"])
def test_paper_methods_prune_the_paper_cnn_4x_and_its_int8_equals_tflm(trained_paper, train_small, test_small,
                                                                      quick_finetune, method):
    res = prune(trained_paper, method, 4, train_small, finetune=quick_finetune, progress=False)
    assert abs(res.compression / 4 - 1) <= 0.01
    graph = quantize(res.model, train_small.take(200))
    assert "AVERAGE_POOL_2D" in [layer.op for layer in graph.layers]
    x = quantize_images(graph, test_small.images[:100])
    ours = run(graph, x).reshape(100, -1)
    assert np.array_equal(ours, tflm_run(export_tflite(graph), x).reshape(100, -1))


@pytest.mark.slow
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
