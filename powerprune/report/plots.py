"""The report's figures (PNG files in the run directory), drawn from the aggregated rows."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path

from ..atomic import write_bytes
from ..mcu.codegen import KERNEL_SETS
from ..results import NEW_METHODS, PAPER_METHODS, STOCK_KERNELS
from .analysis import COMPARE_KERNELS, label, method_curves, paper_side_by_side, pareto

MARKERS = {"dense": "*", "magnitude": "o", "apoz": "s", "hybrid": "D", "energy": "^"}
METHOD_COLORS = {"magnitude": "#1f77b4", "apoz": "#ff7f0e", "hybrid": "#9467bd", "energy": "#d62728"}
KERNEL_COLORS = {"tflm-ref": "#888", "cmsis-nn": "#8c564b", "dense": "#1f77b4", "sparse": "#ff7f0e",
                 "auto": "#2ca02c", "tflm-skip": "#17becf"}


def finish_energy_axes(fig, ax, outside: bool = False):
    """Accuracy over log energy, the axes every accuracy-vs-energy plot shares; ``outside`` puts the
    legend right of the axes, so that it hides no point or label."""
    ax.set_xscale("log")
    ax.set_xlabel("energy per inference (mJ, log)")
    ax.set_ylabel("int8 test accuracy (%)")
    ax.grid(True, alpha=0.3)
    legend(ax, **({"loc": "upper left", "bbox_to_anchor": (1.01, 1.0)} if outside else {}))
    return fig


def legend(ax, **kw) -> None:
    """A legend when the axes have labelled artists (a run with one model may have none)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**{"fontsize": 7, **kw})


# where a label may sit around its point (offset in points, horizontal alignment), nearest first
_LABEL_SPOTS = [((4, -10), "left"), ((4, 4), "left"), ((-4, 4), "right"), ((-4, -10), "right"),
                ((4, -22), "left"), ((4, 16), "left"), ((-4, 16), "right"), ((-4, -22), "right"),
                ((12, -34), "left"), ((12, 28), "left"), ((-12, 28), "right"), ((-12, -34), "right")]


def place_labels(ax, points: list[tuple[tuple[float, float], str]], fontsize: float = 6) -> list:
    """Label each point at the first spot around it where the text overlaps no label placed before and
    stays inside the axes; a point with no free spot stays unlabelled (the report's table names every
    point) rather than piling text on another label. Returns the annotations placed."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    placed: list = []
    for xy, text in points:
        for offset, align in _LABEL_SPOTS:
            ann = ax.annotate(text, xy, fontsize=fontsize, xytext=offset, textcoords="offset points", ha=align,
                              va="bottom", annotation_clip=True)
            ann.set_in_layout(False)
            box = ann.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(other.get_window_extent(renderer)) for other in placed):
                placed.append(ann)
                break
            ann.remove()
    return placed


def plots(agg: list[dict], run_dir: Path, paper_measured: bool = False) -> dict[str, str]:
    """Draw every figure into ``run_dir``; returns caption -> file name, in report order. ``paper_measured``
    adds the paper's measured energy and accuracy per rate beside ours (a run of the paper's network)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = {}
    markers = MARKERS
    kernels = sorted({a["kernels"] for a in agg}, key=KERNEL_SETS.index)
    colors = KERNEL_COLORS

    def save(fig, name: str) -> str:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
        plt.close(fig)
        write_bytes(run_dir / name, buf.getvalue())
        return name

    fig, ax = plt.subplots(figsize=(9, 4.8))
    for a in agg:
        ax.scatter(a["energy_mj"], 100 * a["int8_accuracy"], marker=markers.get(a["method"], "x"),
                   color=colors[a["kernels"]], s=40, alpha=0.85)
    front = pareto(agg)
    ax.plot([p["energy_mj"] for p in front], [100 * p["int8_accuracy"] for p in front], "k--", lw=1,
            label="Pareto front (sweet spots)")
    for k in kernels:
        ax.scatter([], [], color=colors[k], label=f"kernels: {k}")
    for m, mk in markers.items():
        ax.scatter([], [], marker=mk, color="k", label=m)
    finish_energy_axes(fig, ax, outside=True)
    fig.tight_layout()  # before placing: labels go into the final axes and leave the layout alone
    place_labels(ax, [((p["energy_mj"], 100 * p["int8_accuracy"]), f"{label(p)}\n{p['kernels']}") for p in front])
    out["Pareto: accuracy vs energy (the dashed front holds the sweet spots; up and left is better)"] = save(
        fig, "pareto.png")

    curves = method_curves(agg)
    if any(m in curves for m in NEW_METHODS):
        fig, ax = plt.subplots(figsize=(7.5, 4.8))
        for method, pts in curves.items():
            ax.plot([p["energy_mj"] for p in pts], [100 * p["int8_accuracy"] for p in pts], marker=MARKERS[method],
                    color=METHOD_COLORS[method], ls="-" if method in NEW_METHODS else ":",
                    label=f"{method} ({'ours' if method in NEW_METHODS else 'paper'}), {COMPARE_KERNELS}")
            for p in pts:
                ax.annotate(label(p).split(" ", 1)[-1], (p["energy_mj"], 100 * p["int8_accuracy"]), fontsize=6,
                            xytext=(3, 3), textcoords="offset points", color=METHOD_COLORS[method])
        stock = [a for a in agg if a["kernels"] == STOCK_KERNELS and a["method"] in ("dense", *PAPER_METHODS)]
        for a in stock:
            ax.scatter(a["energy_mj"], 100 * a["int8_accuracy"], marker=MARKERS[a["method"]], color="#888", s=22)
        ax.scatter([], [], color="#888", marker="o", label="paper methods on stock TFLM kernels (tflm-ref)")
        out["Methods: ours beside the paper's (accuracy vs energy)"] = save(finish_energy_axes(fig, ax),
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
        legend(ax)
        out[f"compression vs {what}"] = save(fig, fname)

    if paper_measured:
        out.update(_paper_measured_plots(agg, save, plt))

    layer_rows = [a for a in agg if a["rate"] in (1.0, 4.0)]
    if layer_rows:
        fig, ax = plt.subplots(figsize=(8, 4))
        names = [f"{label(a)}\n{a['kernels']}" for a in layer_rows]
        bottoms = [0.0] * len(layer_rows)
        n_layers = max(len(a["cycles_per_layer"]) for a in layer_rows)
        for i in range(n_layers):
            vals = [a["cycles_per_layer"][i] / 1e6 if i < len(a["cycles_per_layer"]) else 0 for a in layer_rows]
            ops = layer_rows[0]["layer_ops"]
            ax.bar(names, vals, bottom=bottoms, label=f"{i}: {ops[i]}" if i < len(ops) else f"layer {i}")
            bottoms = [b + v for b, v in zip(bottoms, vals, strict=True)]
        ax.set_ylabel("Mcycles")
        ax.tick_params(axis="x", labelsize=6)
        legend(ax, fontsize=6, ncol=2)
        out["per-layer cycles (dense and 4x models)"] = save(fig, "layers.png")
    return out


def _paper_measured_plots(agg: list[dict], save, plt) -> dict[str, str]:
    """Energy and accuracy per compression rate: the paper's measurements (dashed, hollow) and ours
    (solid), per method and runtime; the unpruned model at rate 1."""
    rows = paper_side_by_side(agg)
    curves: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        curves[(r["method"], r["kernels"])].append(r)
    out = {}
    for what, theirs, mine, ylabel, fname in (
            ("energy", "energy_mj", "energy_mj", "energy per inference (mJ, log)", "paper_energy.png"),
            ("accuracy", "accuracy", "int8_accuracy", "test accuracy (%)", "paper_accuracy.png")):
        fig, ax = plt.subplots(figsize=(7.5, 4.6))
        for (method, kernels), pts in curves.items():
            if what == "accuracy" and kernels != STOCK_KERNELS:
                continue  # accuracy does not depend on the runtime
            scale = 100 if what == "accuracy" else 1
            style = dict(color=METHOD_COLORS[method], marker=MARKERS[method])
            dash = "--" if kernels == STOCK_KERNELS else ":"
            name = f"{method}, {kernels}" if what == "energy" else method
            ax.plot([p["rate"] for p in pts], [scale * p[theirs] for p in pts], ls=dash, mfc="none", **style,
                    label=f"paper (measured): {name}")
            ours = [(p["rate"], scale * p["ours"][mine]) for p in pts if p["ours"] is not None]
            if ours:
                ax.plot(*zip(*ours, strict=True), ls="-" if kernels == STOCK_KERNELS else "-.", **style,
                        label=f"ours{' (emulated)' if what == 'energy' else ''}: {name}")
        ax.set_xscale("log", base=2)
        if what == "energy":
            ax.set_yscale("log")
        ax.set_xlabel("compression rate (1: unpruned)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        legend(ax, fontsize=6)
        out[f"the paper's measured {what} per rate beside ours"] = save(fig, fname)
    return out
