"""The M0+ kernel targets of issue 15 (part 2): cycles of the LeNet per layer and kernel set, and the
cycles per MAC / per nonzero the dense and sparse kernels reach.

    python bench/bench_fast_kernels.py [--model bench/work/base.pt] [--images 3] [--out bench/results/fast_kernels.json]

Models: the 1-epoch LeNet of issue 15 (`powerprune train --epochs 1 --out bench/work/base.pt`) and,
pruned from it with one fine-tuning epoch (cached next to it): magnitude 4x and 16x (global ranking,
the default) and APoZ 4x. Every model runs on every kernel set (flash layout, 125 MHz, the virtual
Pico), bit-exact with the host reference. The dense fully connected layers are also built with no
SRAM staging (staging.STAGING_BUDGET = 0), so their weights stream from flash through the XIP cache.

Targets (exact emulated cycles, see BENCHMARKS.md section 4): dense convolutions <= 5.5 cycles/MAC,
dense FC <= 9.5 cycles/MAC with weights streaming from flash, sparse convolutions <= 5.5 cycles per
nonzero weight visited, the unpruned LeNet on `dense` <= 20 % of `tflm-ref`, magnitude 4x on `auto`
<= 10 % of `tflm-ref`, and `auto` <= min(`dense`, `sparse`) on every model.

If fast_kernels_before.json sits beside --out (this script run with an earlier version of the kernels
on PYTHONPATH and --out naming that file), its dense, sparse and auto cycles appear beside the new ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from bench_cmsis_nn import layer_names
from lenet import options

from powerprune.atomic import write_json
from powerprune.counts import layer_macs
from powerprune.data import load_fashion_mnist
from powerprune.ir import Conv2D, FullyConnected
from powerprune.mcu import codegen

try:  # where the staging budget lives (codegen itself before mcu/staging.py)
    from powerprune.mcu import staging
except ImportError:
    staging = codegen
from powerprune.mcu.profile import profile
from powerprune.model import load_model, save_model
from powerprune.prune import prune
from powerprune.quantize import DEFAULT_CALIBRATION, quantize, quantize_images
from powerprune.train import Recipe

KERNELS = ("tflm-ref", "cmsis-nn", "dense", "sparse", "auto")
PRUNED = {"magnitude 4x": ("magnitude", 4), "magnitude 16x": ("magnitude", 16), "apoz 4x": ("apoz", 4)}
FINETUNE = Recipe(epochs=1, lr=1e-3, batch_size=64)
TARGETS = {"dense conv cycles/MAC": 5.5, "dense FC cycles/MAC, weights from flash": 9.5,
           "sparse conv cycles/nonzero": 5.5, "dense / tflm-ref, unpruned": 0.20,
           "auto / tflm-ref, magnitude 4x": 0.10}


def models(base_path: str) -> dict[str, str]:
    """Model label -> .pt file; pruned models are made once and kept beside the base model."""
    out = {"unpruned": base_path}
    base = None
    for label, (method, rate) in PRUNED.items():
        path = Path(base_path).with_name(f"{method}{rate}.pt")
        if not path.exists():
            if base is None:
                base, _ = load_model(base_path)
                train = load_fashion_mnist("train", 10000)
            save_model(prune(base, method, rate, train, finetune=FINETUNE, progress=False).model, path)
        out[label] = str(path)
    return out


def measure(graph, x, kernels: str) -> dict:
    p = profile(graph, x, kernels, "flash")
    assert p.bit_exact, kernels
    return {"total": float(np.mean(p.cycles)), "layers": p.cycles_per_layer, "flash_bytes": p.flash_bytes,
            "sram_bytes": p.sram_bytes, "layer_kernels": p.layer_kernels}


def unstaged(graph, x) -> dict | None:
    """The dense set with nothing staged in SRAM (None for kernels that predate staging)."""
    if not hasattr(staging, "STAGING_BUDGET"):
        return None
    saved, staging.STAGING_BUDGET = staging.STAGING_BUDGET, 0
    try:
        return measure(graph, x, "dense")
    finally:
        staging.STAGING_BUDGET = saved


def work(graph) -> dict[int, dict[str, int]]:
    """MACs and nonzero MACs of every conv and FC layer."""
    out = {}
    for i, layer in enumerate(graph.layers):
        if isinstance(layer, Conv2D | FullyConnected):
            out[i] = {"macs": layer_macs(layer.weights.size, layer.output.shape, layer.op),
                      "nonzero_macs": layer_macs(np.count_nonzero(layer.weights), layer.output.shape, layer.op)}
    return out


def per(cycles: list[float], w: dict, idx: list[int], key: str) -> float:
    return sum(cycles[i] for i in idx) / sum(w[i][key] for i in idx)


def main() -> None:
    ap_args = options(3, "bench/results/fast_kernels.json", __doc__.splitlines()[0])
    before_path = Path(ap_args.out).with_name("fast_kernels_before.json")
    results: dict = {"model": ap_args.model, "images": ap_args.images, "models": {}}
    calib = load_fashion_mnist("train", DEFAULT_CALIBRATION)
    test = load_fashion_mnist("test", ap_args.images)
    for label, path in models(ap_args.model).items():
        graph = quantize(load_model(path)[0], calib)
        x = quantize_images(graph, test.images)
        w = work(graph)
        entry = {"path": path, "layers": layer_names(graph), "work": {str(i): v for i, v in w.items()},
                 "sets": {k: measure(graph, x, k) for k in KERNELS}}
        if label == "unpruned":
            entry["dense_unstaged"] = unstaged(graph, x)
        results["models"][label] = entry
        print(label, {k: f"{v['total']:,.0f}" for k, v in entry["sets"].items()}, flush=True)
    write_json(ap_args.out, results)
    before = json.loads(before_path.read_text()) if before_path.exists() and before_path != Path(ap_args.out) else None
    text = report(results, before)
    print("\n" + text)
    Path(ap_args.out).with_suffix(".md").write_text(text + "\n")


def cell(sets: dict, old: dict | None, k: str, i: int | None) -> str:
    """Cycles of layer i (None: the total) on kernel set k, with the earlier version's before them."""
    now = sets[k]["total"] if i is None else sets[k]["layers"][i]
    if old and k in ("dense", "sparse", "auto"):
        was = old["sets"][k]["total"] if i is None else old["sets"][k]["layers"][i]
        return f"{was:,.0f} → {now:,.0f}"
    return f"{now:,.0f}"


def report(results: dict, before: dict | None) -> str:
    lines = []
    checks = {}
    for label, m in results["models"].items():
        names, w = m["layers"], {int(i): v for i, v in m["work"].items()}
        sets = m["sets"]
        old = before["models"].get(label) if before else None
        ours = ("dense", "sparse", "auto")
        heads = [k + (" before → after" if old and k in ours else "") for k in KERNELS]
        lines += [f"### {label} (`{m['path']}`)", "", "| layer | " + " | ".join(heads) + " |",
                  "|---" * (len(KERNELS) + 1) + "|"]
        for i, name in enumerate(names):
            lines.append(f"| {name} | " + " | ".join(cell(sets, old, k, i) for k in KERNELS) + " |")
        lines.append("| **total** | " + " | ".join(f"**{cell(sets, old, k, None)}**" for k in KERNELS) + " |")
        ref = sets["tflm-ref"]["total"]
        lines += ["", "share of tflm-ref: " + ", ".join(f"{k} {sets[k]['total'] / ref:.1%}" for k in KERNELS[1:])
                  + "; auto chose " + " ".join(sets["auto"]["layer_kernels"]), ""]
        conv = [i for i in w if names[i].startswith("conv")]
        fc = [i for i in w if names[i].startswith("fc")]
        best = min(sets["dense"]["total"], sets["sparse"]["total"])
        checks[f"auto <= min(dense, sparse), {label}"] = (sets["auto"]["total"], best, sets["auto"]["total"] <= best)
        sparse_nz = per(sets["sparse"]["layers"], w, conv, "nonzero_macs")
        lines.append("sparse conv cycles per nonzero MAC: " + ", ".join(
            f"{names[i]} {per(sets['sparse']['layers'], w, [i], 'nonzero_macs'):.2f}" for i in conv)
            + f", both {sparse_nz:.2f}")
        if label != "unpruned":
            checks[f"sparse conv cycles/nonzero, {label}"] = (sparse_nz, TARGETS["sparse conv cycles/nonzero"],
                                                              sparse_nz <= TARGETS["sparse conv cycles/nonzero"])
        if label == "unpruned":
            dense_mac = per(sets["dense"]["layers"], w, conv, "macs")
            lines.append("dense conv cycles per MAC: " + ", ".join(
                f"{names[i]} {per(sets['dense']['layers'], w, [i], 'macs'):.2f}" for i in conv)
                + f", both {dense_mac:.2f}")
            lines.append("dense FC cycles per MAC, weights staged in SRAM: " + ", ".join(
                f"{names[i]} {per(sets['dense']['layers'], w, [i], 'macs'):.2f}" for i in fc)
                + f", all {per(sets['dense']['layers'], w, fc, 'macs'):.2f}")
            checks["dense conv cycles/MAC"] = (dense_mac, TARGETS["dense conv cycles/MAC"],
                                               dense_mac <= TARGETS["dense conv cycles/MAC"])
            if m.get("dense_unstaged"):
                flash = m["dense_unstaged"]["layers"]
                fc_flash = per(flash, w, fc, "macs")
                lines.append("dense FC cycles per MAC, weights streaming from flash (nothing staged): " + ", ".join(
                    f"{names[i]} {per(flash, w, [i], 'macs'):.2f}" for i in fc) + f", all {fc_flash:.2f}")
                checks["dense FC cycles/MAC, weights from flash"] = (
                    fc_flash, TARGETS["dense FC cycles/MAC, weights from flash"],
                    fc_flash <= TARGETS["dense FC cycles/MAC, weights from flash"])
            share = sets["dense"]["total"] / ref
            checks["dense / tflm-ref, unpruned"] = (share, TARGETS["dense / tflm-ref, unpruned"],
                                                    share <= TARGETS["dense / tflm-ref, unpruned"])
        if label == "magnitude 4x":
            share = sets["auto"]["total"] / ref
            checks["auto / tflm-ref, magnitude 4x"] = (share, TARGETS["auto / tflm-ref, magnitude 4x"],
                                                       share <= TARGETS["auto / tflm-ref, magnitude 4x"])
        lines.append("")
    lines += ["### Targets", "", "| target | result | limit | met |", "|---|---|---|---|"]
    for name, (value, limit, ok) in checks.items():
        fmt = (lambda v: f"{v:.1%}") if "/ tflm-ref" in name else (lambda v: f"{v:,.2f}" if v < 100 else f"{v:,.0f}")
        lines.append(f"| {name} | {fmt(value)} | {fmt(limit)} | {'yes' if ok else '**no**'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
