"""The bundled paper-exact config (configs/paper-exact.toml): what the paper ran, and the paper's published
measurements loaded and reported beside ours."""

from __future__ import annotations

import pytest

from powerprune.board import load_board
from powerprune.mcu.codegen import ADAPTED_KERNELS
from powerprune.report import write_outputs
from powerprune.report.analysis import paper_measurements, paper_side_by_side
from powerprune.results import Row
from powerprune.sweep import ConfigError, SweepConfig, load_config


def test_paper_exact_is_bundled_and_says_what_the_paper_ran():
    cfg = load_config("paper-exact")
    assert (cfg.arch, cfg.dtype, cfg.optimizer, cfg.lr, cfg.batch_size) == ("paper", "float32", "rmsprop", 1e-3, 64)
    assert cfg.kernels == ("tflm-ref", ADAPTED_KERNELS) and set(cfg.methods) == {"magnitude", "apoz"}
    assert [float(r) for r in cfg.rates] == [2, 3, 4, 8, 16, 24, 32, 48, 64]
    assert (cfg.magnitude_schedule, cfg.magnitude_scope) == ("gradual", "layer")  # what tfmot does
    with pytest.raises(ConfigError, match="float32 run profiles only"):
        load_config(None, dtype="float32", methods=("magnitude",))
    with pytest.raises(ConfigError, match="energy method"):
        load_config(None, dtype="float32", kernels=("tflm-ref",))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("paper-exactly")


def test_the_papers_measurements_are_loaded_as_published():
    rows = paper_measurements()
    assert len(rows) == 30 and {(r["paper_method"], r["runtime"]) for r in rows} == {
        ("unstructured", "stock"), ("unstructured", "adapted"), ("structured", "stock")}
    stock = next(r for r in rows if (r["paper_method"], r["runtime"], r["rate"]) == ("unstructured", "stock", 1.0))
    assert stock["latency_ms"] == pytest.approx(1291.583) and stock["energy_mj"] == pytest.approx(148.599)
    assert stock["kernels"] == "tflm-ref" and stock["method"] == "magnitude"


def _paper_row(method: str, rate: float, kernels: str, cycles: float, acc: float) -> Row:
    board = load_board("pico")
    return Row(seed=0, method=method, rate=rate, kernels=kernels, compression=rate, params=110742,
               nonzero_params=round(110742 / rate), macs=598104, nonzero_macs=round(598104 / rate), widths=(12, 32),
               float_accuracy=acc, int8_accuracy=acc, cycles=cycles, cycles_per_layer=(cycles,), layer_ops=("CONV_2D",),
               flash_bytes=1000, sram_bytes=100, xip_misses=0.0, bit_exact=True, tflite="m.tflite", elf="m.elf",
               latency_ms=board.latency_ms(cycles), energy_mj=board.energy_mj(cycles, 0.0), energy_delta_pct=0.0,
               accuracy_delta_pp=0.0)


@pytest.mark.slow
def test_a_paper_run_reports_the_measured_table_and_ratios_beside_ours(tmp_path):
    board = load_board("pico")
    rows = [_paper_row("dense", 1.0, "tflm-ref", 150e6, 0.90), _paper_row("dense", 1.0, ADAPTED_KERNELS, 152e6, 0.90),
            _paper_row("magnitude", 4.0, "tflm-ref", 150e6, 0.88),
            _paper_row("magnitude", 4.0, ADAPTED_KERNELS, 60e6, 0.88), _paper_row("apoz", 4.0, "tflm-ref", 40e6, 0.86)]
    paper = load_config("paper-exact")
    res = write_outputs(rows, tmp_path, board, title="paper run", arch=paper.arch, dtype=paper.dtype)
    md = (tmp_path / "report.md").read_text()
    assert "## The paper's measurements beside ours (its network, float32)" in md and "| float32 acc |" in md
    side = {(r["paper_method"], r["runtime"], r["rate"]): r for r in paper_side_by_side(res["aggregate"])}
    adapted4 = side[("unstructured", "adapted", 4.0)]
    assert adapted4["latency_ratio"] == pytest.approx(board.latency_ms(60e6) / 745.093)
    assert adapted4["our_delta_pct"] == pytest.approx(100 * (60 / 152 - 1))
    assert adapted4["paper_delta_pct"] == pytest.approx(-37.93, abs=0.01)
    assert f"| {adapted4['latency_ratio']:.2f} |" in md
    assert side[("structured", "stock", 8.0)]["ours"] is None  # not in this run: n/a, not a made-up number
    for name in ("paper_energy.png", "paper_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 10_000 and name in md
    lenet = write_outputs(rows, tmp_path / "lenet", board, arch=SweepConfig().arch)
    assert "measurements beside ours" not in (tmp_path / "lenet" / "report.md").read_text() and lenet
