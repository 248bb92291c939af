"""Cycles of LeNet's conv and FC layers on the virtual Pico at falling weight density, per kernel set.

    python bench/bench_kernels.py [--model bench/work/base.pt] [--out bench/results/kernels.json]

Every weighted layer of the trained baseline is magnitude-pruned to the same density (no fine-tuning:
cycles do not depend on accuracy), quantized, built with each kernel set (flash layout, 125 MHz) and
run on one test image. Prints the Markdown tables of BENCHMARKS.md, fits the per-weight costs the
``auto`` kernel set uses (powerprune/mcu/costmodel.py), and writes a plot.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

import numpy as np

from powerprune.atomic import write_json
from powerprune.data import load_fashion_mnist
from powerprune.mcu.codegen import generate
from powerprune.mcu.profile import profile
from powerprune.model import load_model
from powerprune.prune.magnitude import magnitude_masks
from powerprune.quantize import quantize, quantize_images
from powerprune.seqnet import SeqNet

DENSITIES = (1.0, 0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625)
KERNELS = ("tflm-ref", "dense", "sparse")
LAYERS = {0: "conv1", 2: "conv2", 5: "fc1", 6: "fc2", 7: "fc3"}  # graph layer index -> label in the results


def at_density(model: SeqNet, density: float) -> SeqNet:
    m = copy.deepcopy(model)
    total = sum(getattr(m, n).weight.numel() for n in m.layer_names)
    m.masks = magnitude_masks(m, round(total * density), scope="layer")
    m.apply_masks()
    return m


def fit(work: np.ndarray, outputs: np.ndarray, cycles: np.ndarray) -> tuple[float, float, float]:
    """cycles = a * work + b * outputs + c, least squares: a per weight visited, b per output element
    (requantization, loop overheads), c per layer (call, input copy, set-up)."""
    (a, b, c), *_ = np.linalg.lstsq(np.stack([work, outputs, np.ones_like(work)], axis=1), cycles, rcond=None)
    return float(a), float(b), float(c)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bench/work/base.pt")
    ap.add_argument("--out", default="bench/results/kernels.json")
    ap.add_argument("--plot", default="docs/kernels.png")
    args = ap.parse_args()
    base, _ = load_model(args.model)
    calib = load_fashion_mnist("train", 500)
    x = quantize_images(quantize(base, calib), load_fashion_mnist("test", 1).images)
    rows = []
    for d in DENSITIES:
        g = quantize(at_density(base, d), calib)
        stats = g.layer_stats()
        for k in KERNELS:
            p = profile(g, x, k, "flash")
            assert p.bit_exact, (d, k)
            staged = generate(g, k).staged
            rows.append({"density": d, "kernels": k, "total": p.cycles[0], "flash_bytes": p.flash_bytes,
                         "staged": {name: i in staged for i, name in LAYERS.items()},
                         "layers": {name: p.cycles_per_layer[i] for i, name in LAYERS.items()},
                         "macs": {LAYERS[i]: stats[i]["macs"] for i in LAYERS},
                         "nonzero_weights": {LAYERS[i]: int(np.count_nonzero(g.layers[i].weights)) for i in LAYERS},
                         "weights": {LAYERS[i]: int(g.layers[i].weights.size) for i in LAYERS},
                         "outputs": {LAYERS[i]: int(g.layers[i].output.size) for i in LAYERS}})
            print(f"density {d:7.4f} {k:9s} {p.cycles[0]:>10} cycles  flash {p.flash_bytes} B", flush=True)
    # fit the per-weight costs for the auto set: dense over all MACs, sparse over nonzero MACs; only
    # layers whose data codegen staged in SRAM (as it does whenever they fit: at 100 % density the
    # sparse set's fc1 does not, and its weights then stream from flash)
    fits = {}
    for k in ("dense", "sparse"):
        for op, names in (("CONV_2D", ("conv1", "conv2")), ("FULLY_CONNECTED", ("fc1", "fc2", "fc3"))):
            work, outs, cyc = [], [], []
            for r in (r for r in rows if r["kernels"] == k):
                for n in (n for n in names if r["staged"][n]):
                    macs = r["macs"][n]
                    work.append(macs if k == "dense" else macs * r["nonzero_weights"][n] / r["weights"][n])
                    outs.append(r["outputs"][n])
                    cyc.append(r["layers"][n])
            fits[f"{k}/{op}"] = fit(np.array(work), np.array(outs), np.array(cyc))
    write_json(args.out, {"rows": rows, "fits": fits})

    print("\nWhole inference (cycles, flash layout):\n")
    print("| density | " + " | ".join(KERNELS) + " | sparse / tflm-ref | sparse / dense | sparse flash B |")
    print("|---" * (len(KERNELS) + 4) + "|")
    for d in DENSITIES:
        r = {x["kernels"]: x for x in rows if x["density"] == d}
        t, de, sp = r["tflm-ref"]["total"], r["dense"]["total"], r["sparse"]["total"]
        print(f"| {d:.1%} | {t:,} | {de:,} | {sp:,} | {sp / t:.1%} | {sp / de:.1%} | {r['sparse']['flash_bytes']:,} |")
    print("\nPer layer (cycles):\n")
    print("| density | kernels | " + " | ".join(LAYERS.values()) + " |")
    print("|---|---|" + "---|" * len(LAYERS))
    for r in rows:
        cells = " | ".join(f"{r['layers'][n]:,.0f}" for n in LAYERS.values())
        print(f"| {r['density']:.1%} | {r['kernels']} | {cells} |")
    print("\nFitted cycles = a * work + b * outputs + c (work: MACs for dense, nonzero MACs for sparse):\n")
    for key, (a, b, c) in fits.items():
        print(f"- {key}: a = {a:.2f} cycles per weight visited, b = {b:.1f} per output element, c = {c:,.0f} per layer")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k in KERNELS:
        ys = [next(r["total"] for r in rows if r["kernels"] == k and r["density"] == d) / 1e6 for d in DENSITIES]
        ax.plot([d * 100 for d in DENSITIES], ys, marker="o", label=k)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("weight density (%)")
    ax.set_ylabel("Mcycles per LeNet inference")
    ax.set_title("Virtual Pico (RP2040 @125 MHz, weights in flash)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=120)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
