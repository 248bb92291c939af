"""float32 bit-exactness on FashionMNIST test images: host reference == TFLM, and the virtual Pico
(tflm-ref, tflm-skip) == host, for models of a float32 run (default: the paper-exact run).

    python bench/verify_float32.py [runs/paper-exact] [--models dense-1,magnitude-4] [--images 1000]
                                   [--pico-images 1000] [--kernels tflm-ref,tflm-skip]

Host and TFLM take seconds for 1,000 images; the virtual Pico about 3 s per image of the unpruned paper
network per kernel set, so --pico-images bounds that part. A final SOFTMAX is checked as
``powerprune.mcu.profile`` checks it: its input bit for bit, newlib's expf within one ulp of the host's,
its output bit for bit given newlib's exponentials. Writes bench/results/float32_verify.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from powerprune.atomic import write_json, write_text
from powerprune.data import load_fashion_mnist
from powerprune.mcu.codegen import FLOAT_KERNEL_SETS
from powerprune.mcu.profile import check_outputs, run_on_rp2040
from powerprune.oracle import tflm_run
from powerprune.quantize import quantize_images
from powerprune.reference import run
from powerprune.tflite import load_tflite

CHUNK = 25  # images per emulator process


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", nargs="?", default="runs/paper-exact")
    ap.add_argument("--models", default="dense-1,magnitude-4", help="method-rate pairs of the run")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--pico-images", type=int, default=1000)
    ap.add_argument("--kernels", default=",".join(FLOAT_KERNEL_SETS), help="float kernel sets to run on the Pico")
    ap.add_argument("--out", default="bench/results/float32_verify")
    args = ap.parse_args()
    rows = json.loads((Path(args.run) / "results.json").read_text())
    test = load_fashion_mnist("test", args.images)
    results, lines = [], ["| model | host vs TFLM: images differing (of N) | kernels | Pico images | bit-exact "
                          "(softmax: newlib's expf) | largest output distance, ulp | newlib expf vs host, ulp |",
                          "|---|---|---|---|---|---|---|"]
    for spec in args.models.split(","):
        method, rate = spec.rsplit("-", 1)
        row = next(r for r in rows if r["method"] == method and r["rate"] == float(rate) and r["seed"] == 0)
        graph = load_tflite(row["tflite"])
        x = quantize_images(graph, test.images)
        host, theirs = run(graph, x), tflm_run(Path(row["tflite"]).read_bytes(), x)
        differ = int((host.view(np.uint32) != theirs.view(np.uint32)).reshape(len(x), -1).any(axis=1).sum())
        for kernels in args.kernels.split(","):
            t = time.perf_counter()
            exact, ulp, expf_ulp, done = True, 0, 0, 0
            for i in range(0, min(args.pico_images, len(x)), CHUNK):
                xs = x[i:i + CHUNK]
                check = check_outputs(graph, xs, run_on_rp2040(graph, xs, kernels=kernels))
                exact, ulp = exact and check.bit_exact, max(ulp, check.max_ulp)
                expf_ulp, done = max(expf_ulp, check.expf_max_ulp), done + len(xs)
                print(f"{spec} {kernels}: {done} images, bit-exact {exact}, {time.perf_counter() - t:.0f} s",
                      flush=True)
            results.append({"model": spec, "images": len(x), "host_vs_tflm_differing": differ, "kernels": kernels,
                            "pico_images": done, "bit_exact": exact, "output_max_ulp": ulp,
                            "expf_max_ulp": expf_ulp})
            lines.append(f"| {spec} | {differ} of {len(x):,} | {kernels} | {done:,} | {exact} | {ulp} | {expf_ulp} |")
            write_json(f"{args.out}.json", results)
            write_text(f"{args.out}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
