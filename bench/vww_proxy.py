"""The visual-wake-words network's cycles on every kernel set: a measured proxy for MLPerf Tiny's VWW.

    python bench/vww_proxy.py [--rows 20] [--seed 0] [--act relu] [--sets tflm-ref,cmsis-nn,dense,sparse,auto]

Why a proxy: MLPerf Tiny's person-detection ``.tflite`` is not on this machine, so nothing measures
the benchmark itself. Our kernels' cycle counts depend on layer shapes, not on weight values, as long
as the weights are dense (no zeros for the sparse kernels to skip), so the same architecture with our
own seeded random weights is a fair measurement of what the kernels cost on it. It is *not* the MLPerf
model file: its accuracy is meaningless (no training, no person dataset here), and its quantization
scales come from our calibration, not from the reference model's.

The architecture, checked against the model definition MLPerf Tiny's VWW training code imports
(EEMBC's ``mobilenet_v1_eembc.py`` in SiliconLabs' platform_ml_models, Person_detection): MobileNetV1
with width multiplier 0.25 on a 96x96x3 input: a 3x3 stride-2 conv to 8 channels, then 13
depthwise-separable blocks (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU) with 16, 32 (s2),
32, 64 (s2), 64, 128 (s2), 128 x5, 256 (s2), 256 output channels, all ``padding='same'``; then a 3x3
average pooling over the whole 3x3 map, flatten, dense 2 with softmax. That definition uses plain ReLU
(its comments note Keras' own MobileNet uses ReLU6); ``--act relu6`` builds the ReLU6 variant, which
changes only the clamp constants, never a loop. Keras' ``padding='same'`` on a stride-2 3x3 conv of an
even map pads the odd pixel after, written here as ``ZeroPad2d((0, 1, 0, 1))`` as in examples/resnet8.
The reference convs have biases in front of their batch norms; folding makes that the same int8 graph
as bias-free convs, so ours have none. The softmax is appended to the int8 graph (TFLM's integer
softmax, output 1/256, -128), as the reference model ends in one.

Folded, it has 210,850 parameters: the 221,794 the reference Keras model is published with, less
4 x 2,736 batch-norm parameters; 7,489,664 MACs.

Steps: seeded PyTorch init, batch-norm statistics from the calibration images (``seeded_model`` says
why), ``quantize`` with 200 seeded uniform [0, 1] calibration images, ``export_tflite``; host reference
against TFLM's interpreter on ``--rows`` seeded int8 rows (``api.random_inputs``), for the model and
for its logits; the first row on the
virtual Pico with each kernel set (flash layout, 125 MHz, the profiler's 40-cycle XIP miss), checked
bit for bit against the host. The published reference point is MLPerf Tiny v1.2's fastest Cortex-M0+
VWW result (Bosch, STM32G0B1 at 64 MHz, 1,414 ms = 90.5 M cycles): real hardware running the real
model; ours is an emulated RP2040 running this proxy, so compare cycles, not milliseconds, and only
as a proxy. Writes bench/results/vww_proxy.{json,md}.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from real_models_table import PUBLISHED_CLOCK_HZ, VWW_MS, differing_rows
from torch import nn

from powerprune.api import random_inputs
from powerprune.atomic import write_json, write_text
from powerprune.data import from_arrays
from powerprune.ir import Conv2D, DepthwiseConv2D, FullyConnected, Graph, Softmax, TensorInfo
from powerprune.mcu.profile import profile
from powerprune.oracle import tflm_run
from powerprune.quantize import quantize
from powerprune.reference import run
from powerprune.tflite import export_tflite

# (output channels, stride) of the 13 depthwise-separable blocks; the stride is the depthwise conv's
BLOCKS = ((16, 1), (32, 2), (32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 1), (128, 1), (128, 1),
          (128, 1), (256, 2), (256, 1))
STEM = 8
SETS = ("tflm-ref", "cmsis-nn", "dense", "sparse", "auto")


def conv_bn_act(cin: int, cout: int, kernel: int, stride: int, groups: int, act: type[nn.Module]) -> list[nn.Module]:
    """conv + BN + activation; a stride-2 3x3 conv gets TensorFlow's SAME padding (the odd pixel after)."""
    pad: list[nn.Module] = [nn.ZeroPad2d((0, 1, 0, 1))] if stride == 2 else []
    padding = 0 if stride == 2 or kernel == 1 else 1
    return [*pad, nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(cout),
            act()]


def mobilenet_v1_025(act: type[nn.Module] = nn.ReLU, num_classes: int = 2) -> nn.Module:
    layers = conv_bn_act(3, STEM, 3, 2, 1, act)
    cin = STEM
    for cout, stride in BLOCKS:
        layers += conv_bn_act(cin, cin, 3, stride, cin, act)   # depthwise
        layers += conv_bn_act(cin, cout, 1, 1, 1, act)         # pointwise
        cin = cout
    layers += [nn.AvgPool2d(3), nn.Flatten(), nn.Linear(cin, num_classes)]
    return nn.Sequential(*layers)


def seeded_model(act: type[nn.Module], seed: int, images: np.ndarray) -> nn.Module:
    """PyTorch's default init under a fixed seed; each batch norm's running statistics are then those of
    ``images`` (NHWC in [0, 1]) and its scale and shift random, as in a trained model. With PyTorch's
    defaults (mean 0, variance 1) the random network collapses: after a few blocks every input gives the
    same activations, and the logits saturate at the same two values for every row, which would make the
    bit-exact checks blind to all but a handful of values."""
    torch.manual_seed(seed)
    model = mobilenet_v1_025(act)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average: one pass gives the statistics of ``images``
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
        model.train()
        model(torch.from_numpy(images).permute(0, 3, 1, 2))
    return model.eval()


def build_graph(act_name: str, seed: int, calibration: int = 200) -> Graph:
    act = {"relu": nn.ReLU, "relu6": nn.ReLU6}[act_name]
    images = np.random.default_rng(seed).random((calibration, 96, 96, 3), dtype=np.float32)
    graph = quantize(seeded_model(act, seed, images), from_arrays(images, np.zeros(calibration, np.int64)),
                     "vww_proxy")
    # the reference model's Dense(2, activation='softmax'): TFLM's int8 softmax wants output 1/256, -128
    graph = Graph(graph.input, [*graph.layers, Softmax(1.0, TensorInfo(graph.output.shape, 1 / 256, -128))],
                  graph.name)
    graph.validate()
    return graph


def host_vs_tflm(graph: Graph, x: np.ndarray) -> tuple[int, int]:
    """Rows whose output differs between the host reference and TFLM, for the model and for the model
    without its softmax (the logits: a 2-way softmax maps many logit pairs to one output)."""
    logits = Graph(graph.input, graph.layers[:-1], graph.name)
    return tuple(differing_rows(run(g, x), tflm_run(export_tflite(g), x)) for g in (graph, logits))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--act", choices=("relu", "relu6"), default="relu")
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--out", default="bench/results/vww_proxy")
    args = ap.parse_args()
    sets = args.sets.split(",")

    graph = build_graph(args.act, args.seed)
    totals = graph.totals()
    x = random_inputs(graph, args.rows, args.seed)
    differ, differ_logits = host_vs_tflm(graph, x)
    print(f"vww_proxy ({args.act}): {totals['macs']:,} MACs, {totals['params']:,} parameters; host vs TFLM: "
          f"{differ} of {args.rows} rows differ ({differ_logits} in the logits)", flush=True)
    published = VWW_MS * 1e-3 * PUBLISHED_CLOCK_HZ
    kernels = [la.weights for la in graph.layers if isinstance(la, (Conv2D, DepthwiseConv2D, FullyConnected))]
    weights, zeros = sum(w.size for w in kernels), sum(int((w == 0).sum()) for w in kernels)
    result: dict = {"model": "vww_proxy", "act": args.act, "seed": args.seed, "macs": totals["macs"],
                    "params": totals["params"], "zero_weights": zeros, "rows": args.rows, "host_vs_tflm": differ,
                    "host_vs_tflm_logits": differ_logits, "published_cycles": published, "sets": {}, "errors": {}}
    profiles = {}
    for k in sets:
        t = time.time()
        try:
            p = profile(graph, x[:1], k, "flash")
        except Exception as e:  # a set that cannot build or run this model is reported, not hidden
            result["errors"][k] = f"{type(e).__name__}: {e}"
            print(f"  {k:9s} FAILED: {result['errors'][k]}", flush=True)
            continue
        profiles[k] = p
        result["sets"][k] = p.summary()
        print(f"  {k:9s} {p.cycles[0]:>14,} cycles, {p.xip_misses:,} XIP misses, bit-exact: {p.bit_exact}, "
              f"{p.flash_bytes:,} B flash / {p.sram_bytes:,} B SRAM ({time.time() - t:.0f} s)", flush=True)
        write_json(f"{args.out}.json", result)

    lines = [f"# Visual wake words: the MLPerf Tiny architecture with our seeded random weights ({args.act})", "",
             "Command: `python bench/vww_proxy.py " + f"--rows {args.rows} --seed {args.seed} --act {args.act}`. "
             "A proxy, not the MLPerf model file: the same layers and shapes (MobileNetV1 x0.25, 96x96x3, "
             "2 classes), untrained seeded weights, our own calibration. Cycles depend on shapes, not on weight "
             "values (but for the zeros below). The published number is real hardware (STM32G0B1 at 64 MHz) "
             "running the real model; ours is the emulated RP2040, flash layout, one seeded row: compare cycles.", "",
             f"{totals['macs']:,} MACs, {totals['params']:,} parameters (batch norms folded); host reference vs TFLM "
             f"on {args.rows} seeded rows: {differ} differ ({differ_logits} in the logits before the softmax). "
             f"{zeros:,} of {weights:,} int8 weights are zero ({100 * zeros / weights:.2f}%): `sparse` and `auto` "
             "skip those, so a trained model with more zero weights would run them a little faster; `tflm-ref`, "
             "`cmsis-nn` and `dense` do not depend on weight values.", "",
             "| kernel set | cycles | / published 90.5 M | XIP misses | bit-exact | flash B | SRAM B |",
             "|---|---|---|---|---|---|---|"]
    for k, p in profiles.items():
        lines.append(f"| {k} | {p.cycles[0]:,} | {p.cycles[0] / published:.2f} | {p.xip_misses:,} | "
                     f"{p.bit_exact} | {p.flash_bytes:,} | {p.sram_bytes:,} |")
    for k, err in result["errors"].items():
        lines.append(f"| {k} | failed: {err} | | | | | |")
    lines += ["", "M cycles per layer (implementation):", "",
              "| # | op | output | " + " | ".join(profiles) + " |", "|---|---|---|" + "---|" * len(profiles)]
    for i, layer in enumerate(graph.layers):
        cells = [f"{p.cycles_per_layer[i] / 1e6:.2f} ({p.layer_kernels[i]})" for p in profiles.values()]
        lines.append(f"| {i} | {layer.op} | {'x'.join(map(str, layer.output.shape))} | " + " | ".join(cells) + " |")
    write_json(f"{args.out}.json", result)
    write_text(f"{args.out}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
