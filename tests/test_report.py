"""The report: a real browser renders report.html with every table and every plot."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import fields

import pytest

from powerprune.board import load_board
from powerprune.report import aggregate, equal_energy_comparison, terminal_summary, write_outputs
from powerprune.results import CSV_COLUMNS, Row


def _row(method: str, rate: float, kernels: str, energy: float, acc: float, seed: int = 0) -> Row:
    cycles = energy * 1e6
    return Row(seed=seed, method=method, rate=rate, kernels=kernels, compression=rate, params=100,
               nonzero_params=round(100 / rate), macs=1000, nonzero_macs=round(1000 / rate), widths=(6, 16),
               float_accuracy=acc, int8_accuracy=acc, cycles=cycles, cycles_per_layer=(cycles / 2, cycles / 2),
               layer_ops=("CONV_2D", "FULLY_CONNECTED"), flash_bytes=1000, sram_bytes=100, xip_misses=0.0,
               bit_exact=True, tflite="m.tflite", elf="m.elf", latency_ms=cycles / 125e3, energy_mj=energy,
               energy_delta_pct=100 * (energy / 4.0 - 1), accuracy_delta_pp=100 * (acc - 0.9))


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_csv_columns_are_the_rows_one_number_fields_and_results_json_keeps_every_field(tmp_path):
    write_outputs(ROWS[:2], tmp_path, load_board("pico"))
    header = (tmp_path / "results.csv").read_text().splitlines()[0].split(",")
    assert header == list(CSV_COLUMNS) and "cycles_per_layer" not in header and "elf" not in header
    first = json.loads((tmp_path / "results.json").read_text())[0]
    assert list(first) == [f.name for f in fields(Row)] and first["cycles_per_layer"] == [2e6, 2e6]


def test_seeds_are_aggregated_as_mean_and_std():
    rows = [_row(method, 1.0 if method == "dense" else 4.0, "tflm-ref", energy, acc, seed)
            for seed, (acc, energy) in enumerate([(0.90, 100.0), (0.92, 110.0)]) for method in ("dense", "apoz")]
    agg = aggregate(rows)
    dense = next(a for a in agg if a["method"] == "dense")
    assert dense["seeds"] == 2
    assert dense["int8_accuracy"] == pytest.approx(0.91)
    assert dense["int8_accuracy_std"] == pytest.approx(0.01414, rel=1e-3)
    assert dense["cycles"] == pytest.approx(105e6)
    assert dense["cycles_per_layer"] == pytest.approx([52.5e6, 52.5e6])
    assert "apoz 4x" in terminal_summary(agg)


def test_equal_energy_comparison_interpolates_along_each_paper_method():
    def row(method, rate, energy, acc):
        return {"method": method, "rate": rate, "kernels": "auto", "energy_mj": energy, "int8_accuracy": acc,
                "energy_delta_pct": 0.0}

    agg = [row("dense", 1.0, 4.0, 0.91), row("magnitude", 4.0, 2.0, 0.90), row("magnitude", 16.0, 1.0, 0.86),
           row("apoz", 4.0, 1.0, 0.88), row("energy", 4.0, 1.0, 0.895), row("energy", 8.0, 0.5, 0.85),
           row("magnitude", 4.0, 9.0, 0.99) | {"kernels": "tflm-ref"}]  # other kernel sets are not compared
    rows = {r["rate"]: r for r in equal_energy_comparison(agg)}
    assert rows[4.0]["paper"] == {"magnitude": 0.86, "apoz": 0.88}
    assert rows[8.0]["paper"] == {"magnitude": None, "apoz": None}  # nothing that cheap
    # magnitude reaches 89.5% between its 1.0 mJ (86%) and 2.0 mJ (90%) models: 7/8 of the way in log energy
    assert abs(rows[4.0]["paper_energy"]["magnitude"] - 2 ** (7 / 8)) < 1e-9
    # APoZ: halfway from its 1.0 mJ model (88%) to the dense model at 4.0 mJ (91%) in log energy
    assert abs(rows[4.0]["paper_energy"]["apoz"] - 2.0) < 1e-9


@pytest.mark.slow
def test_savings_are_quoted_against_both_stock_runtimes(tmp_path):
    """Every row's energy delta against the dense model on tflm-ref and on cmsis-nn, and the report
    shows both; without cmsis-nn in the run the second delta is n/a, never made up."""
    from powerprune.results import Measurement
    from powerprune.sweep import add_energy_and_deltas

    board = load_board("pico")
    keep = {f.name for f in fields(Measurement)}

    def measured(method, rate, kernels, energy):
        return Measurement(**{k: v for k, v in vars(_row(method, rate, kernels, energy, 0.9)).items() if k in keep})

    runs = [measured("dense", 1.0, "tflm-ref", 4.0), measured("dense", 1.0, "cmsis-nn", 1.6),
            measured("magnitude", 4.0, "auto", 0.8)]
    rows = add_energy_and_deltas(runs, board)
    mag = next(r for r in rows if r.method == "magnitude")
    assert mag.energy_delta_pct == pytest.approx(-80.0)
    assert mag.energy_delta_cmsis_pct == pytest.approx(-50.0)
    write_outputs(rows, tmp_path, board)
    assert "| -50.0% |" in (tmp_path / "report.md").read_text()
    alone = add_energy_and_deltas([runs[0], runs[2]], board)
    assert alone[-1].energy_delta_cmsis_pct is None
    write_outputs(alone, tmp_path / "alone", board)
    assert "n/a" in (tmp_path / "alone" / "report.md").read_text()


def test_implausible_rows_are_problems_not_findings(tmp_path):
    """A collapsed model (chance accuracy), energy above the unpruned model's and a run that is not
    bit-exact once went into the Pareto plot and the comparisons as findings."""
    from dataclasses import replace

    from powerprune.report.analysis import findings, pareto, problems
    from powerprune.results import Refusal

    collapsed = replace(_row("energy", 12.0, "auto", 0.5, 0.10), chance_accuracy=0.10)
    costlier = _row("hybrid", 2.0, "auto", 3.5, 0.90)  # above the dense model's 3.0 mJ on auto
    wrong = replace(_row("apoz", 8.0, "auto", 0.9, 0.86), bit_exact=False)
    rows = [*ROWS, collapsed, costlier, wrong]
    agg = aggregate(rows)
    flagged = {(p["method"], p["rate"]): p["problem"] for p in problems(agg)}
    assert set(flagged) == {("energy", 12.0), ("hybrid", 2.0), ("apoz", 8.0)}
    assert "within 2 pp of chance" in flagged[("energy", 12.0)]
    assert "above the unpruned model's" in flagged[("hybrid", 2.0)]
    assert "differ from the host reference" in flagged[("apoz", 8.0)]
    kept = findings(agg)
    assert all((a["method"], a["rate"]) not in flagged for a in kept + pareto(kept))
    refused = [Refusal(0, "energy", 16.0, "energy budget 0.0625 (E/16) collapses the network")]
    res = write_outputs(rows, tmp_path, load_board("pico"), title="problems", refused=refused)
    md = (tmp_path / "report.md").read_text()
    problems_md = md[md.index("## Problems"):md.index("## All models")]
    assert "energy E/12, auto: accuracy 10.00% is within 2 pp of chance" in problems_md
    assert "energy E/16 (seed 0): refused: energy budget 0.0625" in problems_md
    assert md.index("## Sweet spots") < md.index("## Problems") < md.index("## All models")  # findings first
    assert "<details>" in (tmp_path / "report.html").read_text()  # the table of every model is folded away
    summary = terminal_summary(res["aggregate"], refused=refused)
    assert "problems (not findings" in summary and "E/16" in summary
    assert "energy E/12" not in summary.split("problems")[0]  # not among the findings above
