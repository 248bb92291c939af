"""`auto` never loses: its per-layer plan is measured on the virtual Pico (powerprune/mcu/autotune.py)."""

from pathlib import Path

import numpy as np
import pytest

from powerprune.mcu import autotune
from powerprune.mcu.autotune import cached_plan, tuned_plan, tuning_input
from powerprune.mcu.build import build_firmware
from powerprune.mcu.codegen import CodegenError, auto_choices, generate, kernel_plan
from powerprune.mcu.emulator import run_firmware
from powerprune.mcu.profile import profile
from powerprune.tflite import load_tflite

FIXTURES = Path(__file__).parent / "fixtures" / "real_models"


def real(name: str):
    return load_tflite(FIXTURES / f"{name}.tflite")


@pytest.fixture(autouse=True)
def measured_plans(monkeypatch):
    """This file checks the measured plans users get (the suite's default elsewhere is the prediction)."""
    monkeypatch.setenv("POWERPRUNE_AUTO_PLAN", "measured")


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A plan cache of this test's own, so a plan is measured here and not read from an earlier run."""
    monkeypatch.setenv("POWERPRUNE_CACHE", str(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hello_world_int8", "ad01_int8", "micro_speech_quantized"])
def test_auto_costs_no_more_than_dense_or_sparse_on_real_models(name):
    g = real(name)
    # the tuning input and three others: the choice must hold beyond the input it was measured on
    x = np.concatenate([tuning_input(g), np.random.default_rng(1).integers(-128, 128, (3,) + g.input.shape,
                                                                            dtype=np.int8)])
    profiles = {k: profile(g, x, k) for k in ("dense", "sparse", "auto")}
    assert all(p.bit_exact for p in profiles.values())
    cycles = {k: sum(p.cycles) for k, p in profiles.items()}
    assert cycles["auto"] <= min(cycles["dense"], cycles["sparse"])


@pytest.mark.slow
def test_auto_beats_its_own_cost_model_where_the_model_is_wrong(own_cache):
    """hello_world: the fitted model predicts sparse for two of its three tiny FC layers; measured,
    dense wins (the model's per-layer constants were fitted on LeNet-sized layers)."""
    g = real("hello_world_int8")
    predicted = kernel_plan(g, "auto")
    plan = tuned_plan(g)
    assert list(plan.impls) != predicted  # the case this exists for
    fw = build_firmware(g, "auto", plan=predicted)
    x = np.concatenate([tuning_input(g)] * 2)
    as_predicted = sum(r.cycles for r in run_firmware(fw, x, g.output.size).inferences)
    assert plan.cycles[plan.chosen] < as_predicted


@pytest.mark.slow
def test_auto_on_kws_runs_the_cheapest_candidate_it_measured(own_cache):
    g = real("kws_ref_model")
    plan = tuned_plan(g)
    assert plan.cycles[plan.chosen] == min(plan.cycles.values())
    assert plan.cycles[plan.chosen] <= min(plan.cycles["dense"], plan.cycles["sparse"])
    run = profile(g, np.concatenate([tuning_input(g)] * 2), "auto")
    assert sum(run.cycles) == plan.cycles[plan.chosen]  # profiling auto runs exactly the measured plan


@pytest.mark.slow
def test_the_measured_candidates_are_the_dense_and_sparse_sets_themselves(own_cache):
    g = real("hello_world_int8")
    plan = tuned_plan(g)
    x = np.concatenate([tuning_input(g)] * 2)
    for k in ("dense", "sparse"):
        assert plan.cycles[k] == sum(profile(g, x, k).cycles)


@pytest.mark.slow
def test_plans_are_measured_once_then_read_from_the_cache(own_cache, monkeypatch):
    g = real("hello_world_int8")
    assert cached_plan(g) is None  # what inspect asks: nothing measured yet, so nothing is
    first = tuned_plan(g)
    assert cached_plan(g) == first

    def no_emulator(*args, **kwargs):
        raise AssertionError("a cached plan was measured again")

    monkeypatch.setattr(autotune, "run_firmware", no_emulator)
    assert tuned_plan(g) == first


def test_a_plan_auto_cannot_run_is_refused_naming_the_layer():
    g = real("micro_speech_quantized")
    choices = auto_choices(g)
    bad = ["cmsisnn"] + [c[0] for c in choices[1:]]  # a baseline's kernel is never auto's to choose
    with pytest.raises(CodegenError, match=r"layer 0 \(RESHAPE\) cannot run as 'cmsisnn' under auto"):
        generate(g, "auto", bad)
    with pytest.raises(CodegenError, match="only the auto kernel set takes a per-layer plan"):
        generate(g, "dense", [c[0] for c in choices])


def test_the_prediction_mode_runs_the_cost_models_plan_without_measuring(monkeypatch):
    monkeypatch.setenv("POWERPRUNE_AUTO_PLAN", "predicted")
    monkeypatch.setattr(autotune, "run_firmware", lambda *a, **k: pytest.fail("predicted plans are not measured"))
    g = real("hello_world_int8")
    assert list(autotune.auto_plan(g)) == kernel_plan(g, "auto")
    monkeypatch.setenv("POWERPRUNE_AUTO_PLAN", "guessed")
    with pytest.raises(ValueError, match="POWERPRUNE_AUTO_PLAN='guessed': use 'measured'"):
        autotune.auto_plan(g)
