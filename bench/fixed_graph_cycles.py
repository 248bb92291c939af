"""Cycles of fixed graphs on every kernel set: the check that a change to the code generator or the kernels
made nothing slower. A trained model is no fixed graph (its weights depend on the training code), so this
uses graphs that depend only on their files and seeds: the converter-made Keras LeNet fixture, a LeNet with
seeded random weights, a quarter of them kept, quantized on seeded random images, and the paper's float32
network with seeded weights.

    python bench/fixed_graph_cycles.py --out bench/results/fixed_graph_cycles_before.json   # in the old checkout
    python bench/fixed_graph_cycles.py --before bench/results/fixed_graph_cycles_before.json  # in the new one

Run both with POWERPRUNE_FAST_NUMERICS=1: a checkout from before powerprune pinned its float numerics builds
the seeded graphs with torch's default kernels, so the new one must too for the graphs to be the same.
Emulated: flash layout, 125 MHz, the profiler's 40-cycle XIP miss, one seeded input; `auto` on the cost
model's plan (POWERPRUNE_AUTO_PLAN=predicted), so that both checkouts run the plan they would predict.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("POWERPRUNE_AUTO_PLAN", "predicted")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from powerprune.data import Dataset  # noqa: E402
from powerprune.mcu import codegen  # noqa: E402
from powerprune.mcu.profile import profile  # noqa: E402
from powerprune.model import lenet5, paper_cnn  # noqa: E402
from powerprune.quantize import float32_graph, quantize  # noqa: E402
from powerprune.tflite import load_tflite  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def fixed_graphs() -> dict:
    torch.manual_seed(0)
    net = lenet5().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(torch.rand_like(p) < 0.25)
    rng = np.random.default_rng(0)
    calibration = Dataset(rng.integers(0, 256, (64, 28, 28, 1)).astype(np.uint8), rng.integers(0, 10, 64))
    torch.manual_seed(1)
    return {"keras_tfmot_lenet_75": load_tflite(ROOT / "tests" / "fixtures" / "keras_tfmot_lenet_75.tflite"),
            "lenet_seeded_25pct": quantize(net, calibration, name="lenet"),
            "paper_float32_seeded": float32_graph(paper_cnn().eval(), softmax=True, name="paper")}


def measure() -> dict[str, dict[str, list]]:
    out: dict[str, dict[str, list]] = {}
    for name, graph in fixed_graphs().items():
        rng = np.random.default_rng(0)
        x = (rng.standard_normal((1, *graph.input.shape)).astype(np.float32) if graph.input.is_float
             else rng.integers(-128, 128, (1, *graph.input.shape)).astype(np.int8))
        for kernels in codegen.kernel_sets(graph.dtype):
            s = profile(graph, x, kernels, "flash").summary()
            out.setdefault(name, {})[kernels] = [round(s["cycles_mean"]), s["bit_exact"], s["flash_bytes"],
                                                 s["sram_bytes"]]
            print(name, kernels, out[name][kernels], flush=True)
    return out


def table(now: dict, before: dict | None) -> str:
    head = "| graph | kernels | cycles | bit-exact | flash B | SRAM B |" if before is None else \
        "| graph | kernels | cycles before | cycles now | change | bit-exact | flash B now | SRAM B now |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, sets in now.items():
        for kernels, (cycles, exact, flash, sram) in sets.items():
            if before is None:
                lines.append(f"| {name} | {kernels} | {cycles:,} | {exact} | {flash:,} | {sram:,} |")
            else:
                old = before[name][kernels][0]
                lines.append(f"| {name} | {kernels} | {old:,} | {cycles:,} | {cycles - old:+,} | {exact} "
                             f"| {flash:,} | {sram:,} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS / "fixed_graph_cycles.json")
    ap.add_argument("--before", type=Path, default=None, help="an earlier checkout's --out, to compare with")
    args = ap.parse_args()
    now = measure()
    args.out.write_text(json.dumps(now, indent=1) + "\n")
    before = json.loads(args.before.read_text()) if args.before else None
    md = table(now, before)
    args.out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
