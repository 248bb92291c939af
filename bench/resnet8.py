"""MLPerf Tiny's ResNet-8 without its final SOFTMAX: bit-exactness and cycles on every kernel set.

    python bench/resnet8.py [--rows 1000] [--pico-rows 3] [--seed 0]

The model is ``tests/fixtures/real_models/pretrainedResnet_quant.tflite`` (provenance in the README
there) with its last operator, the SOFTMAX, cut off, so the output is the FULLY_CONNECTED's logits
(the same cut as tests/test_graph.py). It has three residual ADDs, so it exercises the DAG IR, the
ADD kernel and the liveness arena plan. Seeded uniform int8 rows go through the host reference and
TFLM (``--rows``, compared row by row), and the first ``--pico-rows`` of them through every kernel
set on the virtual Pico (flash layout, 125 MHz, XIP misses at 40 cycles), compared with the host.
Writes bench/results/resnet8.{json,md}; about 2 minutes on 2 cores for 3 Pico rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from powerprune.atomic import write_json, write_text
from powerprune.mcu.codegen import KERNEL_SETS
from powerprune.mcu.profile import profile
from powerprune.oracle import tflm_run
from powerprune.reference import run
from powerprune.tflite import import_tflite

MODEL = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real_models" / "pretrainedResnet_quant.tflite"


def without_last_operator(data: bytes) -> bytes:
    """The model with its last operator removed and that operator's input as the model output."""
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    sub = model.subgraphs[0]
    last = sub.operators.pop()
    sub.outputs = [int(last.inputs[0])]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def differing_rows(a: np.ndarray, b: np.ndarray) -> int:
    return int((a.reshape(len(a), -1) != b.reshape(len(b), -1)).any(axis=1).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--pico-rows", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/resnet8")
    args = ap.parse_args()
    data = without_last_operator(MODEL.read_bytes())
    graph = import_tflite(data, name="resnet8")
    rng = np.random.default_rng(args.seed)
    x = rng.integers(-128, 128, size=(args.rows,) + graph.input.shape, dtype=np.int8)
    host_vs_tflm = differing_rows(run(graph, x), tflm_run(data, x))
    print(f"host vs TFLM: {host_vs_tflm} of {args.rows} rows differ", flush=True)
    xp = x[:args.pico_rows]  # among the rows above, so Pico == host means Pico == TFLM
    result = {"model": MODEL.name, "cut": "final SOFTMAX removed", "rows": args.rows, "seed": args.seed,
              "host_vs_tflm": host_vs_tflm, "pico_rows": len(xp), "layers": [la.op for la in graph.layers],
              "sets": {}}
    for k in KERNEL_SETS:
        p = profile(graph, xp, k, "flash")
        result["sets"][k] = {"cycles": p.cycles, "cycles_per_layer": p.cycles_per_layer,
                             "layer_kernels": p.layer_kernels, "flash_bytes": p.flash_bytes,
                             "sram_bytes": p.sram_bytes, "arena_bytes": p.arena_bytes, "bit_exact": p.bit_exact}
        print(f"{k:9s} {np.mean(p.cycles):>13,.0f} cycles, bit-exact with the host: {p.bit_exact}", flush=True)

    sets = result["sets"]
    lines = [f"ResNet-8 (MLPerf Tiny, `{MODEL.name}`) without its final SOFTMAX, flash layout, mean of "
             f"{len(xp)} seeded random rows (seed {args.seed}); host vs TFLM on {args.rows:,} rows: "
             f"{host_vs_tflm} differ.", "",
             "| kernels | cycles | ms @125 MHz | of which ADD | vs tflm-ref | flash B | SRAM B | arena B "
             "| bit-exact |", "|---|---|---|---|---|---|---|---|---|"]
    adds = [i for i, op in enumerate(result["layers"]) if op == "ADD"]
    base = np.mean(sets["tflm-ref"]["cycles"])
    for k, s in sets.items():
        c = np.mean(s["cycles"])
        add = sum(s["cycles_per_layer"][i] for i in adds)
        lines.append(f"| {k} | {c:,.0f} | {c / 125e3:.1f} | {add:,.0f} ({add / c:.1%}) | {c / base:.1%} "
                     f"| {s['flash_bytes']:,} | {s['sram_bytes']:,} | {s['arena_bytes']:,} "
                     f"| {'yes' if s['bit_exact'] else 'NO'} |")
    lines += ["", "Cycles per layer:", "", "| # | op | " + " | ".join(KERNEL_SETS) + " |",
              "|---|---|" + "---|" * len(KERNEL_SETS)]
    for i, op in enumerate(result["layers"]):
        lines.append(f"| {i} | {op} | " + " | ".join(
            f"{sets[k]['cycles_per_layer'][i]:,.0f} ({sets[k]['layer_kernels'][i]})" for k in KERNEL_SETS) + " |")
    write_json(f"{args.out}.json", result)
    write_text(f"{args.out}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
