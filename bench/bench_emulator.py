"""The virtual Pico itself: emulation speed and the dense LeNet's cycles with tflm-ref in both layouts.

    python bench/bench_emulator.py [--model bench/work/base.pt] [--images 10]
"""

from __future__ import annotations

import time

from lenet import lenet_graph, options

from powerprune.atomic import write_json
from powerprune.mcu.build import build_firmware
from powerprune.mcu.emulator import CLOCK_HZ, run_firmware


def main() -> None:
    args = options(10, "bench/results/emulator.json", __doc__.splitlines()[0])
    graph, x = lenet_graph(args.model, args.images)
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
