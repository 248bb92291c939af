"""Run directory outputs: results.csv/json, plots, report.md and report.html, terminal summary.

Everything here is computed from the rows the sweep returns; nothing is typed in by hand except the
paper's published findings, which are quoted beside ours with their source.
"""

from __future__ import annotations

import csv
import html
import io
import re
import statistics
from collections import defaultdict
from pathlib import Path

from .atomic import write_bytes, write_json, write_text
from .energy import Board

# "Pruning for Power" (Widmann et al., EANN 2023), abstract: energy and accuracy change at 4x.
PAPER = [
    {"finding": "unstructured (magnitude), stock TFLM", "method": "magnitude", "kernels": "tflm-ref",
     "energy": "no effect (~0%)", "accuracy": "-"},
    {"finding": "structured (APoZ), stock TFLM", "method": "apoz", "kernels": "tflm-ref",
     "energy": "-59.06%", "accuracy": "-3.01 pp"},
    {"finding": "unstructured, their sparsity-aware TFLM", "method": "magnitude", "kernels": "auto",
     "energy": "-37.59%", "accuracy": "-1.58 pp"},
]

PAPER_METHODS = ("magnitude", "apoz")
NEW_METHODS = ("hybrid", "energy")
MARKERS = {"dense": "*", "magnitude": "o", "apoz": "s", "hybrid": "D", "energy": "^"}
METHOD_COLORS = {"magnitude": "#1f77b4", "apoz": "#ff7f0e", "hybrid": "#9467bd", "energy": "#d62728"}

CSV_COLUMNS = ["seed", "method", "rate", "kernels", "compression", "params", "nonzero_params", "macs",
               "nonzero_macs", "float_accuracy", "int8_accuracy", "cycles", "latency_ms", "energy_mj",
               "flash_bytes", "sram_bytes", "xip_misses", "energy_delta_pct", "accuracy_delta_pp", "bit_exact"]


def aggregate(rows: list[dict]) -> list[dict]:
    """Mean and standard deviation over seeds for each (method, rate, kernels)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["method"], r["rate"], r["kernels"])].append(r)
    out = []
    for (method, rate, kernels), rs in groups.items():
        agg = {"method": method, "rate": rate, "kernels": kernels, "seeds": len(rs)}
        for k in ("compression", "int8_accuracy", "float_accuracy", "cycles", "latency_ms", "energy_mj",
                  "energy_delta_pct", "accuracy_delta_pp", "flash_bytes", "sram_bytes"):
            vals = [r[k] for r in rs]
            agg[k] = statistics.fmean(vals)
            agg[k + "_std"] = statistics.stdev(vals) if len(vals) > 1 else 0.0
        agg["bit_exact"] = all(r["bit_exact"] for r in rs)
        agg["layer_ops"] = rs[0].get("layer_ops", [])
        agg["cycles_per_layer"] = [statistics.fmean(v) for v in zip(*(r["cycles_per_layer"] for r in rs),
                                                                   strict=True)]
        out.append(agg)
    return out


def pareto(points: list[dict]) -> list[dict]:
    """Points no other point beats on both lower energy and higher accuracy: the sweet spots."""
    front = []
    for p in points:
        if not any(q["energy_mj"] <= p["energy_mj"] and q["int8_accuracy"] >= p["int8_accuracy"]
                   and (q["energy_mj"], q["int8_accuracy"]) != (p["energy_mj"], p["int8_accuracy"]) for q in points):
            front.append(p)
    return sorted(front, key=lambda p: p["energy_mj"])


def _pm(v: float, s: float, fmt: str) -> str:
    return format(v, fmt) + (f" ± {format(s, fmt)}" if s else "")


def _label(a: dict) -> str:
    """'magnitude 4x' (compression); the energy method is asked for energy: 'energy E/4'."""
    if a["method"] == "dense":
        return "dense"
    return f"energy E/{a['rate']:g}" if a["method"] == "energy" else f"{a['method']} {a['rate']:g}x"


def write_outputs(rows: list[dict], run_dir: Path, board: Board, title: str = "powerprune run") -> dict:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "results.json", rows)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    write_text(run_dir / "results.csv", buf.getvalue())
    agg = aggregate(rows)
    plots = _plots(agg, run_dir)
    md = _markdown(agg, board, plots, title, seeds=len({r["seed"] for r in rows}))
    write_text(run_dir / "report.md", md)
    write_text(run_dir / "report.html", _html(md, title))
    return {"aggregate": agg, "plots": plots}


def paper_comparison(agg: list[dict]) -> list[dict]:
    out = []
    for p in PAPER:
        ours = next((a for a in agg if a["method"] == p["method"] and a["rate"] == 4.0
                     and a["kernels"] == p["kernels"]), None)
        out.append({**p, "ours_energy": None if ours is None else ours["energy_delta_pct"],
                    "ours_accuracy": None if ours is None else ours["accuracy_delta_pp"]})
    return out


COMPARE_KERNELS = "auto"  # every method compared on the kernels that serve it best


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
    import math

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
    import math

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


def _new_methods_section(agg: list[dict]) -> list[str]:
    rows = equal_energy_comparison(agg)
    if not rows:
        return []
    lines = [f"## Beyond the paper: hybrid and energy-aware pruning (all on the `{COMPARE_KERNELS}` kernels)", "",
             "*hybrid*: APoZ channel removal to the square root of the rate, then magnitude sparsity for the rest. "
             "*energy E/R*: greedy energy-aware pruning asked for 1/R of the dense model's predicted kernel cycles; it "
             "removes channels or weights by least loss per predicted cycle saved (cost model fitted on the virtual "
             "Pico). Each row puts a model of ours beside the best "
             "accuracy each paper method reaches at the same or lower energy (interpolated along its sweep; "
             "n/a: it has no model that cheap), and the least energy each paper method needs for our accuracy "
             "(in brackets: how much less we use).", "",
             "| ours | energy mJ | Δ energy vs stock dense | our int8 acc | magnitude at that energy "
             "| APoZ at that energy | magnitude's energy for that accuracy | APoZ's energy for that accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ref = [("n/a" if r["paper"].get(pm) is None else
                f"{100 * r['paper'][pm]:.2f}% ({100 * (r['int8_accuracy'] - r['paper'][pm]):+.2f} pp)")
               for pm in PAPER_METHODS]
        cost = [("not reached" if r["paper_energy"].get(pm) is None else
                 f"{r['paper_energy'][pm]:.3f} mJ ({100 * (r['energy_mj'] / r['paper_energy'][pm] - 1):+.0f}%)")
                for pm in PAPER_METHODS]
        lines.append(f"| {_label(r)} | {r['energy_mj']:.3f} | {r['energy_delta_pct']:+.1f}% "
                     f"| {100 * r['int8_accuracy']:.2f}% | {ref[0]} | {ref[1]} | {cost[0]} | {cost[1]} |")
    return lines + [""]


def _markdown(agg: list[dict], board: Board, plots: dict, title: str, seeds: int) -> str:
    lines = [f"# {title}", ""]
    lines += ["Energy per inference = cycles / f x V x I" + (" + XIP misses x E_miss" if board.flash_miss_energy_nj
                                                             else ""),
              f"with board profile `{board.name}`: f = {board.clock_hz / 1e6:g} MHz, V = {board.supply_voltage_v} V, "
              f"I = {board.active_current_ma:g} mA (P = {board.active_power_mw:g} mW), "
              f"E_miss = {board.flash_miss_energy_nj:g} nJ.",
              "Cycles are counted on the virtual Pico (rp2040js, Cortex-M0+, our XIP cache model), not measured "
              "on hardware. Relative savings do not depend on V and I.", ""]
    lines += ["## The paper's findings beside ours (4x compression, vs the dense model on stock kernels)", "",
              "| finding | paper energy | paper accuracy | ours: method, kernels | our energy | our int8 accuracy |",
              "|---|---|---|---|---|---|"]
    for c in paper_comparison(agg):
        e = "n/a" if c["ours_energy"] is None else f"{c['ours_energy']:+.2f}%"
        a = "n/a" if c["ours_accuracy"] is None else f"{c['ours_accuracy']:+.2f} pp"
        lines.append(f"| {c['finding']} | {c['energy']} | {c['accuracy']} | {c['method']} 4x, {c['kernels']} "
                     f"| {e} | {a} |")
    lines += ["", "Paper: Widmann et al., *Pruning for Power*, EANN 2023 (abstract).", ""]
    lines += _new_methods_section(agg)
    lines += [f"## All models ({seeds} seed{'s' if seeds > 1 else ''}; mean ± std where several)", "",
              "| model | kernels | compression | int8 acc | Δ acc | cycles | ms | energy mJ | Δ energy | flash B | "
              "SRAM B | bit-exact |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for a in agg:
        lines.append(
            f"| {_label(a)} | {a['kernels']} | {a['compression']:.2f}x "
            f"| {_pm(100 * a['int8_accuracy'], 100 * a['int8_accuracy_std'], '.2f')}% "
            f"| {_pm(a['accuracy_delta_pp'], a['accuracy_delta_pp_std'], '+.2f')} | {a['cycles']:,.0f} "
            f"| {a['latency_ms']:.2f} | {_pm(a['energy_mj'], a['energy_mj_std'], '.3f')} "
            f"| {_pm(a['energy_delta_pct'], a['energy_delta_pct_std'], '+.1f')}% | {a['flash_bytes']:,.0f} "
            f"| {a['sram_bytes']:,.0f} | {a['bit_exact']} |")
    front = pareto(agg)
    lines += ["", "## Sweet spots (Pareto front: no other model is both cheaper and more accurate)", ""]
    merged: dict[tuple, list[dict]] = defaultdict(list)  # kernel sets that tie exactly share a line
    for p in front:
        merged[(_label(p), p["int8_accuracy"], p["energy_mj"])].append(p)
    lines += [f"- {label}, {' = '.join(q['kernels'] for q in ps)}: {100 * acc:.2f}% at {e:.3f} mJ "
              f"({ps[0]['energy_delta_pct']:+.1f}% energy)" for (label, acc, e), ps in merged.items()]
    lines.append("")
    for name, path in plots.items():
        lines += [f"### {name}", "", f"![{name}]({path})", ""]
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then render the two inline Markdown forms the report uses: `code` and *emphasis*."""
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*([^*]+)\*", r"<em>\1</em>", text)


def _html(md: str, title: str) -> str:
    """A self-contained HTML rendering of the Markdown report (tables, headings, images, lists)."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
           "text-align:right}td:first-child,th:first-child{text-align:left}img{max-width:100%}</style>"
           "</head><body>"]
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            out.append("<table>")
            for i, cells in enumerate(table):
                tag = "th" if i == 0 else "td"
                out.append("<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>")
            out.append("</table>")
            table.clear()

    in_list = False
    for line in md.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                table.append(cells)
            continue
        flush()
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{_inline(line.lstrip('# '))}</h{level}>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1:-1]
            out.append(f"<p><img src='{html.escape(src)}' alt=''></p>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line:
            out.append(f"<p>{_inline(line)}</p>")
    flush()
    if in_list:
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def finish_energy_axes(fig, ax):
    """Accuracy over log energy, the axes every accuracy-vs-energy plot shares."""
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (mJ, log)")
    ax.set_ylabel("int8 test accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _plots(agg: list[dict], run_dir: Path) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    markers = MARKERS
    kernels = sorted({a["kernels"] for a in agg}, key=["tflm-ref", "dense", "sparse", "auto"].index)
    colors = {k: c for k, c in zip(["tflm-ref", "dense", "sparse", "auto"], ["#888", "#1f77b4", "#ff7f0e", "#2ca02c"],
                                   strict=True)}

    def save(fig, name: str) -> str:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        write_bytes(run_dir / name, buf.getvalue())
        return name

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for a in agg:
        ax.scatter(a["energy_mj"], 100 * a["int8_accuracy"], marker=markers.get(a["method"], "x"),
                   color=colors[a["kernels"]], s=40, alpha=0.85)
    front = pareto(agg)
    ax.plot([p["energy_mj"] for p in front], [100 * p["int8_accuracy"] for p in front], "k--", lw=1,
            label="Pareto front (sweet spots)")
    for p in front:
        ax.annotate(f"{_label(p)}\n{p['kernels']}", (p["energy_mj"], 100 * p["int8_accuracy"]), fontsize=6,
                    xytext=(4, -8), textcoords="offset points")
    for k in kernels:
        ax.scatter([], [], color=colors[k], label=f"kernels: {k}")
    for m, mk in markers.items():
        ax.scatter([], [], marker=mk, color="k", label=m)
    plots["Pareto: accuracy vs energy"] = save(finish_energy_axes(fig, ax), "pareto.png")

    curves = method_curves(agg)
    if any(m in curves for m in NEW_METHODS):
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        for method, pts in curves.items():
            ax.plot([p["energy_mj"] for p in pts], [100 * p["int8_accuracy"] for p in pts], marker=MARKERS[method],
                    color=METHOD_COLORS[method], ls="-" if method in NEW_METHODS else ":",
                    label=f"{method} ({'ours' if method in NEW_METHODS else 'paper'}), {COMPARE_KERNELS}")
            for p in pts:
                ax.annotate(_label(p).split(" ", 1)[-1], (p["energy_mj"], 100 * p["int8_accuracy"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points", color=METHOD_COLORS[method])
        stock = [a for a in agg if a["kernels"] == "tflm-ref" and a["method"] in ("dense", *PAPER_METHODS)]
        for a in stock:
            ax.scatter(a["energy_mj"], 100 * a["int8_accuracy"], marker=MARKERS[a["method"]], color="#888", s=22)
        ax.scatter([], [], color="#888", marker="o", label="paper methods on stock TFLM kernels (tflm-ref)")
        plots["Methods: ours beside the paper's (accuracy vs energy)"] = save(finish_energy_axes(fig, ax),
                                                                              "methods.png")

    for what, key, ylabel, fname in (("energy", "energy_mj", "energy per inference (mJ)", "compression_energy.png"),
                                     ("accuracy", "int8_accuracy", "int8 accuracy", "compression_accuracy.png")):
        fig, ax = plt.subplots(figsize=(7, 4))
        styles = dict(zip((*PAPER_METHODS, *NEW_METHODS), ("-", ":", "-.", "--"), strict=True))
        for method in [m for m in (*PAPER_METHODS, *NEW_METHODS) if any(a["method"] == m for a in agg)]:
            for k in kernels if what == "energy" else kernels[:1]:
                pts = sorted((a["compression"], a[key]) for a in agg if a["method"] == method and a["kernels"] == k)
                dense = next((a for a in agg if a["method"] == "dense" and a["kernels"] == k), None)
                if dense:
                    pts = [(1.0, dense[key])] + pts
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker=markers[method], color=colors[k],
                            ls=styles[method], label=f"{method}, {k}" if what == "energy" else method)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("compression (dense params / nonzero params)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        plots[f"compression vs {what}"] = save(fig, fname)

    layer_rows = [a for a in agg if a["rate"] in (1.0, 4.0)]
    if layer_rows:
        fig, ax = plt.subplots(figsize=(8, 4))
        names = [f"{_label(a)}\n{a['kernels']}" for a in layer_rows]
        bottoms = [0.0] * len(layer_rows)
        n_layers = max(len(a["cycles_per_layer"]) for a in layer_rows)
        for i in range(n_layers):
            vals = [a["cycles_per_layer"][i] / 1e6 if i < len(a["cycles_per_layer"]) else 0 for a in layer_rows]
            ops = layer_rows[0]["layer_ops"]
            ax.bar(names, vals, bottom=bottoms, label=f"{i}: {ops[i]}" if i < len(ops) else f"layer {i}")
            bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
        ax.set_ylabel("Mcycles")
        ax.tick_params(axis="x", labelsize=6)
        ax.legend(fontsize=6, ncol=2)
        plots["per-layer cycles (dense and 4x models)"] = save(fig, "layers.png")
    return plots


def terminal_summary(agg: list[dict]) -> str:
    """One screen: per model, the stock kernels and the cheapest other kernel set (report.md has all)."""
    head = (f"{'model':<16} {'kernels':<9} {'comp':>6} {'int8 acc':>9} {'Δacc pp':>8} {'ms':>8} {'mJ':>8} "
            f"{'Δenergy':>8}")
    lines = [head, "-" * len(head)]
    models: dict[tuple, list[dict]] = defaultdict(list)
    for a in agg:
        models[(a["method"], a["rate"])].append(a)
    for rows in models.values():
        stock = [a for a in rows if a["kernels"] == "tflm-ref"]
        best = sorted((a for a in rows if a["kernels"] != "tflm-ref"), key=lambda a: a["energy_mj"])[:1]
        for a in stock + best:
            lines.append(f"{_label(a):<16} {a['kernels']:<9} {a['compression']:>5.1f}x "
                         f"{100 * a['int8_accuracy']:>8.2f}% {a['accuracy_delta_pp']:>+8.2f} {a['latency_ms']:>8.2f} "
                         f"{a['energy_mj']:>8.3f} {a['energy_delta_pct']:>+7.1f}%")
    return "\n".join(lines)
