"""The five real models end to end: TFLM agreement, cycles per kernel set, ms and mJ, footprint, deploy.

    python bench/real_models_table.py [--rows 200] [--pico-rows 1] [--seed 0] [--models a,b]

For each model in ``tests/fixtures/real_models/`` (unchanged third-party files, provenance in the
README there): seeded uniform random rows of the model's input type go through the host reference and
TFLM's interpreter (``--rows``, compared row by row); the first ``--pico-rows`` of them run on the
virtual Pico with every kernel set (flash layout, 125 MHz, the profiler's XIP miss cost) and are
compared with the host; latency and energy come from the ``pico`` board profile; ``deploy`` builds the
UF2 the model would ship as (``--image auto``: a RAM image when it fits, else a flash image).

The published reference points are MLPerf Tiny v1.2 closed-division results on the fastest Cortex-M0+
entry (Bosch, STM32G0B1 at 64 MHz); cycles = latency x 64 MHz. They are real hardware, ours is an
emulated RP2040 at 125 MHz: compare cycles, not milliseconds, and see BENCHMARKS.md for what is
emulated. Writes bench/results/real_models_table.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from powerprune.atomic import write_json, write_text
from powerprune.board import load_board
from powerprune.mcu.codegen import KERNEL_SETS
from powerprune.mcu.deploy import deploy
from powerprune.mcu.profile import profile
from powerprune.oracle import tflm_run
from powerprune.reference import run
from powerprune.tflite import load_tflite

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "real_models"
MODELS = ("kws_ref_model", "pretrainedResnet_quant", "ad01_int8", "micro_speech_quantized", "hello_world_int8")
# MLPerf Tiny v1.2, Bosch STM32G0B1 (Cortex-M0+, 64 MHz): benchmark, latency in ms
PUBLISHED = {"kws_ref_model": ("keyword spotting", 475.0), "pretrainedResnet_quant": ("image classification", 1522.0)}
PUBLISHED_CLOCK_HZ = 64e6
VWW_MS = 1414.0  # visual wake words: no model of ours to compare with (person_detect is not a fixture)


def random_rows(graph, n: int, seed: int) -> np.ndarray:
    """Seeded uniform rows over the input's whole int8 range (or [-1, 1) for a float32 input)."""
    rng = np.random.default_rng(seed)
    shape = (n,) + graph.input.shape
    if graph.input.is_float:
        return rng.uniform(-1, 1, size=shape).astype(np.float32)
    return rng.integers(-128, 128, size=shape, dtype=np.int8)


def differing_rows(a: np.ndarray, b: np.ndarray) -> int:
    return int((a.reshape(len(a), -1) != b.reshape(len(b), -1)).any(axis=1).sum())


def measure(name: str, rows: int, pico_rows: int, seed: int) -> dict:
    path = FIXTURES / f"{name}.tflite"
    graph = load_tflite(path)
    x = random_rows(graph, rows, seed)
    host_vs_tflm = differing_rows(run(graph, x), tflm_run(path.read_bytes(), x))
    print(f"{name}: host vs TFLM {host_vs_tflm} of {rows} rows differ", flush=True)
    result = {"model": name, "rows": rows, "host_vs_tflm": host_vs_tflm, "pico_rows": pico_rows,
              "macs": graph.totals()["macs"], "ops": sorted({la.op for la in graph.layers}), "sets": {}}
    for k in KERNEL_SETS:
        p = profile(graph, x[:pico_rows], k, "flash")
        result["sets"][k] = {"cycles": float(np.mean(p.cycles)), "xip_misses": p.xip_misses / pico_rows,
                             "flash_bytes": p.flash_bytes, "sram_bytes": p.sram_bytes, "bit_exact": p.bit_exact}
        print(f"  {k:9s} {np.mean(p.cycles):>14,.0f} cycles, bit-exact: {p.bit_exact}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        d = deploy(graph, tmp, kernels="auto")
    result["deploy"] = {k: d[k] for k in ("image", "flash_bytes", "sram_bytes", "uf2_bytes")}
    print(f"  deploy: {d['image']} image, {d['flash_bytes']:,} B flash, {d['sram_bytes']:,} B SRAM", flush=True)
    return result


def table(results: list[dict]) -> str:
    board = load_board("pico")
    sets = list(KERNEL_SETS)
    lines = ["| model | MACs | host vs TFLM | " + " | ".join(f"{k} cycles" for k in sets)
             + " | best set: ms / mJ | Pico bit-exact | deploy image (flash / SRAM B) |",
             "|---|---|---|" + "---|" * len(sets) + "---|---|---|"]
    for r in results:
        s = r["sets"]
        best = min(sets, key=lambda k: s[k]["cycles"])
        c = s[best]["cycles"]
        exact = all(v["bit_exact"] for v in s.values())
        d = r["deploy"]
        lines.append(
            f"| {r['model']} | {r['macs']:,} | {r['host_vs_tflm']} of {r['rows']} differ | "
            + " | ".join(f"{s[k]['cycles']:,.0f}" for k in sets)
            + f" | {best}: {board.latency_ms(c):.4g} ms / {board.energy_mj(c, s[best]['xip_misses']):.4g} mJ"
            + f" | {'yes' if exact else 'NO'} ({r['pico_rows']} row{'s' if r['pico_rows'] > 1 else ''} per set)"
            + f" | {d['image']} ({d['flash_bytes']:,} / {d['sram_bytes']:,}) |")
    lines += ["", "Footprint per kernel set (flash / SRAM bytes, profiler's flash layout):", "",
              "| model | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for r in results:
        lines.append(f"| {r['model']} | " + " | ".join(
            f"{r['sets'][k]['flash_bytes']:,} / {r['sets'][k]['sram_bytes']:,}" for k in sets) + " |")
    lines += ["", "Against the best published Cortex-M0+ MLPerf Tiny v1.2 results (Bosch, STM32G0B1, 64 MHz; "
              "cycles = latency x 64 MHz):", "",
              "| benchmark | model | published | its cycles | ours, best set | ours / published |",
              "|---|---|---|---|---|---|"]
    for r in results:
        if r["model"] in PUBLISHED:
            bench, ms = PUBLISHED[r["model"]]
            theirs = ms * 1e-3 * PUBLISHED_CLOCK_HZ
            best = min(sets, key=lambda k: r["sets"][k]["cycles"])
            ours = r["sets"][best]["cycles"]
            lines.append(f"| {bench} | {r['model']} | {ms:,.0f} ms | {theirs / 1e6:.1f} M | {ours / 1e6:.1f} M "
                         f"({best}) | {ours / theirs:.2f} |")
    vww = VWW_MS * 1e-3 * PUBLISHED_CLOCK_HZ
    lines.append(f"| visual wake words | (no fixture) | {VWW_MS:,.0f} ms | {vww / 1e6:.1f} M | not measured | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--pico-rows", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--out", default="bench/results/real_models_table")
    args = ap.parse_args()
    old = Path(f"{args.out}.json")
    results = {r["model"]: r for r in (json.loads(old.read_text()) if old.exists() else [])}
    for name in (m.strip() for m in args.models.split(",")):
        results[name] = measure(name, args.rows, args.pico_rows, args.seed)
        write_json(f"{args.out}.json", [results[m] for m in MODELS if m in results])  # resumable per model
    ordered = [results[m] for m in MODELS if m in results]
    write_text(f"{args.out}.md", table(ordered))
    print(table(ordered))


if __name__ == "__main__":
    main()
