"""Run directory outputs: results.csv/json, plots, report.md and report.html, terminal summary.

Everything here is computed from the rows the sweep returns; nothing is typed in by hand except the
paper's published findings, which are quoted beside ours with their source. Split by concern:
``analysis`` (pure functions of the rows), ``markdown`` (report.md and the terminal summary),
``html`` (report.html from that Markdown) and ``plots`` (the figures).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..atomic import write_json, write_text
from ..energy import Board
from .analysis import aggregate, equal_energy_comparison, pareto
from .html import to_html
from .markdown import markdown, terminal_summary
from .plots import plots

CSV_COLUMNS = ["seed", "method", "rate", "kernels", "compression", "params", "nonzero_params", "macs",
               "nonzero_macs", "float_accuracy", "int8_accuracy", "cycles", "latency_ms", "energy_mj",
               "flash_bytes", "sram_bytes", "xip_misses", "energy_delta_pct", "accuracy_delta_pp", "bit_exact"]

__all__ = ["aggregate", "equal_energy_comparison", "pareto", "terminal_summary", "write_outputs"]


def write_outputs(rows: list[dict], run_dir: Path, board: Board, title: str = "powerprune run") -> dict:
    """Write every output of a run into ``run_dir``; returns the aggregate and the plots' files."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "results.json", rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_text(run_dir / "results.csv", buf.getvalue())
    agg = aggregate(rows)
    figures = plots(agg, run_dir)
    md = markdown(agg, board, figures, title, seeds=len({r["seed"] for r in rows}))
    write_text(run_dir / "report.md", md)
    write_text(run_dir / "report.html", to_html(md, title))
    return {"aggregate": agg, "plots": figures}
