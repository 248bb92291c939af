"""The command line end to end on small slices, and its behaviour on bad input."""

import json

import numpy as np
import pytest

from powerprune.cli import main
from powerprune.model import save_model

from .paths import DIGITS
from .paths import DIGITS_EXAMPLE as EXAMPLE

pytestmark = pytest.mark.slow  # every test trains or prunes a model, or runs the virtual Pico


@pytest.fixture(scope="module")
def base(tmp_path_factory, trained):
    path = tmp_path_factory.mktemp("cli") / "base.pt"
    save_model(trained, path)
    return path


def test_train_prune_evaluate_export_infer_inspect(tmp_path, base, capsys):
    small = ["--train-limit", "500", "--test-limit", "200"]
    assert main(["train", "--out", str(tmp_path / "t.pt"), "--epochs", "1", *small]) == 0
    assert main(["prune", str(base), "--method", "apoz", "--compression", "8", "--out", str(tmp_path / "a.pt"),
                 "--finetune-epochs", "1", *small]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "a.pt"), "--json", "--test-limit", "200"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert {"accuracy", "params", "nonzero_params", "compression", "macs"} <= r.keys()
    assert r["compression"] == pytest.approx(8, rel=0.01)
    assert main(["export", str(tmp_path / "a.pt"), "--out", str(tmp_path / "a.tflite"), "--calibration", "50",
                 "--test-limit", "100"]) == 0
    x = np.zeros((3, 28, 28, 1), np.int8)
    np.save(tmp_path / "x.npy", x)
    for model in ("a.pt", "a.tflite"):
        assert main(["infer", str(tmp_path / model), "--inputs", str(tmp_path / "x.npy"),
                     "--output", str(tmp_path / "y.npy"), "--calibration", "50"]) == 0
        assert np.load(tmp_path / "y.npy").shape == (3, 10)
    assert main(["infer", str(tmp_path / "a.tflite"), "--inputs", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "z.npy"), "--on", "rp2040"]) == 0
    assert np.array_equal(np.load(tmp_path / "z.npy"), np.load(tmp_path / "y.npy"))
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "a.tflite")]) == 0
    assert "FULLY_CONNECTED" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["prune", "{base}", "--method", "apoz", "--compression", "0.5", "--out", "{out}"], "compression must be"),
    (["prune", "{base}", "--method", "random", "--compression", "4", "--out", "{out}"], "unknown pruning method"),
    (["prune", "{missing}", "--method", "apoz", "--compression", "4", "--out", "{out}"], "not found"),
    (["prune", "{corrupt}", "--method", "apoz", "--compression", "4", "--out", "{out}"], "not a readable model"),
    (["prune", "{base}", "--method", "magnitude", "--compression", "1000", "--out", "{out}"], "reachable"),
    (["evaluate", "{corrupt}"], "not a readable model"),
    (["inspect", "{corrupt_tflite}"], "TFL3"),
])
def test_bad_input_is_one_clear_line_and_nothing_is_overwritten(tmp_path, base, capsys, args, message):
    out = tmp_path / "out.pt"
    out.write_bytes(b"precious")
    (tmp_path / "corrupt.pt").write_bytes(b"PK\x03\x04 broken zip")
    (tmp_path / "corrupt.tflite").write_bytes(b"\x00" * 64)
    fill = {"base": str(base), "out": str(out), "missing": str(tmp_path / "nope.pt"),
            "corrupt": str(tmp_path / "corrupt.pt"), "corrupt_tflite": str(tmp_path / "corrupt.tflite")}
    assert main([a.format(**fill) for a in args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert out.read_bytes() == b"precious"


def test_cli_with_own_model_and_data_down_to_the_virtual_pico(tmp_path, capsys):
    data = ["--data", str(DIGITS)]
    m, p, t = tmp_path / "d.pt", tmp_path / "d4.pt", tmp_path / "d4.tflite"
    assert main(["train", "--model-def", f"{EXAMPLE / 'model.py'}:make_model", *data, "--epochs", "3",
                 "--out", str(m)]) == 0
    assert main(["prune", str(m), "--method", "energy", "--energy-budget", "0.6", *data,
                 "--finetune-epochs", "1", "--out", str(p)]) == 0
    assert main(["export", str(p), *data, "--out", str(t)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(p), *data, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["method"] == "energy" and ev["compression"] > 1
    assert len(ev["widths"]) == 4 and ev["widths"][0] == ev["widths"][1] <= 16  # depthwise follows conv0
    assert main(["inspect", str(t), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["input"] == [8, 8, 1]
    assert main(["profile", str(t), "--kernels", "auto", "--images", "1", *data, "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)["kernels"]["auto"]
    assert prof["bit_exact"] and prof["cycles_mean"] > 0
    bad = tmp_path / "x.pt"
    assert main(["prune", str(m), "--method", "apoz", "--compression", "100000", *data, "--out", str(bad)]) == 2
    assert "cannot reach compression" in capsys.readouterr().err and not bad.exists()
