"""Accuracy of the baseline and of every (method, rate) with the default recipe, plus seconds per epoch.

    python bench/bench_pruning.py [--out bench/results/pruning.json] [--rates 2,4,8,16,32,64]

Writes a JSON file and prints the Markdown table that BENCHMARKS.md shows. Models are cached in
--work so that a rerun after an interrupt only does what is missing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from powerprune.api import int8_accuracy
from powerprune.atomic import write_json
from powerprune.data import load_fashion_mnist
from powerprune.metrics import model_stats
from powerprune.model import LeNet5, ModelInfo, load_model, save_model
from powerprune.prune import prune
from powerprune.quantize import quantize
from powerprune.train import Recipe, accuracy, fit, seed_everything


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="bench/results/pruning.json")
    ap.add_argument("--work", default="bench/work")
    ap.add_argument("--rates", default="2,4,8,16,32,64")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    work = Path(args.work)
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    base_path = work / f"base-s{args.seed}.pt"
    recipe = Recipe(seed=args.seed)
    seconds_per_epoch = None
    if not base_path.exists():
        seed_everything(args.seed)
        model = LeNet5()
        t = time.perf_counter()
        fit(model, train, recipe)
        seconds_per_epoch = (time.perf_counter() - t) / recipe.epochs
        save_model(model, base_path, ModelInfo(history=[{"seconds_per_epoch": seconds_per_epoch}]))
    base, info = load_model(base_path)
    seconds_per_epoch = seconds_per_epoch or info.history[0]["seconds_per_epoch"]
    base_acc = accuracy(base, test)
    base_int8 = int8_accuracy(quantize(base, train.take(500)), test)
    rows = [{"method": "dense", "rate": 1, "compression": 1.0, "accuracy": base_acc, "int8_accuracy": base_int8,
             "delta": 0.0, "widths": list(base.arch.widths)}]
    for method in ("magnitude", "apoz"):
        for rate in [float(r) for r in args.rates.split(",")]:
            path = work / f"{method}-{rate:g}x-s{args.seed}.pt"
            if not path.exists():
                res = prune(base, method, rate, train, None, finetune=Recipe(epochs=4, lr=5e-4, seed=args.seed))
                save_model(res.model, path, res.info)
            m, _ = load_model(path)
            acc = accuracy(m, test)
            s = model_stats(m)
            rows.append({"method": method, "rate": rate, "compression": s.compression(61706), "accuracy": acc,
                         "int8_accuracy": int8_accuracy(quantize(m, train.take(500)), test),
                         "delta": acc - base_acc, "widths": list(m.arch.widths)})
            print(json.dumps(rows[-1]), flush=True)
    write_json(args.out, {"seconds_per_epoch": seconds_per_epoch, "rows": rows})
    print(f"\nseconds per training epoch: {seconds_per_epoch:.1f}\n")
    print("| method | requested | achieved | float acc | int8 acc | Δ float vs dense |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['rate']:g}x | {r['compression']:.3f}x | {r['accuracy']:.2%} | "
              f"{r['int8_accuracy']:.2%} | {r['delta'] * 100:+.2f} pp |")


if __name__ == "__main__":
    main()
