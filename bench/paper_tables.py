"""BENCHMARKS.md section 1, rendered from a run's results.json (seed 0 rows).

    python bench/paper_tables.py [runs/paper/results.json]

Prints the accuracy table, the cycles of every model on every kernel set with ratios against both
stock runtimes, and the paper's 4x findings beside ours. Nothing is typed in by hand but the paper's
published figures, which ``powerprune.report.analysis.PAPER`` quotes with their source.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from pathlib import Path

from powerprune.report.analysis import aggregate, label, paper_comparison
from powerprune.results import Row

STOCK, CMSIS = "tflm-ref", "cmsis-nn"


def main() -> None:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/paper/results.json")
    rows = [r for r in json.loads(path.read_text()) if r["seed"] == 0]
    kernels = list(dict.fromkeys(r["kernels"] for r in rows))
    models = list(dict.fromkeys((r["method"], r["rate"]) for r in rows))
    at = {(r["method"], r["rate"], r["kernels"]): r for r in rows}

    print("| model | achieved compression | float acc | int8 acc | Δ int8 vs dense |\n|---|---|---|---|---|")
    for m in models:
        r = at[(*m, kernels[0])]
        print(f"| {label(r)} | {r['compression']:.3f}x | {100 * r['float_accuracy']:.2f}% "
              f"| {100 * r['int8_accuracy']:.2f}% | {r['accuracy_delta_pp']:+.2f} pp |")

    ratios = [k for k in (STOCK, CMSIS, "dense") if k in kernels and k != "auto"]
    print("\n| model | " + " | ".join(kernels) + " | " + " | ".join(f"auto / {k}" for k in ratios)
          + " | auto flash B |")
    print("|---|" + "---|" * (len(kernels) + len(ratios) + 1))
    for m in models:
        auto = at[(*m, "auto")]["cycles"]
        print(f"| {label(at[(*m, kernels[0])])} | " + " | ".join(f"{at[(*m, k)]['cycles']:,.0f}" for k in kernels)
              + " | " + " | ".join(f"{100 * auto / at[(*m, k)]['cycles']:.1f}%" for k in ratios)
              + f" | {at[(*m, 'auto')]['flash_bytes']:,} |")

    # the paper's findings at 4x, both stock runtimes, exactly as the run's report.md computes them
    fields_of_row = {f.name for f in fields(Row)}
    agg = aggregate([Row(**{k: v for k, v in r.items() if k in fields_of_row}) for r in rows])
    print("\n| finding (4x) | paper | ours vs dense on tflm-ref | ours vs dense on cmsis-nn | Δ int8 |")
    print("|---|---|---|---|---|")
    for c in paper_comparison(agg):
        print(f"| {c['finding']} (ours: {c['kernels']}) | {c['energy']} energy, {c['accuracy']} "
              f"| {pct(c['ours_energy'])} | {pct(c['ours_energy_cmsis'])} | {c['ours_accuracy']:+.2f} pp |")
    for a in agg:
        if a["rate"] == 4.0 and a["kernels"] == "auto" and a["method"] in ("apoz", "hybrid", "energy"):
            print(f"| {label(a)} with our kernels (auto) | – | {pct(a['energy_delta_pct'])} "
                  f"| {pct(a['energy_delta_cmsis_pct'])} | {a['accuracy_delta_pp']:+.2f} pp |")


def pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}%"


if __name__ == "__main__":
    main()
