"""`powerprune run`: a tiny sweep end to end, resumption after kill -9 (its pool workers die with it), report
contents, energy."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from powerprune.board import BoardError, calibrate, load_board
from powerprune.cli import main

REPO = Path(__file__).resolve().parents[1]

TINY = """
[run]
rates = [4]
methods = ["magnitude", "apoz"]
epochs = 1
finetune_epochs = 1
train_limit = 1500
test_limit = 300
kernels = ["tflm-ref", "auto"]
profile_images = 1
jobs = 2
"""


def _records(run_dir):
    return {p.name: p.stat().st_mtime_ns for p in (run_dir / "cache").glob("*.json")}


@pytest.mark.slow
def test_tiny_sweep_writes_everything_and_resumes_without_recomputing(tmp_path, capsys):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY)
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(out)]) == 0
    for name in ("results.csv", "results.json", "report.md", "report.html", "pareto.png",
                 "compression_energy.png", "compression_accuracy.png", "layers.png"):
        assert (out / name).exists(), name
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == 3 * 2  # dense + 2 methods, 2 kernel sets
    assert all((out / "cache" / r["elf"].split("/")[-1]).exists() for r in rows)  # firmware kept in the run
    assert all(r["bit_exact"] for r in rows)
    base = next(r for r in rows if r["method"] == "dense" and r["kernels"] == "tflm-ref")
    assert base["energy_delta_pct"] == 0
    mag = {r["kernels"]: r for r in rows if r["method"] == "magnitude"}
    assert abs(mag["tflm-ref"]["energy_delta_pct"]) < 2      # stock kernels: zeros cost the same
    assert mag["auto"]["energy_delta_pct"] < -50             # our kernels turn them into savings
    report = (out / "report.md").read_text()
    assert "-59.06%" in report and "-37.59%" in report and "Pareto" in report
    before = _records(out)
    capsys.readouterr()
    t = time.time()
    assert main(["run", "--config", str(cfg), "--out", str(out)]) == 0
    assert _records(out) == before  # nothing recomputed
    assert time.time() - t < 30


@pytest.mark.slow
def test_kill_9_loses_nothing(tmp_path):
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.replace("jobs = 2", "jobs = 1"))
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "powerprune.cli", "run", "--config", str(cfg), "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(_records(out) if (out / "cache").exists() else {}) < 3:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _records(out)
    assert done, "the run should have finished some stages before the kill"
    for name in done:  # every finished record is complete JSON
        json.loads((out / "cache" / name).read_text())
    assert main(["run", "--config", str(cfg), "--out", str(out)]) == 0
    after = _records(out)
    assert all(after[n] == m for n, m in done.items())  # finished stages were not redone
    assert len(after) > len(done)


def test_bad_config_is_a_clear_error(tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[run]\nrates = [4]\nkernelz = ['dense']\n")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "r")]) == 2
    assert "unknown key" in capsys.readouterr().err


def test_energy_and_calibration(tmp_path, monkeypatch):
    monkeypatch.setenv("POWERPRUNE_BOARDS", str(tmp_path))
    pico = load_board("pico")
    assert pico.energy_mj(125_000_000) == pytest.approx(pico.supply_voltage_v * pico.active_current_ma)
    cal = calibrate(pico, 5.0, 12_500_000)  # 5 mJ over 100 ms at 5 V -> 10 mA
    assert cal.active_current_ma == pytest.approx(10.0)
    assert main(["calibrate", "--profile", "pico", "--measured-mj", "5", "--cycles", "12500000", "--name", "mine"]) == 0
    assert load_board("mine").active_current_ma == pytest.approx(10.0)
    with pytest.raises(BoardError, match="shipped profiles"):
        load_board("no-such-board")
    assert load_board("rp2040-core").supply_voltage_v == pytest.approx(1.1)


@pytest.mark.slow
def test_ray_backend_gives_the_same_results_and_cache_as_local_processes(tmp_path, capsys):
    pytest.importorskip("ray")
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(TINY.replace('methods = ["magnitude", "apoz"]', 'methods = ["magnitude"]'))
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--out", str(out), "--backend", "ray"]) == 0
    rows_ray = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in rows_ray} == {"dense", "magnitude"} and all(r["bit_exact"] for r in rows_ray)
    before = _records(out)
    assert main(["run", "--config", str(cfg), "--out", str(out)]) == 0  # local processes, same cache
    assert _records(out) == before
    assert json.loads((out / "results.json").read_text()) == rows_ray
    assert main(["run", "--config", str(cfg), "--out", str(out), "--address", "x:1"]) == 2
    assert "--backend ray" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_run_workers_die_with_their_parent(tmp_path):
    """Killing only the main process of `run` must not leave its pool workers behind."""
    script = tmp_path / "pool.py"
    script.write_text(textwrap.dedent("""
        import os, time
        from concurrent.futures import ProcessPoolExecutor
        from powerprune.sweep import die_with_parent

        def job(i):
            time.sleep(60)

        if __name__ == "__main__":
            with ProcessPoolExecutor(2, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
                futures = [pool.submit(job, i) for i in range(2)]
                time.sleep(2)
                print(" ".join(str(p) for p in pool._processes), flush=True)
                time.sleep(60)
    """))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    workers = [int(p) for p in proc.stdout.readline().split()]
    assert len(workers) == 2
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return False
