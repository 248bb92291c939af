"""The second stock baseline: cycles of the dense LeNet per layer with tflm-ref, cmsis-nn and dense.

    python bench/bench_cmsis_nn.py [--model bench/work/base.pt] [--images 3]

Issue 15 asks that the cmsis-nn set (our implementation of CMSIS-NN's pure-C Cortex-M0+ path) need
39 % +- 10 % of tflm-ref's cycles on the LeNet (0.35 to 0.43), the share pico-tflmicro's CMSIS-NN
build needs. Every set is built in the flash layout, run on the virtual Pico (125 MHz) and checked bit
for bit against the host reference. Prints the Markdown tables of BENCHMARKS.md and writes them with
the raw numbers to bench/results/cmsis_nn.{md,json}.
"""

from __future__ import annotations

from pathlib import Path

from lenet import lenet_graph, options

from powerprune.atomic import write_json
from powerprune.ir import Pool2D
from powerprune.mcu.profile import profile

KERNELS = ("tflm-ref", "cmsis-nn", "dense")
TARGET, BAND = 0.39, 0.10   # cmsis-nn / tflm-ref on the LeNet: 39 % within +-10 % of it


def layer_names(graph) -> list[str]:
    """conv1, pool1, conv2, ... in graph order (reshape as 'reshape')."""
    names, seen = [], {}
    for layer in graph.layers:
        base = {"CONV_2D": "conv", "DEPTHWISE_CONV_2D": "dwconv", "FULLY_CONNECTED": "fc",
                "RESHAPE": "reshape"}.get(layer.op, "pool" if isinstance(layer, Pool2D) else layer.op.lower())
        seen[base] = seen.get(base, 0) + 1
        names.append(base if base == "reshape" else f"{base}{seen[base]}")
    return names


def main() -> None:
    args = options(3, "bench/results/cmsis_nn.json", __doc__.splitlines()[0])
    graph, x = lenet_graph(args.model, args.images)
    names = layer_names(graph)
    prof = {}
    for k in KERNELS:
        p = profile(graph, x, k, "flash")
        assert p.bit_exact, k
        prof[k] = p
        print(f"{k:9s} {sum(p.cycles) / len(p.cycles):>12,.0f} cycles  flash {p.flash_bytes} B  "
              f"sram {p.sram_bytes} B", flush=True)

    def total(k: str) -> float:
        return sum(prof[k].cycles) / len(prof[k].cycles)

    ratio = total("cmsis-nn") / total("tflm-ref")
    lo, hi = TARGET * (1 - BAND), TARGET * (1 + BAND)
    lines = [f"Dense LeNet (`{args.model}`), flash layout, mean of {len(x)} test images, cycles per layer:", "",
             "| layer | " + " | ".join(KERNELS) + " | cmsis-nn / tflm-ref | dense / cmsis-nn |",
             "|---" * (len(KERNELS) + 3) + "|"]
    for i, name in enumerate(names):
        c = {k: prof[k].cycles_per_layer[i] for k in KERNELS}
        r1 = f"{c['cmsis-nn'] / c['tflm-ref']:.1%}" if c["tflm-ref"] else "–"
        r2 = f"{c['dense'] / c['cmsis-nn']:.1%}" if c["cmsis-nn"] else "–"
        lines.append(f"| {name} | " + " | ".join(f"{c[k]:,.0f}" for k in KERNELS) + f" | {r1} | {r2} |")
    lines.append("| **total** | " + " | ".join(f"**{total(k):,.0f}**" for k in KERNELS)
                 + f" | **{ratio:.1%}** | {total('dense') / total('cmsis-nn'):.1%} |")
    lines += ["", f"cmsis-nn / tflm-ref = **{ratio:.3f}** (target {TARGET:.2f} +- {BAND:.0%}: {lo:.3f} to {hi:.3f}; "
              f"{'inside' if lo <= ratio <= hi else 'OUTSIDE'} the band)", "",
              "Footprint of the whole firmware per set (flash layout):", "",
              "| kernels | flash B | SRAM B | arena B |", "|---|---|---|---|"]
    lines += [f"| {k} | {prof[k].flash_bytes:,} | {prof[k].sram_bytes:,} | {prof[k].arena_bytes:,} |" for k in KERNELS]
    text = "\n".join(lines)
    print("\n" + text)
    Path(args.out).with_suffix(".md").write_text(text + "\n")
    write_json(args.out, {
        "model": args.model, "images": len(x), "layers": names, "ratio_cmsis_nn_tflm_ref": ratio,
        "target": [lo, hi],
        "sets": {k: {"cycles": prof[k].cycles, "cycles_per_layer": prof[k].cycles_per_layer,
                     "flash_bytes": prof[k].flash_bytes, "sram_bytes": prof[k].sram_bytes,
                     "arena_bytes": prof[k].arena_bytes, "layer_kernels": prof[k].layer_kernels} for k in KERNELS},
    })


if __name__ == "__main__":
    main()
