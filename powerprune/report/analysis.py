"""What the report says, as pure functions of the sweep's rows: aggregation over seeds, the Pareto
front, the paper's findings beside ours, and the equal-energy comparison of the new methods.

Nothing here draws or formats; markdown.py and plots.py render these results.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from dataclasses import fields
from importlib import resources

from ..mcu.codegen import ADAPTED_KERNELS
from ..results import CHANCE_MARGIN, CMSIS_KERNELS, NEW_METHODS, PAPER_METHODS, STOCK_KERNELS, Row, model_label

# "Pruning for Power" (Widmann et al., EANN 2023), abstract: energy and accuracy change at 4x.
PAPER = [
    {"finding": "unstructured (magnitude), stock TFLM", "method": "magnitude", "kernels": "tflm-ref",
     "energy": "no effect (~0%)", "accuracy": "-"},
    {"finding": "structured (APoZ), stock TFLM", "method": "apoz", "kernels": "tflm-ref",
     "energy": "-59.06%", "accuracy": "-3.01 pp"},
    {"finding": "unstructured, their sparsity-aware TFLM", "method": "magnitude", "kernels": "auto",
     "energy": "-37.59%", "accuracy": "-1.58 pp"},
]

COMPARE_KERNELS = "auto"  # every method compared on the kernels that serve it best


def aggregate(rows: list[Row]) -> list[dict]:
    """One dict per (method, rate, kernels) with every ``Row`` field over its seeds: numbers as mean
    and ``<field>_std``, per-layer numbers as element-wise means, ``bit_exact`` when all seeds were,
    anything else (layer ops, artifact paths) from the first seed; ``seeds`` counts them."""
    groups: dict[tuple, list[Row]] = defaultdict(list)
    for r in rows:
        groups[(r.method, r.rate, r.kernels)].append(r)
    out = []
    for (method, rate, kernels), rs in groups.items():
        agg: dict = {"method": method, "rate": rate, "kernels": kernels, "seeds": len(rs)}
        for f in fields(Row):
            vals = [getattr(r, f.name) for r in rs]
            if f.name in agg or f.name == "seed":
                continue
            if isinstance(vals[0], bool):
                agg[f.name] = all(vals)
            elif isinstance(vals[0], int | float):
                agg[f.name] = statistics.fmean(vals)
                agg[f.name + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
            elif isinstance(vals[0], tuple) and all(isinstance(v, int | float) for v in vals[0]):
                agg[f.name] = [statistics.fmean(v) for v in zip(*vals, strict=True)]
            else:
                agg[f.name] = vals[0]
        out.append(agg)
    return out


def problems(agg: list[dict]) -> list[dict]:
    """The aggregated rows that cannot be right, each with why: accuracy within ``CHANCE_MARGIN`` of
    chance, energy above the unpruned model's on the same kernels (pruning cannot add work), or outputs
    on the virtual Pico that differ from the host reference. They are reported as problems, never as
    findings: ``findings`` leaves them out of the Pareto front, the plots and the comparisons."""
    dense = {a["kernels"]: a for a in agg if a["method"] == "dense"}
    out = []
    for a in agg:
        why = []
        chance = a.get("chance_accuracy")
        if chance is not None and a["int8_accuracy"] <= chance + CHANCE_MARGIN:
            why.append(f"accuracy {100 * a['int8_accuracy']:.2f}% is within {100 * CHANCE_MARGIN:g} pp of "
                       f"chance ({100 * chance:.2f}%)")
        base = dense.get(a["kernels"])
        if a["method"] != "dense" and base is not None and a["energy_mj"] > base["energy_mj"]:
            why.append(f"energy {a['energy_mj']:.4g} mJ is above the unpruned model's {base['energy_mj']:.4g} mJ "
                       "on the same kernels")
        if not a["bit_exact"]:
            why.append("the virtual Pico's outputs differ from the host reference")
        if why:
            out.append({**a, "problem": "; ".join(why)})
    return out


def findings(agg: list[dict]) -> list[dict]:
    """The aggregated rows that may be reported as findings: every row but ``problems``."""
    flagged = {(p["method"], p["rate"], p["kernels"]) for p in problems(agg)}
    return [a for a in agg if (a["method"], a["rate"], a["kernels"]) not in flagged]


def pareto(points: list[dict]) -> list[dict]:
    """Points no other point beats on both lower energy and higher accuracy: the sweet spots."""
    front = []
    for p in points:
        if not any(q["energy_mj"] <= p["energy_mj"] and q["int8_accuracy"] >= p["int8_accuracy"]
                   and (q["energy_mj"], q["int8_accuracy"]) != (p["energy_mj"], p["int8_accuracy"]) for q in points):
            front.append(p)
    return sorted(front, key=lambda p: p["energy_mj"])


def label(a: dict) -> str:
    """An aggregated row's model name, as the sweep's progress lines write it."""
    return model_label(a["method"], a["rate"])


def paper_comparison(agg: list[dict]) -> list[dict]:
    """Each of the paper's findings with our model at the same method, rate (4x) and kernel set, and
    the same finding against the second stock runtime: a stock-kernel finding rerun on cmsis-nn and
    compared with the dense model there; a finding on our kernels compared with dense on cmsis-nn."""
    def find(method: str, kernels: str) -> dict | None:
        return next((a for a in agg if a["method"] == method and a["rate"] == 4.0 and a["kernels"] == kernels), None)

    out = []
    for p in PAPER:
        ours = find(p["method"], p["kernels"])
        on_cmsis = find(p["method"], CMSIS_KERNELS if p["kernels"] == STOCK_KERNELS else p["kernels"])
        out.append({**p, "ours_energy": None if ours is None else ours["energy_delta_pct"],
                    "ours_energy_cmsis": None if on_cmsis is None else on_cmsis["energy_delta_cmsis_pct"],
                    "ours_accuracy": None if ours is None else ours["accuracy_delta_pp"]})
    return out


def method_curves(agg: list[dict], kernels: str = COMPARE_KERNELS) -> dict[str, list[dict]]:
    """Per pruning method, its models on ``kernels`` ordered by energy, the dense model first."""
    dense = [a for a in agg if a["method"] == "dense" and a["kernels"] == kernels]
    out = {}
    for m in (*PAPER_METHODS, *NEW_METHODS):
        pts = sorted((a for a in agg if a["method"] == m and a["kernels"] == kernels), key=lambda a: a["energy_mj"])
        if pts:
            out[m] = sorted(pts + dense, key=lambda a: a["energy_mj"])
    return out


def _accuracy_at(curve: list[dict], energy: float) -> float | None:
    """The best accuracy a method reaches at ``energy`` or less (its models below that energy, plus
    linear interpolation in log energy between neighbours); None below its cheapest model."""
    best = None
    for lo, hi in zip(curve, curve[1:], strict=False):
        if lo["energy_mj"] <= energy <= hi["energy_mj"] and hi["energy_mj"] > lo["energy_mj"]:
            t = (math.log(energy) - math.log(lo["energy_mj"])) / (math.log(hi["energy_mj"]) - math.log(lo["energy_mj"]))
            v = lo["int8_accuracy"] + t * (hi["int8_accuracy"] - lo["int8_accuracy"])
            best = v if best is None else max(best, v)
    below = [p["int8_accuracy"] for p in curve if p["energy_mj"] <= energy]
    if below:
        best = max(below) if best is None else max(best, max(below))
    return best


def _energy_for(curve: list[dict], acc: float) -> float | None:
    """The least energy at which a method reaches ``acc`` (interpolated like ``_accuracy_at``)."""
    cands = [p["energy_mj"] for p in curve if p["int8_accuracy"] >= acc]
    for lo, hi in zip(curve, curve[1:], strict=False):
        if lo["int8_accuracy"] < acc <= hi["int8_accuracy"]:
            t = (acc - lo["int8_accuracy"]) / (hi["int8_accuracy"] - lo["int8_accuracy"])
            e_lo, e_hi = math.log(lo["energy_mj"]), math.log(hi["energy_mj"])
            cands.append(math.exp(e_lo + t * (e_hi - e_lo)))
    return min(cands) if cands else None


def equal_energy_comparison(agg: list[dict]) -> list[dict]:
    """For every model of a new method: what each paper method reaches at the same energy (same
    kernel set), so "higher accuracy at equal energy" is a computed statement, not a reading of a plot."""
    curves = method_curves(agg)
    rows = []
    for m in NEW_METHODS:
        for p in curves.get(m, []):
            if p["method"] != m:
                continue
            ref = {pm: _accuracy_at(curves[pm], p["energy_mj"]) for pm in PAPER_METHODS if pm in curves}
            cost = {pm: _energy_for(curves[pm], p["int8_accuracy"]) for pm in PAPER_METHODS if pm in curves}
            rows.append({"method": m, "rate": p["rate"], "energy_mj": p["energy_mj"],
                         "energy_delta_pct": p["energy_delta_pct"], "int8_accuracy": p["int8_accuracy"],
                         "paper": ref, "paper_energy": cost})
    return rows


# --- the paper's own measurements (its published per-rate table), beside ours ------------------------

PAPER_MEASUREMENTS = "widmann2023_results.csv"  # in this package, with its source in its header
PAPER_METHOD_NAMES = {"unstructured": "magnitude", "structured": "apoz"}
PAPER_RUNTIMES = {"stock": STOCK_KERNELS, "adapted": ADAPTED_KERNELS}


def paper_measurements() -> list[dict]:
    """Every row the paper's authors measured on a physical Pico, in our names: method (magnitude |
    apoz), kernels (tflm-ref for their stock TFLM, tflm-skip for their adapted one), rate (1.0 for the
    unpruned model, their compression 0), accuracy, energy_mj and latency_ms."""
    text = (resources.files("powerprune.report") / PAPER_MEASUREMENTS).read_text()
    rows = csv.DictReader(line for line in text.splitlines() if line and not line.startswith("#"))
    return [{"method": PAPER_METHOD_NAMES[r["method"]], "paper_method": r["method"], "runtime": r["runtime"],
             "kernels": PAPER_RUNTIMES[r["runtime"]], "rate": float(r["compression"]) or 1.0,
             "accuracy": float(r["accuracy"]), "params": int(r["parameters"]),
             "energy_mj": 1000 * float(r["energy_j"]), "latency_ms": 1000 * float(r["latency_s"])} for r in rows]


def paper_side_by_side(agg: list[dict]) -> list[dict]:
    """Each of the paper's measured rows with our model at the same method, runtime and rate (the
    unpruned model is our dense one): ratios ours / theirs of latency and energy, and each side's
    energy change against its own unpruned model on the same runtime. Our side is None where the run
    has no such model."""
    measured = paper_measurements()

    def ours(method: str, rate: float, kernels: str) -> dict | None:
        want = ("dense", 1.0) if rate == 1.0 else (method, rate)
        return next((a for a in agg if (a["method"], a["rate"], a["kernels"]) == (*want, kernels)), None)

    def theirs_dense(p: dict) -> dict:
        return next(q for q in measured if (q["paper_method"], q["runtime"], q["rate"])
                    == (p["paper_method"], p["runtime"], 1.0))

    out = []
    for p in measured:
        o, base = ours(p["method"], p["rate"], p["kernels"]), ours(p["method"], 1.0, p["kernels"])
        row = {**p, "paper_delta_pct": 100 * (p["energy_mj"] / theirs_dense(p)["energy_mj"] - 1), "ours": o}
        if o is not None:
            row.update(latency_ratio=o["latency_ms"] / p["latency_ms"], energy_ratio=o["energy_mj"] / p["energy_mj"],
                       our_delta_pct=100 * (o["energy_mj"] / base["energy_mj"] - 1) if base else None)
        out.append(row)
    return out
