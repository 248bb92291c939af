"""The command line's defaults are the library's: change one in the library and the CLI follows."""

from dataclasses import replace
from importlib import import_module

import pytest

from powerprune import api, board, sweep, train
from powerprune.cli import build_parser, main
from powerprune.cli.options import library_default
from powerprune.mcu import deploy, measure, profile
from powerprune.prune import api as prune_api

quantize = import_module("powerprune.quantize")  # the module: the package's `quantize` is the function


def _change_default(monkeypatch: pytest.MonkeyPatch, function, parameter: str, value) -> None:
    """Give ``function``'s ``parameter`` another default, as an edit of the library would."""
    code = function.__code__
    names = code.co_varnames[:code.co_argcount]
    defaults = list(function.__defaults__)
    defaults[names.index(parameter) - (len(names) - len(defaults))] = value
    monkeypatch.setattr(function, "__defaults__", tuple(defaults))


# (command line, option's dest, the function whose parameter the option stands for, that parameter)
FUNCTION_DEFAULTS = [
    (["deploy", "m.tflite", "--out", "d"], "kernels", deploy.deploy, "kernels"),
    (["deploy", "m.tflite", "--out", "d"], "board", deploy.deploy, "board"),
    (["deploy", "m.tflite", "--out", "d"], "image", deploy.deploy, "image"),
    (["measure"], "timeout", measure.measure_board, "timeout"),
    (["profile", "m.tflite"], "kernels", profile.profile, "kernels"),
    (["profile", "m.tflite"], "layout", profile.profile, "layout"),
    (["infer", "m.tflite", "--inputs", "x.npy", "--output", "y.npy"], "kernels", profile.run_on_rp2040, "kernels"),
    (["infer", "m.tflite", "--inputs", "x.npy", "--output", "y.npy"], "layout", profile.run_on_rp2040, "layout"),
    (["export", "m.pt", "--out", "m.tflite"], "dtype", api.load_graph, "dtype"),
    (["run"], "backend", sweep.run_sweep, "backend"),
]


@pytest.mark.parametrize(("argv", "dest", "function", "parameter"), FUNCTION_DEFAULTS,
                         ids=[f"{a[0]} --{d}" for a, d, _, _ in FUNCTION_DEFAULTS])
def test_an_option_takes_the_default_of_the_parameter_it_stands_for(monkeypatch, argv, dest, function, parameter):
    today = library_default(function, parameter)
    assert getattr(build_parser().parse_args(argv), dest) == today
    changed = "changed-in-the-library" if isinstance(today, str) else today * 2 + 1
    _change_default(monkeypatch, function, parameter, changed)
    assert getattr(build_parser().parse_args(argv), dest) == changed


def test_the_training_and_fine_tuning_options_take_the_library_recipes(monkeypatch):
    monkeypatch.setattr(train, "DEFAULT_TRAINING", replace(train.DEFAULT_TRAINING, epochs=91, batch_size=92, seed=93))
    monkeypatch.setattr(prune_api, "DEFAULT_FINETUNE", replace(prune_api.DEFAULT_FINETUNE, epochs=94, lr=0.5,
                                                               optimizer="rmsprop", seed=95))
    monkeypatch.setattr(prune_api, "DEFAULT_SCHEDULE", "oneshot")
    monkeypatch.setattr(prune_api, "DEFAULT_SCOPE", "layer")
    t = build_parser().parse_args(["train", "--out", "m.pt"])
    assert (t.epochs, t.batch_size, t.seed) == (91, 92, 93)
    p = build_parser().parse_args(["prune", "m.pt", "--method", "apoz", "--out", "p.pt"])
    assert (p.finetune_epochs, p.lr, p.optimizer, p.seed, p.schedule, p.scope) == (94, 0.5, "rmsprop", 95,
                                                                                   "oneshot", "layer")


def test_calibration_images_profile_images_and_the_board_come_from_the_library(monkeypatch, capsys):
    monkeypatch.setattr(quantize, "DEFAULT_CALIBRATION", 96)
    monkeypatch.setattr(sweep.SweepConfig, "profile_images", 97)
    monkeypatch.setattr(sweep.SweepConfig, "jobs", 98)
    monkeypatch.setattr(board, "DEFAULT_BOARD", "a-board")
    parse = build_parser().parse_args
    assert parse(["export", "m.pt", "--out", "m.tflite"]).calibration == 96
    assert parse(["infer", "m.tflite", "--inputs", "x.npy", "--output", "y.npy"]).calibration == 96
    assert parse(["profile", "m.tflite"]).images == 97
    assert parse(["calibrate", "--measured-mj", "1", "--cycles", "1"]).profile == "a-board"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "(default 98)" in capsys.readouterr().out  # `run` leaves --jobs to the config; its help quotes it


def test_a_parameter_without_a_default_is_refused():
    with pytest.raises(TypeError, match="has no default for 'graph'"):
        library_default(deploy.deploy, "graph")
