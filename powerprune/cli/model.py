"""Commands on one model file: ``train``, ``prune``, ``evaluate``, ``export``, ``infer``, ``inspect``."""

from __future__ import annotations

import argparse
import io
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from .options import (
    add_data_limits,
    add_data_option,
    add_test_limit,
    calibration_data,
    data_split,
    finite_float,
    library_default,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    print_json,
    refuse_overwrite_input,
)


def model_factory(spec: str):
    """``path/to/file.py:function`` -> the function (it returns an nn.Module)."""
    import importlib.util

    file, _, func = spec.rpartition(":")
    if not file or not func:
        raise ValueError(f"--model-def {spec!r}: expected FILE.py:FUNCTION")
    path = Path(file)
    if not path.is_file():
        raise ValueError(f"--model-def: {path} not found")
    module_spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    if not callable(getattr(module, func, None)):
        raise ValueError(f"--model-def: {path} has no function {func!r}")
    return getattr(module, func)


def _model_def_file(spec: str | None) -> str | None:
    return spec.rpartition(":")[0] or None if spec else None


ARCH_NAMES = {"lenet": "LeNet-5", "paper": "the paper's CNN"}


def cmd_train(args: argparse.Namespace) -> int:
    from ..model import ModelInfo, build_arch, save_model
    from ..train import accuracy, fit, recipe_for, seed_everything

    refuse_overwrite_input(args.out, args.data, _model_def_file(args.model_def))
    if args.model_def and args.arch is not None:
        raise ValueError("--arch picks one of our networks, --model-def your own: give one of them")
    arch = args.arch or "lenet"
    # the network's own recipe (the paper's: RMSprop at 1e-3), unless an option overrides a part of it
    base = recipe_for(arch)
    recipe = replace(base, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                     lr=base.lr if args.lr is None else args.lr,
                     optimizer=base.optimizer if args.optimizer is None else args.optimizer)
    train, test = data_split(args, "train"), data_split(args, "test")
    seed_everything(args.seed)
    if args.model_def:
        from ..seqnet import from_torch

        h, w, c = train.images.shape[1:]
        module = model_factory(args.model_def)()
        model = from_torch(module, (c, h, w))  # refuses an unsupported model before any training
        what = f"{args.model_def} ({', '.join(model.layer_names)})"
    else:
        if train.images.shape[1:] != (28, 28, 1):
            raise ValueError(f"--arch {arch} takes 28x28x1 images, the data has {train.images.shape[1:]}; "
                             "use --model-def for another input shape")
        module = model = build_arch(arch)
        what = f"{ARCH_NAMES[arch]} with {sum(p.numel() for p in model.parameters()):,} parameters"
    t0 = time.perf_counter()
    fit(module, train, recipe, desc="train")  # your module as written: its batch norms train as usual
    per_epoch = (time.perf_counter() - t0) / recipe.epochs
    if module is not model:
        model = from_torch(module, model.input_shape)  # the trained weights, batch norms folded into the convs
    acc = accuracy(model, test)
    save_model(model, args.out, ModelInfo(history=[{"step": "train", "recipe": vars(recipe), "accuracy": acc,
                                                    "seconds_per_epoch": per_epoch}]))
    print(f"trained {what} ({recipe.epochs} epochs, {recipe.optimizer} lr {recipe.lr:g}, {per_epoch:.1f} s/epoch, "
          f"seed {args.seed}): "
          f"test accuracy {acc:.2%} -> {args.out}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from ..mcu.costmodel import auto_cycles
    from ..model import load_model, save_model
    from ..prune import prune
    from ..train import Recipe

    refuse_overwrite_input(args.out, args.model, args.data)
    if Path(args.model).suffix == ".tflite":
        return _prune_tflite(args)
    model, _ = load_model(args.model)
    train, test = data_split(args, "train"), data_split(args, "test")
    recipe = Recipe(epochs=args.finetune_epochs, lr=args.lr, seed=args.seed, optimizer=args.optimizer)
    res = prune(model, args.method, args.compression, train, test, finetune=recipe, cycles=auto_cycles,
                schedule=args.schedule, scope=args.scope, energy_budget=args.energy_budget,
                accuracy_budget=None if args.accuracy_budget is None else args.accuracy_budget / 100)
    save_model(res.model, args.out, res.info)
    before = res.accuracy_before_finetune
    before_text = "n/a (pruning happens during fine-tuning)" if before is None else f"{before:.2%}"
    request = f"{args.compression:g}x" if args.compression is not None else (
        f"to {args.energy_budget:g} of the predicted cycles" if args.energy_budget is not None
        else f"within a {args.accuracy_budget:g} pp accuracy drop")
    print(f"{args.method} {request}: achieved {res.compression:.3f}x "
          f"(weights only {res.weight_compression:.3f}x); accuracy before fine-tuning "
          f"{before_text}, after {res.accuracy_after_finetune:.2%} -> {args.out}")
    return 0


def _graph_accuracy(outputs: np.ndarray, labels: np.ndarray) -> float:
    return float((outputs.reshape(len(labels), -1).argmax(1) == labels).mean())


def _prune_tflite(args: argparse.Namespace) -> int:
    """A deployed ``.tflite`` in, a pruned ``.tflite`` out: imported to a float SeqNet (checked against the
    original on the test data), pruned and fine-tuned on ``--data``, quantized with the original's input
    and output quantization and op set."""
    from ..mcu.costmodel import auto_cycles
    from ..prune import prune
    from ..quantize import DEFAULT_CALIBRATION
    from ..reference import run
    from ..tflite import load_tflite, save_tflite
    from ..tflite_to_seqnet import agreement, fit_data, graph_inputs, to_graph, to_seqnet
    from ..train import Recipe

    if Path(args.out).suffix != ".tflite":
        raise ValueError(f"--out {args.out}: pruning a .tflite writes a .tflite (the original's quantization "
                         "and ops are kept there)")
    original = load_tflite(args.model)
    imported = to_seqnet(original)
    train = fit_data(data_split(args, "train"), imported.net)
    test = fit_data(data_split(args, "test"), imported.net)
    x = graph_inputs(original, test.images)
    before = run(original, x)
    print(f"imported {args.model}: {agreement(imported, x, before)}")
    for note in imported.notes:
        print(f"note: {note}")
    recipe = Recipe(epochs=args.finetune_epochs, lr=args.lr, seed=args.seed, optimizer=args.optimizer)
    res = prune(imported.net, args.method, args.compression, train, test, finetune=recipe, cycles=auto_cycles,
                schedule=args.schedule, scope=args.scope, energy_budget=args.energy_budget,
                accuracy_budget=None if args.accuracy_budget is None else args.accuracy_budget / 100)
    pruned = to_graph(imported, res.model, train.take(DEFAULT_CALIBRATION))
    after = run(pruned, graph_inputs(pruned, test.images))
    save_tflite(pruned, args.out)
    print(f"{args.method}: achieved {res.compression:.3f}x; {original.dtype} test accuracy "
          f"{_graph_accuracy(before, test.labels):.2%} -> {_graph_accuracy(after, test.labels):.2%} "
          f"(input and output quantization kept) -> {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..api import evaluate_file

    r = evaluate_file(args.model, data_split(args, "test"))
    if args.json:
        print_json(r)
    else:
        for k, v in r.items():
            print(f"{k:>18}: {v:.4f}" if isinstance(v, float) else f"{k:>18}: {v}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from ..api import int8_accuracy, load_graph
    from ..tflite import save_tflite

    refuse_overwrite_input(args.out, args.model, args.data)
    if args.softmax and args.dtype != "float32":
        raise ValueError("--softmax appends a float32 SOFTMAX: give --dtype float32 too")
    calibration = data_split(args, "train") if args.dtype == "int8" else None
    graph = load_graph(args.model, args.calibration, calibration_data=calibration, dtype=args.dtype,
                       softmax=args.softmax)
    acc = int8_accuracy(graph, data_split(args, "test"))  # everything that can fail, before writing
    save_tflite(graph, args.out)
    print(f"exported {graph.dtype} model ({graph.totals()['params']} params) -> {args.out}; {graph.dtype} test "
          f"accuracy {acc:.2%}")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from ..api import load_graph, load_inputs
    from ..atomic import write_bytes

    refuse_overwrite_input(args.output, args.model, args.inputs, args.data, option="--output")
    graph = load_graph(args.model, args.calibration, calibration_data=calibration_data(args))
    x = load_inputs(args.inputs, graph)
    if args.stream and args.on != "host":
        raise ValueError("--stream (state carried across rows) runs on the host only for now; leave it out on "
                         f"{args.on}")
    if args.on == "host":
        from ..reference import run

        y = run(graph, x, stream=args.stream)
    else:
        from ..mcu.profile import run_on_rp2040

        y = run_on_rp2040(graph, x, kernels=args.kernels, layout=args.layout).outputs
    buf = io.BytesIO()
    np.save(buf, y.reshape(len(x), -1))
    write_bytes(args.output, buf.getvalue())
    print(f"{len(x)} inference(s) on {args.on} -> {args.output} ({y.dtype}, shape {y.reshape(len(x), -1).shape})")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from ..api import load_graph
    from ..mcu.autotune import cached_plan
    from ..mcu.codegen import kernel_sets, layer_kernels
    from ..mcu.kernelsets import choose_kernel, has_c_kernel

    graph = load_graph(args.model, calibration_data=calibration_data(args))
    rows = graph.layer_stats()
    sets = kernel_sets(graph.dtype)  # a float32 model runs on the sets with float kernels only
    # an op the host runs but the code generator does not know yet (e.g. an LSTM): no C kernel
    host_only = {i for i, layer in enumerate(graph.layers) if not has_c_kernel(layer.op)}
    missing = bool(host_only)
    if missing:  # layer by layer: no plan exists for a model the firmware cannot run
        kernels = {k: ["none" if i in host_only else "reshape" if layer.op == "RESHAPE" else
                       choose_kernel(layer, inp, k) for i, layer, inp in graph.steps()] for k in sets}
    else:
        kernels = {k: layer_kernels(graph, k) for k in sets}  # the C implementation of each layer
    # auto runs the plan measured on the virtual Pico; inspect stays instant, so it shows that plan once
    # a profile or deploy has measured it, and the cost model's prediction until then
    measured = cached_plan(graph) if "auto" in kernels and not missing else None
    if measured is not None:
        kernels["auto"] = layer_kernels(graph, "auto", measured.impls)
    for r in rows:
        r["kernels"] = {k: "none" if r["index"] in host_only else kernels[k][r["index"]] for k in sets}
        # the one kernel every set shares ("stock"), None when each set has its own
        r["kernel"] = "stock" if set(r["kernels"].values()) == {"stock"} else None
    if args.json:
        print_json([{**r, "input": list(r["input"]), "output": list(r["output"])} for r in rows])
        return 0
    wide = max(18, *(len(r["op"]) for r in rows))  # the op column fits the longest name
    head = (f"{'#':>2}  {'op':<{wide}} {'input':<14} {'output':<14} {'params':>8} {'nonzeros':>9} {'MACs':>9} "
            f"{'sparsity':>8}  kernel in {'/'.join(sets)}")
    print(head)
    print("-" * len(head))
    for r in rows:
        impls = list(r["kernels"].values())
        kernel = f"{impls[0]} (every set)" if len(set(impls)) == 1 else "/".join(impls)
        # a layer that reads anything but the previous one's output says what it reads (by layer #)
        sources = ", ".join("input" if t == 0 else f"#{t - 1}" for t in r["reads"])
        reads = "" if r["reads"] == [r["index"]] else f"  <- {sources}"
        print(f"{r['index']:>2}  {r['op']:<{wide}} {str(r['input']):<14} {str(r['output']):<14} {r['params']:>8} "
              f"{r['nonzeros']:>9} {r['macs']:>9} {r['sparsity']:>8.1%}  {kernel}{reads}")
    t = graph.totals()
    print(f"    {'total':<{wide + 30}} {t['params']:>8} {t['nonzeros']:>9} {t['macs']:>9}")
    if graph.dtype == "float32":
        print(f"a float32 model: TFLM's float kernels of {' and '.join(sets)} run it")
    for boundary, tensor in (("input", graph.input), ("output", graph.output)):
        if tensor.is_float and graph.dtype == "int8":
            print(f"model {boundary} is float32 (converted by its {'first' if boundary == 'input' else 'last'} layer)")
    for i in sorted(host_only):
        print(f"layer {i} ({graph.layers[i].op}): no C kernel yet; the host reference runs it (infer --on host), "
              "profile and deploy refuse the model")
    if "auto" in kernels and measured is None and not missing:
        print("auto: the cost model's prediction; the first profile or deploy measures auto's plan on the "
              "virtual Pico (dense vs sparse per layer) and inspect shows that from then on")
    for r in rows:
        if r["kernel"] == "stock":
            print(f"layer {r['index']} ({r['op']}): one stock kernel serves every kernel set "
                  f"({', '.join(sets)})")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The model commands, with the defaults the library uses (so the CLI and the API cannot drift)."""
    from ..api import load_graph
    from ..ir import DTYPES
    from ..mcu.build import LAYOUTS
    from ..mcu.codegen import KERNEL_SETS
    from ..mcu.profile import run_on_rp2040
    from ..model import ARCHS
    from ..prune.api import DEFAULT_FINETUNE, DEFAULT_SCHEDULE, DEFAULT_SCOPE, METHODS, SCHEDULES, SCOPES
    from ..quantize import DEFAULT_CALIBRATION
    from ..train import DEFAULT_TRAINING, OPTIMIZERS, PAPER_TRAINING

    p = sub.add_parser("train", help="train the LeNet-5-like baseline on FashionMNIST (or your model/data)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    p.add_argument("--arch", choices=tuple(ARCHS), default=None,
                   help="lenet: our LeNet-5 (default); paper: the network the paper measured (110,742 parameters), "
                        f"trained with its recipe ({PAPER_TRAINING.optimizer}, lr {PAPER_TRAINING.lr:g}) unless "
                        "--optimizer/--lr say otherwise")
    p.add_argument("--model-def", default=None, metavar="FILE.py:FUNC",
                   help="train your own network: FUNC() returns a PyTorch module built from supported layers")
    p.add_argument("--epochs", type=positive_int, default=DEFAULT_TRAINING.epochs)
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"learning rate (default: the network's recipe, {DEFAULT_TRAINING.lr:g} for lenet)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=None,
                   help=f"default: the network's recipe ({DEFAULT_TRAINING.optimizer} for lenet)")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_TRAINING.batch_size)
    p.add_argument("--seed", type=non_negative_int, default=DEFAULT_TRAINING.seed)
    add_data_limits(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("prune", help="prune a trained model to a compression rate and fine-tune it")
    p.add_argument("model", help="trained model (.pt), or a deployed .tflite (pruned to a .tflite --out)")
    p.add_argument("--method", required=True, metavar="{" + ",".join(METHODS) + "}",
                   help="magnitude (unstructured), apoz (structured), hybrid (apoz then magnitude) or energy "
                        "(energy-aware: cycles from the RP2040 cost model)")
    p.add_argument("--compression", type=finite_float, default=None,
                   help="dense parameters / nonzero parameters, e.g. 2, 4, 8, 16, 32, 64")
    p.add_argument("--energy-budget", type=positive_float, default=None, metavar="FRACTION",
                   help="energy method: prune until the predicted kernel cycles are this fraction of the model's")
    p.add_argument("--accuracy-budget", type=non_negative_float, default=None, metavar="PP",
                   help="energy method: prune as far as a validation accuracy drop of PP points allows")
    p.add_argument("--out", required=True)
    p.add_argument("--finetune-epochs", type=non_negative_int, default=DEFAULT_FINETUNE.epochs,
                   help=f"total fine-tuning epochs (default {DEFAULT_FINETUNE.epochs}; 0: prune without "
                        "fine-tuning)")
    p.add_argument("--lr", type=positive_float, default=DEFAULT_FINETUNE.lr,
                   help=f"fine-tuning learning rate (default {DEFAULT_FINETUNE.lr:g})")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULT_FINETUNE.optimizer,
                   help=f"fine-tuning optimizer (default {DEFAULT_FINETUNE.optimizer})")
    p.add_argument("--schedule", choices=SCHEDULES, default=DEFAULT_SCHEDULE,
                   help="magnitude: raise sparsity along a cubic schedule while fine-tuning (gradual, default), "
                        "or prune at once and fine-tune (oneshot)")
    p.add_argument("--scope", choices=SCOPES, default=DEFAULT_SCOPE,
                   help="magnitude: rank weights across all layers (global, default) or give each layer the same "
                        "density (layer: more energy saved, a little more accuracy lost)")
    p.add_argument("--seed", type=non_negative_int, default=DEFAULT_FINETUNE.seed)
    add_data_limits(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("evaluate", help="test accuracy, parameters, nonzeros, compression and MACs")
    p.add_argument("model", help=".pt or .tflite")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_test_limit(p)
    add_data_option(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="quantize to int8 (or keep float32) and write a .tflite that TFLite Micro runs")
    p.add_argument("model", help="model (.pt)")
    add_data_option(p)
    p.add_argument("--out", required=True, help=".tflite file to write")
    p.add_argument("--dtype", choices=tuple(DTYPES), default=library_default(load_graph, "dtype"),
                   help="int8 (default): full-integer quantization; float32: the weights as they are, as the paper "
                        "deployed its network")
    p.add_argument("--softmax", action="store_true",
                   help="float32: end the model with a SOFTMAX, as the paper's Keras model did (it does not change "
                        "the predicted class)")
    p.add_argument("--calibration", type=positive_int, default=DEFAULT_CALIBRATION, metavar="N",
                   help=f"calibration images (default {DEFAULT_CALIBRATION})")
    add_test_limit(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("infer", help="run inference (int8, or float32 for a float32 model) on inputs from a .npy")
    p.add_argument("model", help=".pt or .tflite")
    p.add_argument("--inputs", required=True, help="X.npy: int8 (already quantized), float32 or uint8 pixels")
    p.add_argument("--output", required=True, help="Y.npy: the model's outputs (int8 or float32), one row per input")
    p.add_argument("--on", choices=("host", "rp2040"), default="host")
    p.add_argument("--stream", action="store_true",
                   help="stateful models (LSTM): carry the state from row to row, as a device that never resets; "
                        "default: every row is one independent inference from the reset state")
    p.add_argument("--kernels", choices=KERNEL_SETS, default=library_default(run_on_rp2040, "kernels"),
                   help="kernel set on rp2040")
    p.add_argument("--layout", choices=LAYOUTS, default=library_default(run_on_rp2040, "layout"))
    p.add_argument("--calibration", type=positive_int, default=DEFAULT_CALIBRATION, metavar="N")
    add_data_option(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("inspect", help="layer table of a model: op, shapes, params, nonzeros, MACs, sparsity")
    p.add_argument("model", help=".tflite or .pt")
    p.add_argument("--json", action="store_true")
    add_data_option(p)
    p.set_defaults(func=cmd_inspect)
