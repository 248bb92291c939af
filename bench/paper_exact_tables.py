"""The paper-exact run beside the paper's measurements, rendered from the run's results.json.

    python bench/paper_exact_tables.py [runs/paper-exact]

Prints the side-by-side table the run's report.md holds (``powerprune.report.analysis.paper_side_by_side``,
so the two cannot disagree), the cycles of every model on tflm-ref and tflm-skip, the float32 stock
latency of the unpruned network against the paper's measured 1.29 s, and the soft-float and libm routines
the float32 firmware links (read from the run's own ELF).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import fields
from pathlib import Path

from powerprune.mcu.elf import read_elf
from powerprune.mcu.emulator import CLOCK_HZ
from powerprune.report.analysis import aggregate, label, paper_side_by_side
from powerprune.results import Row

# libgcc's soft-float entry points and helpers, newlib's expf and what it calls
LIBRARY = re.compile(r"^(__aeabi_[fdil]|__aeabi_cf|__.*sf2$|__clzsi2$|expf$|__ieee754_expf$|finitef$|__math_)")


def main() -> None:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/paper-exact")
    rows = [r for r in json.loads((run / "results.json").read_text()) if r["seed"] == 0]
    names = {f.name for f in fields(Row)}
    agg = aggregate([Row(**{k: v for k, v in r.items() if k in names}) for r in rows])
    at = {(a["method"], a["rate"], a["kernels"]): a for a in agg}

    dense = at[("dense", 1.0, "tflm-ref")]
    paper = next(r for r in paper_side_by_side(agg) if (r["paper_method"], r["runtime"], r["rate"])
                 == ("unstructured", "stock", 1.0))
    print(f"unpruned network, float32, tflm-ref: {dense['cycles']:,.0f} cycles = "
          f"{dense['cycles'] / CLOCK_HZ * 1e3:.1f} ms at {CLOCK_HZ / 1e6:g} MHz; the paper measured "
          f"{paper['latency_ms']:.1f} ms: ratio {paper['latency_ratio']:.3f}\n")

    print("| model | compression | accuracy | tflm-ref cycles | tflm-skip cycles | tflm-skip / tflm-ref |")
    print("|---|---|---|---|---|---|")
    for (method, rate, kernels), a in at.items():
        if kernels != "tflm-ref":
            continue
        skip = at.get((method, rate, "tflm-skip"))
        ratio = f"{skip['cycles'] / a['cycles']:.3f}" if skip else "n/a"
        print(f"| {label(a)} | {a['compression']:.2f}x | {100 * a['int8_accuracy']:.2f}% | {a['cycles']:,.0f} "
              f"| {'n/a' if skip is None else format(skip['cycles'], ',.0f')} | {ratio} |")

    print("\n| method | runtime | rate | paper acc | our acc | paper s | our s | latency ratio | paper mJ | our mJ "
          "| energy ratio | paper Δ vs unpruned | our Δ vs unpruned |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in paper_side_by_side(agg):
        o = r["ours"]
        rate = "unpruned" if r["rate"] == 1.0 else f"{r['rate']:g}x"
        if o is None:
            print(f"| {r['paper_method']} | {r['runtime']} | {rate} | {100 * r['accuracy']:.2f}% | n/a "
                  f"| {r['latency_ms'] / 1e3:.3f} | n/a | n/a | {r['energy_mj']:.1f} | n/a | n/a "
                  f"| {r['paper_delta_pct']:+.1f}% | n/a |")
            continue
        print(f"| {r['paper_method']} | {r['runtime']} ({r['kernels']}) | {rate} | {100 * r['accuracy']:.2f}% "
              f"| {100 * o['int8_accuracy']:.2f}% | {r['latency_ms'] / 1e3:.3f} | {o['latency_ms'] / 1e3:.3f} "
              f"| {r['latency_ratio']:.2f} | {r['energy_mj']:.1f} | {o['energy_mj']:.1f} | {r['energy_ratio']:.2f} "
              f"| {r['paper_delta_pct']:+.1f}% | {r['our_delta_pct']:+.1f}% |")

    elf = read_elf(dense["elf"])
    linked = sorted(n for n in elf.symbols if LIBRARY.match(n))
    print(f"\nlibrary routines in {Path(dense['elf']).name} (the unpruned float32 model on tflm-ref): "
          + ", ".join(linked))


if __name__ == "__main__":
    main()
