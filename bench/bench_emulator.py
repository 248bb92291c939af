"""The virtual Pico itself: emulation speed and the dense LeNet's cycles with tflm-ref in both layouts.

    python bench/bench_emulator.py [--model bench/work/base.pt] [--images 10]
"""

from __future__ import annotations

import argparse
import time

from powerprune.atomic import write_json
from powerprune.data import load_fashion_mnist
from powerprune.mcu.build import build_firmware
from powerprune.mcu.emulator import CLOCK_HZ, run_firmware
from powerprune.model import load_model
from powerprune.quantize import quantize, quantize_images


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="bench/work/base.pt")
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--out", default="bench/results/emulator.json")
    args = ap.parse_args()
    model, _ = load_model(args.model)
    graph = quantize(model, load_fashion_mnist("train", 500))
    x = quantize_images(graph, load_fashion_mnist("test", args.images).images)
    rows = []
    print("| kernels | layout | cycles / inference | Pico time (ms @125 MHz) | XIP misses | wall s / inference "
          "| emulated MIPS |")
    print("|---|---|---|---|---|---|---|")
    for kernels in ("tflm-ref", "dense"):
        for layout in ("flash", "sram"):
            fw = build_firmware(graph, kernels, layout)
            t = time.perf_counter()
            run = run_firmware(fw, x, graph.output.size)
            wall = time.perf_counter() - t
            cyc = sum(r.cycles for r in run.inferences) / len(x)
            miss = sum(r.xip_misses for r in run.inferences) / len(x)
            row = {"kernels": kernels, "layout": layout, "cycles": cyc, "ms": cyc / CLOCK_HZ * 1e3,
                   "xip_misses": miss, "wall_per_inference_s": wall / len(x), "mips": run.mips}
            rows.append(row)
            print(f"| {kernels} | {layout} | {cyc:,.0f} | {row['ms']:.1f} | {miss:,.0f} | "
                  f"{row['wall_per_inference_s']:.2f} | {run.mips:.1f} |")
    write_json(args.out, rows)


if __name__ == "__main__":
    main()
