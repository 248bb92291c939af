"""Real models nobody here wrote, row by row: host reference == TFLM == every kernel set on the Pico.

    python bench/verify_real_models.py [--rows 2000] [--seed 0]

The models are the fixtures in ``tests/fixtures/real_models/`` (provenance in their README). Inputs
are seeded uniform int8 rows, which reach every input value the models' quantization allows. The
suite checks a slice of this (``tests/test_real_models.py``); this script checks every row on every
kernel set and writes ``bench/results/real_models.{json,md}``. Emulation dominates: about 15 min
for 2,000 rows of the anomaly-detection model on four kernel sets.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from powerprune.atomic import write_json, write_text
from powerprune.mcu.codegen import KERNEL_SETS
from powerprune.mcu.profile import run_on_rp2040
from powerprune.oracle import tflm_run
from powerprune.reference import run
from powerprune.tflite import load_tflite

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real_models"
# ResNet-8, also in FIXTURES, needs seconds of emulation per row: bench/resnet8.py checks it on fewer rows
MODELS = ("ad01_int8", "hello_world_int8")


def differing_rows(a: np.ndarray, b: np.ndarray) -> int:
    return int((a.reshape(len(a), -1) != b.reshape(len(b), -1)).any(axis=1).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/real_models")
    args = ap.parse_args()
    results = []
    lines = ["| model | rows | host vs TFLM: rows differing | " + " | ".join(KERNEL_SETS) + " |",
             "|---|---|---|" + "---|" * len(KERNEL_SETS)]
    for path in (FIXTURES / f"{name}.tflite" for name in MODELS):
        graph = load_tflite(path)
        x = np.random.default_rng(args.seed).integers(-128, 128, size=(args.rows,) + graph.input.shape,
                                                       dtype=np.int8)
        host = run(graph, x)
        row = {"model": path.name, "rows": args.rows, "seed": args.seed,
               "host_vs_tflm": differing_rows(host, tflm_run(path.read_bytes(), x)), "pico_vs_host": {}}
        for kernels in KERNEL_SETS:
            t = time.perf_counter()
            pico = run_on_rp2040(graph, x, kernels=kernels).outputs
            row["pico_vs_host"][kernels] = differing_rows(pico, host)
            print(f"{path.name} {kernels}: {row['pico_vs_host'][kernels]} rows differ "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
        results.append(row)
        lines.append(f"| {path.name} | {args.rows:,} | {row['host_vs_tflm']} | "
                     + " | ".join(str(row["pico_vs_host"][k]) for k in KERNEL_SETS) + " |")
    write_json(f"{args.out}.json", results)
    write_text(f"{args.out}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
