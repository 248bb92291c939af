"""MCU commands of the CLI: ``profile`` on the virtual Pico."""

from __future__ import annotations

import argparse
import json

import numpy as np

from .codegen import KERNEL_SETS
from .emulator import CLOCK_HZ, DEFAULT_CYCLE_BUDGET, DEFAULT_XIP_MISS_CYCLES


def cmd_profile(args: argparse.Namespace) -> int:
    from ..api import load_graph
    from ..data import load_fashion_mnist
    from ..quantize import quantize_images
    from .profile import profile

    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    unknown = [k for k in kernels if k not in KERNEL_SETS]
    if unknown:
        raise ValueError(f"unknown kernel set(s) {', '.join(unknown)}; available: {', '.join(KERNEL_SETS)}")
    if args.images < 1:
        raise ValueError("--images must be at least 1")
    graph = load_graph(args.model)
    x = quantize_images(graph, load_fashion_mnist("test", args.images).images)
    report = {"model": str(args.model), "kernels": {}}
    for k in kernels:
        p = profile(graph, x, k, args.layout, args.xip_miss_cycles, args.cycle_budget)
        report["kernels"][k] = p.summary()
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{args.model}: {args.images} test image(s), layout {args.layout}, {CLOCK_HZ / 1e6:.0f} MHz")
    print(f"{'kernels':<10} {'cycles':>12} {'ms':>8} {'flash B':>9} {'SRAM B':>8} {'XIP miss':>9}  bit-exact")
    for k, s in report["kernels"].items():
        print(f"{k:<10} {s['cycles_mean']:>12.0f} {s['cycles_mean'] / CLOCK_HZ * 1e3:>8.2f} {s['flash_bytes']:>9} "
              f"{s['sram_bytes']:>8} {s['xip_misses'] / args.images:>9.0f}  {s['bit_exact']}")
        per = np.array(s["cycles_per_layer"])
        print("           per layer: " + ", ".join(f"{v:.0f}" for v in per))
    return 0


def add_mcu_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="cycles, per-layer cycles and footprint on the virtual Raspberry Pi Pico")
    p.add_argument("model", help=".pt or .tflite")
    p.add_argument("--kernels", default="tflm-ref", help=f"comma-separated kernel sets ({', '.join(KERNEL_SETS)})")
    p.add_argument("--images", type=int, default=3, help="test images to run (default 3)")
    p.add_argument("--layout", choices=("flash", "sram"), default="flash",
                   help="flash: code and weights execute in place from QSPI flash (default); sram: all in SRAM")
    p.add_argument("--xip-miss-cycles", type=int, default=DEFAULT_XIP_MISS_CYCLES,
                   help=f"cycles one XIP cache miss costs (default {DEFAULT_XIP_MISS_CYCLES})")
    p.add_argument("--cycle-budget", type=int, default=DEFAULT_CYCLE_BUDGET,
                   help="cycles one inference may take before the run is stopped as a runaway")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_profile)
