"""Where the cycles of the real models go: every layer on every kernel set, with the implementation
each layer ran and the XIP cache misses of the whole inference.

    python bench/real_models_layers.py [--models kws_ref_model,pretrainedResnet_quant] [--sets ...]

One seeded random row of each model's input type (the same row as ``bench/real_models_table.py``'s
first), flash layout, 125 MHz, the profiler's 40-cycle XIP miss; every run is checked bit for bit
against the host reference. Writes bench/results/real_models_layers.{json,md}.
"""

from __future__ import annotations

import argparse

from real_models_table import FIXTURES, random_rows

from powerprune.atomic import write_json, write_text
from powerprune.mcu.codegen import KERNEL_SETS
from powerprune.mcu.profile import profile
from powerprune.tflite import load_tflite

DEFAULT_MODELS = ("kws_ref_model", "pretrainedResnet_quant", "micro_speech_quantized")
DEFAULT_SETS = tuple(k for k in KERNEL_SETS if k != "tflm-skip")  # tflm-skip: section 8's subject


def millions(cycles: float) -> str:
    return f"{cycles / 1e6:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--sets", default=",".join(DEFAULT_SETS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/real_models_layers")
    args = ap.parse_args()
    sets = args.sets.split(",")
    results, lines = [], []
    for name in args.models.split(","):
        graph = load_tflite(FIXTURES / f"{name}.tflite")
        x = random_rows(graph, 1, args.seed)
        profiles = {k: profile(graph, x, k) for k in sets}
        results.append({"model": name, "sets": {k: p.summary() for k, p in profiles.items()}})
        lines += [f"### {name}", "", "M cycles per layer (implementation); last rows: total, XIP misses, "
                  "bit-exact with the host", "",
                  "| # | op | output | " + " | ".join(sets) + " |", "|---|---|---|" + "---|" * len(sets)]
        for i, layer in enumerate(graph.layers):
            cells = [f"{millions(profiles[k].cycles_per_layer[i])} ({profiles[k].layer_kernels[i]})" for k in sets]
            shape = "x".join(map(str, layer.output.shape))
            lines.append(f"| {i} | {layer.op} | {shape} | " + " | ".join(cells) + " |")
        lines.append("| | **total** | | " + " | ".join(f"**{profiles[k].cycles[0]:,}**" for k in sets) + " |")
        lines.append("| | XIP misses | | " + " | ".join(f"{profiles[k].xip_misses:,}" for k in sets) + " |")
        lines.append("| | bit-exact | | " + " | ".join(str(profiles[k].bit_exact) for k in sets) + " |")
        lines.append("")
        print(f"{name}: " + ", ".join(f"{k} {profiles[k].cycles[0]:,}" for k in sets), flush=True)
        write_json(f"{args.out}.json", results)
        write_text(f"{args.out}.md", "\n".join(lines))


if __name__ == "__main__":
    main()
