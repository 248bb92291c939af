"""Real models nobody here wrote, row by row: host reference == TFLM == every kernel set on the Pico.

    python bench/verify_real_models.py [--rows 2000] [--pico-rows N] [--models a,b] [--seed 0]

The models are the fixtures in ``tests/fixtures/real_models/`` (provenance in their README). Inputs
are seeded uniform int8 rows, which reach every input value the models' quantization allows. The
suite checks a slice of this (``tests/test_real_models.py``); this script checks ``--rows`` rows
against TFLM and the first ``--pico-rows`` of them (default: all) on every kernel set, and updates
the entries of the models it ran in ``bench/results/real_models.{json,md}``. Emulation dominates:
about 15 min for 2,000 rows of the anomaly-detection model on four kernel sets; the keyword spotters
cost 6 M to 89 M cycles per row, so they run with fewer Pico rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from powerprune.atomic import write_json, write_text
from powerprune.mcu.codegen import KERNEL_SETS
from powerprune.mcu.profile import run_on_rp2040
from powerprune.oracle import tflm_run
from powerprune.reference import run
from powerprune.tflite import TFLiteError, load_tflite

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real_models"
# ResNet-8, also in FIXTURES, needs seconds of emulation per row: bench/real_models_table.py checks it on fewer rows
MODELS = ("ad01_int8", "hello_world_int8")


def differing_rows(a: np.ndarray, b: np.ndarray) -> int:
    return int((a.reshape(len(a), -1) != b.reshape(len(b), -1)).any(axis=1).sum())


def table(results: list[dict]) -> str:
    lines = ["| model | rows vs TFLM | host vs TFLM: rows differing | rows on the Pico | "
             + " | ".join(KERNEL_SETS) + " |", "|---|---|---|---|" + "---|" * len(KERNEL_SETS)]
    for row in results:
        pico_rows = row.get("pico_rows", row["rows"])  # entries from before --pico-rows ran every row
        lines.append(f"| {row['model']} | {row['rows']:,} | {row['host_vs_tflm']} | {pico_rows:,} | "
                     + " | ".join(str(row["pico_vs_host"][k]) for k in KERNEL_SETS) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--pico-rows", type=int, default=None, help="rows run on the Pico (default: all --rows)")
    ap.add_argument("--models", default=None,
                    help="comma-separated fixture names (default: every fixture powerprune can import)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/real_models")
    args = ap.parse_args()
    paths = sorted(FIXTURES.glob("*.tflite"))
    if args.models:
        wanted = {m.strip().removesuffix(".tflite") for m in args.models.split(",")}
        paths = [p for p in paths if p.stem in wanted]
    old = Path(f"{args.out}.json")
    results = {r["model"]: r for r in (json.loads(old.read_text()) if old.exists() else [])}
    for path in paths:
        try:
            graph = load_tflite(path)
        except TFLiteError as exc:
            if args.models:  # asked for by name: its refusal is the answer
                raise
            # the fixtures include models with ops powerprune does not run yet (LSTM, SVDF, int16)
            print(f"skipping {path.name}: {exc}", file=sys.stderr)
            continue
        x = np.random.default_rng(args.seed).integers(-128, 128, size=(args.rows,) + graph.input.shape,
                                                       dtype=np.int8)
        host = run(graph, x)
        pico_rows = args.rows if args.pico_rows is None else min(args.pico_rows, args.rows)
        row = {"model": path.name, "rows": args.rows, "pico_rows": pico_rows, "seed": args.seed,
               "host_vs_tflm": differing_rows(host, tflm_run(path.read_bytes(), x)), "pico_vs_host": {}}
        for kernels in KERNEL_SETS:
            t = time.perf_counter()
            pico = run_on_rp2040(graph, x[:pico_rows], kernels=kernels).outputs
            row["pico_vs_host"][kernels] = differing_rows(pico, host[:pico_rows])
            print(f"{path.name} {kernels}: {row['pico_vs_host'][kernels]} rows differ "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
        results[path.name] = row
    ordered = [results[k] for k in sorted(results)]
    write_json(f"{args.out}.json", ordered)
    write_text(f"{args.out}.md", table(ordered))
    print(table(ordered))


if __name__ == "__main__":
    main()
