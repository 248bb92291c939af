"""``--json`` is machine-readable: for every command that has it, on every real model in
tests/fixtures/real_models/, stdout is exactly one strict JSON document (what ``json.load`` and ``jq``
read) and every note goes to stderr. A command that fails still exits non-zero with its one line on
stderr, and its stdout is ``{"error": "<that line>"}``.

Each case runs ``python -m powerprune`` in a subprocess, as a user's pipeline would; the cases of a
module run at once on a small pool, since starting Python and importing torch is most of each one's
time. Three of the models cannot run on the Pico yet: the two LSTMs run on the host only (inspect and
evaluate work, profile and measure refuse naming the op) and the int16 model is refused by the importer.
For those the expected answer is the one-line refusal, as JSON. Cases that run the emulator are ``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from powerprune.mcu.virtual_board import VirtualBoard
from powerprune.tflite import load_tflite

# every case is a subprocess (Python and torch start each time): the module's pool takes ~40 s, too long for
# the fast loop; the cases that also run the emulator are marked again below
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "real_models"
MODELS = sorted(p.stem for p in FIXTURES.glob("*.tflite"))
# the models no firmware runs today, and the word the one-line refusal of profile and measure must name
REFUSED = {"trained_lstm_int8": "UNIDIRECTIONAL_SEQUENCE_LSTM", "micro_speech_lstm": "UNIDIRECTIONAL_SEQUENCE_LSTM",
           "keyword_scrambled_8bit": "INT16"}
UNREADABLE = {"keyword_scrambled_8bit"}  # refused by the importer itself, so by inspect and evaluate too
RUNNABLE = [m for m in MODELS if m not in REFUSED]
KERNELS = "dense"  # the cheapest set on the emulator: person_detect costs ~4x fewer cycles than on tflm-ref
NO_PORT = "/nonexistent/tty"
Proc = subprocess.CompletedProcess


def model_path(model: str) -> Path:
    return FIXTURES / f"{model}.tflite"


def powerprune(*args: str | Path, timeout: float = 300) -> Proc:
    """``python -m powerprune ARGS`` of this checkout; auto's plan predicted, so nothing is measured behind
    the command's back."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "POWERPRUNE_AUTO_PLAN": "predicted"}
    return subprocess.run([sys.executable, "-m", "powerprune", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


def run_all(jobs: dict) -> dict:
    """Each job (a function of no arguments) at once on a small pool; their results by the same keys."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {key: pool.submit(job) for key, job in jobs.items()}
        return {key: f.result() for key, f in futures.items()}


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON (jq and most parsers refuse it)")


def strict_json(text: str) -> object:
    """The one JSON document ``text`` holds: trailing text ('Extra data'), a note before it, or NaN and
    Infinity (which Python's json accepts and jq does not) fail."""
    return json.loads(text, parse_constant=_no_constant)


def result(proc: Proc) -> object:
    """The document of a command that succeeded."""
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return strict_json(proc.stdout)


def error(proc: Proc, *, lines: int = 1) -> str:
    """The error line of a command that failed: last on stderr (after ``lines - 1`` notes), and the whole
    of stdout as ``{"error": line}``."""
    assert proc.returncode != 0, proc.stdout
    stderr = proc.stderr.strip().splitlines()
    assert len(stderr) == lines, proc.stderr
    line = stderr[-1]
    assert line.startswith("powerprune ") and ": error: " in line, line
    assert strict_json(proc.stdout) == {"error": line}
    return line


def refused(proc: Proc, model: str) -> None:
    assert REFUSED[model] in error(proc)


def images_like(model: str, directory: Path) -> Path | None:
    """A --data file with two random test images of the model's input shape and labels it has outputs
    for (evaluate needs labelled images; FashionMNIST fits none of these models); None for a model of
    vectors, since a dataset holds images (H, W, C)."""
    graph = load_tflite(model_path(model))
    shape = tuple(graph.input.shape)
    if len(shape) != 3:
        return None
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, *shape), dtype=np.uint8)
    y = rng.integers(0, graph.output.size, 2)
    path = directory / f"{model}.npz"
    np.savez(path, x_train=x, y_train=y, x_test=x, y_test=y)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[tuple[str, str], Proc]:
    """The cases without the emulator: inspect and evaluate on every model, profile and measure on the
    refused ones (they stop at the importer), and three command lines of their own."""
    work = tmp_path_factory.mktemp("json")
    argv: dict[tuple[str, str], list] = {}
    for m in MODELS:
        path = model_path(m)
        argv["inspect", m] = ["inspect", path, "--json"]
        data = None if m in REFUSED else images_like(m, work)
        argv["evaluate", m] = ["evaluate", path, "--json", *(["--data", data] if data else ["--test-limit", "2"])]
    for m in REFUSED:
        argv["profile", m] = ["profile", model_path(m), "--json", "--images", "1", "--kernels", KERNELS]
        # the model is read before the port is opened, so no board is needed to see the refusal
        argv["measure", m] = ["measure", "--port", NO_PORT, "--model", model_path(m), "--images", "1", "--json"]
    argv["note", "hello_world_int8"] = ["measure", "--port", NO_PORT, "--model", model_path("hello_world_int8"),
                                        "--images", "1", "--json"]
    argv["usage", "hello_world_int8"] = ["profile", model_path("hello_world_int8"), "--images", "0", "--json"]
    t = np.arange(0, 0.5, 1e-4)
    marker = (t > 0.1) & (t < 0.3)
    rows = [f"{a:.6f},{0.025 if m else 0.010},5.0,{int(m)}" for a, m in zip(t, marker, strict=True)]
    (work / "trace.csv").write_text("\n".join(["time_s,current_a,voltage_v,marker", *rows]) + "\n")
    argv["energy", "trace"] = ["measure", "--energy-csv", work / "trace.csv", "--json"]
    return run_all({key: (lambda a=a: powerprune(*a)) for key, a in argv.items()})


def test_the_fixtures_are_the_nine_shared_models():
    assert len(MODELS) == 9 and set(REFUSED) < set(MODELS), MODELS


@pytest.mark.parametrize("model", MODELS)
def test_inspect_json_is_one_document_on_every_real_model(model, runs):
    proc = runs["inspect", model]
    if model in UNREADABLE:
        refused(proc, model)
        return
    rows = result(proc)
    assert len(rows) == len(load_tflite(model_path(model)).layers)
    assert all(set(r["kernels"]) >= {"tflm-ref", "dense", "auto"} for r in rows)


@pytest.mark.parametrize("model", MODELS)
def test_evaluate_json_is_one_document_on_every_real_model(model, runs):
    proc = runs["evaluate", model]
    if model in UNREADABLE:
        refused(proc, model)
    elif len(load_tflite(model_path(model)).input.shape) != 3:
        # FashionMNIST is all there is, and it does not fit: the error names the shape that would
        line = error(proc)
        assert f"the model takes inputs of shape {tuple(load_tflite(model_path(model)).input.shape)}" in line
    else:
        r = result(proc)
        assert 0.0 <= r["accuracy"] <= 1.0 and r["params"] > 0 and r["dtype"] == "int8"


@pytest.mark.parametrize("model", sorted(REFUSED))
def test_profile_and_measure_refuse_an_unsupported_model_as_json(model, runs):
    refused(runs["profile", model], model)
    refused(runs["measure", model], model)


def test_a_note_goes_to_stderr_and_leaves_the_error_document_alone(runs):
    """A model not shaped like FashionMNIST runs on made-up inputs and says so: that note once went to
    stdout ahead of the JSON. Here it is followed by a failure (no such port), so stderr has two lines."""
    proc = runs["note", "hello_world_int8"]
    line = error(proc, lines=2)
    assert proc.stderr.startswith("note: input shape (1,)") and NO_PORT in line


def test_a_usage_error_with_json_is_a_json_error_too(runs):
    assert "--images" in error(runs["usage", "hello_world_int8"])


def test_measure_json_of_a_power_trace(runs):
    r = result(runs["energy", "trace"])
    assert r["energy"]["inferences"] == 1 and r["energy"]["energy_mj_std"] == 0.0


def deploy_and_measure(model: str, directory: Path) -> Proc:
    """Deploy the model and measure it on the virtual board over its pseudo-terminal, with the commands
    a user runs against a real Pico."""
    deployed = powerprune("deploy", model_path(model), "--out", directory, "--kernels", KERNELS)
    if deployed.returncode != 0:
        return deployed  # its error, for the test to show
    with VirtualBoard(directory / "firmware.uf2") as board:
        return powerprune("measure", "--port", board.port, "--model", model_path(model), "--images", "1", "--json")


@pytest.fixture(scope="module")
def emulated(tmp_path_factory) -> dict[tuple[str, str], Proc]:
    """profile and measure on every model powerprune runs: the emulator's cases."""
    work = tmp_path_factory.mktemp("json-emulated")
    jobs = {}
    for m in RUNNABLE:
        jobs["profile", m] = lambda m=m: powerprune("profile", model_path(m), "--json", "--images", "1",
                                                    "--kernels", KERNELS)
        jobs["measure", m] = lambda m=m: deploy_and_measure(m, work / m)
    return run_all(jobs)


@pytest.mark.slow
@pytest.mark.parametrize("model", RUNNABLE)
def test_profile_json_is_one_document_on_every_real_model(model, emulated):
    proc = emulated["profile", model]
    summary = result(proc)["kernels"][KERNELS]
    assert summary["bit_exact"] and summary["cycles_mean"] > 0
    assert proc.stderr.startswith("note: input shape")  # none of them is shaped like FashionMNIST


@pytest.mark.slow
@pytest.mark.parametrize("model", RUNNABLE)
def test_measure_json_is_one_document_on_every_real_model(model, emulated):
    b = result(emulated["measure", model])["board"]
    assert b["images"] == 1 and b["bit_exact"] and b["cycles_mean"] > 0
