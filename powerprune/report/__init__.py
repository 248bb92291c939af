"""Run directory outputs: results.csv/json, plots, report.md and report.html, terminal summary.

Everything here is computed from the rows the sweep returns; nothing is typed in by hand except the
paper's published findings, which are quoted beside ours with their source. Split by concern:
``analysis`` (pure functions of the rows), ``markdown`` (report.md and the terminal summary),
``html`` (report.html from that Markdown) and ``plots`` (the figures).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ..atomic import write_json, write_text
from ..board import Board
from ..results import CSV_COLUMNS, Refusal, Row
from .analysis import aggregate, equal_energy_comparison, findings, pareto, problems
from .html import to_html
from .markdown import markdown, terminal_summary
from .plots import plots

__all__ = ["aggregate", "equal_energy_comparison", "findings", "pareto", "problems", "terminal_summary",
           "write_outputs"]


def write_outputs(rows: list[Row], run_dir: Path, board: Board, title: str = "powerprune run",
                  arch: str | None = None, dtype: str = "int8", refused: Sequence[Refusal] = ()) -> dict:
    """Write every output of a run into ``run_dir``; returns the aggregate and the plots' files.
    results.json has every field of every row, results.csv the one-number fields (``CSV_COLUMNS``).
    The run's network (``arch``, as a run config names it) and ``dtype`` add what depends on them: the
    paper's measured table for its own network, the accuracy column's name. Rows that cannot be right
    (``analysis.problems``) and ``refused`` models go to the report's problems, not into its plots."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "results.json", [asdict(r) for r in rows])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(CSV_COLUMNS)
    w.writerows([getattr(r, c) for c in CSV_COLUMNS] for r in rows)
    write_text(run_dir / "results.csv", buf.getvalue())
    agg = aggregate(rows)
    paper = arch == "paper"
    figures = plots(findings(agg), run_dir, paper_measured=paper)
    md = markdown(agg, board, figures, title, seeds=len({r.seed for r in rows}), arch=arch, dtype=dtype,
                  refused=refused)
    write_text(run_dir / "report.md", md)
    write_text(run_dir / "report.html", to_html(md, title))
    return {"aggregate": agg, "plots": figures}
