"""The report: a real browser renders report.html with every table and every plot."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

from powerprune.energy import load_board
from powerprune.report import write_outputs


def _row(method: str, rate: float, kernels: str, energy: float, acc: float) -> dict:
    cycles = energy * 1e6
    return {"seed": 0, "method": method, "rate": rate, "kernels": kernels, "compression": rate, "params": 100,
            "nonzero_params": round(100 / rate), "macs": 1000, "nonzero_macs": round(1000 / rate),
            "widths": [6, 16], "float_accuracy": acc, "int8_accuracy": acc, "cycles": cycles,
            "cycles_per_layer": [cycles / 2, cycles / 2], "layer_ops": ["CONV_2D", "FULLY_CONNECTED"],
            "flash_bytes": 1000, "sram_bytes": 100, "xip_misses": 0.0, "bit_exact": True, "tflite": "m.tflite",
            "elf": "m.elf", "latency_ms": cycles / 125e3, "energy_mj": energy,
            "energy_delta_pct": 100 * (energy / 4.0 - 1), "accuracy_delta_pp": 100 * (acc - 0.9)}


ROWS = [_row("dense", 1.0, "tflm-ref", 4.0, 0.90), _row("dense", 1.0, "auto", 3.0, 0.90),
        _row("magnitude", 4.0, "tflm-ref", 4.0, 0.89), _row("magnitude", 4.0, "auto", 1.5, 0.89),
        _row("apoz", 4.0, "tflm-ref", 1.6, 0.87), _row("apoz", 4.0, "auto", 1.2, 0.87),
        _row("energy", 4.0, "auto", 0.8, 0.88)]

# Run after the page's load event: how many tables and rows it has, and each image's decoded width.
PROBE = """<script>addEventListener("load", () => {
  const b = document.body.dataset;
  b.tables = document.querySelectorAll("table").length;
  b.rows = document.querySelectorAll("tr").length;
  b.images = [...document.images].map(i => i.complete ? i.naturalWidth : -1).join(",");
});</script>"""


def test_the_html_report_renders_every_table_and_plot_in_a_real_browser(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: `make setup` installs it")
        pytest.skip("chromium is not installed (`make setup` installs it)")
    res = write_outputs(ROWS, tmp_path, load_board("pico"), title="synthetic run")
    assert "Methods: ours beside the paper's (accuracy vs energy)" in res["plots"]  # the caption that broke
    page = (tmp_path / "report.html").read_text()
    (tmp_path / "probe.html").write_text(page.replace("</body>", PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--allow-file-access-from-files", f"--user-data-dir={profile}", "--virtual-time-budget=10000",
             "--dump-dom", (tmp_path / "probe.html").as_uri()],
            capture_output=True, text=True, timeout=120, check=True).stdout
    body = re.search(r'<body data-tables="(\d+)" data-rows="(\d+)" data-images="([^"]*)"', dom)
    assert body, dom[:2000]
    tables, rows, images = int(body[1]), int(body[2]), [int(w) for w in body[3].split(",")]
    assert tables == 3  # the paper beside ours, beyond the paper, all models
    assert rows == (1 + 3) + (1 + 1) + (1 + len(ROWS))  # header + the paper's 3 findings, our 1 energy model, all
    assert len(images) == len(res["plots"]) == 5
    assert all(w > 0 for w in images), images  # every plot decoded: no broken image
