"""``powerprune`` command line. Every command fails with one clear line and a non-zero exit on bad input,
and writes its outputs atomically, so nothing existing is lost on error."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import __version__

# --- argument types: every number a user types is checked here, once, for every command -----------

def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type for counts: a negative count would silently become a Python slice from the
    end (``take(-1)`` = all but one image), and 0 would make a command succeed having done nothing."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0)


def _float_where(test: Callable[[float], bool], what: str) -> Callable[[str], float]:
    """An argparse type for real numbers: NaN and inf pass every ``<`` check, so they are refused first."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or not test(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
        return value

    parse.__name__ = what
    return parse


finite_float = _float_where(lambda v: True, "a finite number")
positive_float = _float_where(lambda v: v > 0, "a finite number > 0")
non_negative_float = _float_where(lambda v: v >= 0, "a finite number >= 0")


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as the one line every other error is (``powerprune CMD: error: ...``); --help
    still shows the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, metavar="FILE.npz",
                   help="your own dataset: x_train, y_train, x_test, y_test arrays (default: FashionMNIST)")


def _add_data_limits(p: argparse.ArgumentParser) -> None:
    add_data_option(p)
    p.add_argument("--train-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N training images (quick experiments, tests)")
    _add_test_limit(p)


def _add_test_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test-limit", type=positive_int, default=None, metavar="N",
                   help="evaluate on only the first N test images")


def data_split(args: argparse.Namespace, split: str, limit: int | None = None):
    """The ``split`` of ``--data`` if given, else of FashionMNIST."""
    from .data import load_fashion_mnist, load_npz

    limit = limit if limit is not None else getattr(args, f"{split}_limit", None)
    if getattr(args, "data", None):
        return load_npz(args.data, split, limit)
    return load_fashion_mnist(split, limit)


def calibration_data(args: argparse.Namespace):
    """Calibration images for a .pt model: only read when needed (a .tflite brings its own scales)."""
    return data_split(args, "train") if getattr(args, "data", None) else None


def _model_factory(spec: str):
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


def _refuse_overwrite_input(out: str | Path, *inputs: str | Path | None, option: str = "--out") -> None:
    """An output that names one of the command's inputs would destroy it (and often fail afterwards)."""
    for i in inputs:
        if i is not None and Path(out).resolve() == Path(i).resolve():
            raise ValueError(f"{option} {out} would overwrite the input {i}; choose another path")


def _model_def_file(spec: str | None) -> str | None:
    return spec.rpartition(":")[0] or None if spec else None


def cmd_train(args: argparse.Namespace) -> int:
    from .model import ModelInfo, lenet5, save_model
    from .train import Recipe, accuracy, fit, seed_everything

    _refuse_overwrite_input(args.out, args.data, _model_def_file(args.model_def))
    recipe = Recipe(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
    train, test = data_split(args, "train"), data_split(args, "test")
    seed_everything(args.seed)
    if args.model_def:
        from .seqnet import from_torch

        h, w, c = train.images.shape[1:]
        model = from_torch(_model_factory(args.model_def)(), (c, h, w))
        what = f"{args.model_def} ({', '.join(model.layer_names)})"
    else:
        model = lenet5()
        what = "LeNet-5"
    t0 = time.perf_counter()
    fit(model, train, recipe, desc="train")
    per_epoch = (time.perf_counter() - t0) / recipe.epochs
    acc = accuracy(model, test)
    save_model(model, args.out, ModelInfo(history=[{"step": "train", "recipe": vars(recipe), "accuracy": acc,
                                                    "seconds_per_epoch": per_epoch}]))
    print(f"trained {what} ({recipe.epochs} epochs, {per_epoch:.1f} s/epoch, seed {args.seed}): "
          f"test accuracy {acc:.2%} -> {args.out}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from .mcu.costmodel import auto_cycles
    from .model import load_model, save_model
    from .prune import prune
    from .train import Recipe

    _refuse_overwrite_input(args.out, args.model, args.data)
    model, _ = load_model(args.model)
    train, test = data_split(args, "train"), data_split(args, "test")
    recipe = Recipe(epochs=args.finetune_epochs, lr=args.lr, seed=args.seed)
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


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .api import evaluate_file

    r = evaluate_file(args.model, data_split(args, "test"))
    if args.json:
        print(json.dumps(r))
    else:
        for k, v in r.items():
            print(f"{k:>18}: {v:.4f}" if isinstance(v, float) else f"{k:>18}: {v}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .api import int8_accuracy, load_graph
    from .tflite import save_tflite

    _refuse_overwrite_input(args.out, args.model, args.data)
    graph = load_graph(args.model, args.calibration, calibration_data=data_split(args, "train"))
    acc = int8_accuracy(graph, data_split(args, "test"))  # everything that can fail, before writing
    save_tflite(graph, args.out)
    print(f"exported int8 model ({graph.totals()['params']} params) -> {args.out}; int8 test accuracy {acc:.2%}")
    return 0


def cmd_infer(args: argparse.Namespace) -> int:
    from .api import load_graph, load_inputs
    from .atomic import write_bytes

    _refuse_overwrite_input(args.output, args.model, args.inputs, args.data, option="--output")
    graph = load_graph(args.model, args.calibration, calibration_data=calibration_data(args))
    x = load_inputs(args.inputs, graph)
    if args.on == "host":
        from .reference import run

        y = run(graph, x)
    else:
        from .mcu.profile import run_on_rp2040

        y = run_on_rp2040(graph, x, kernels=args.kernels, layout=args.layout).outputs
    import io

    buf = io.BytesIO()
    np.save(buf, y.reshape(len(x), -1))
    write_bytes(args.output, buf.getvalue())
    print(f"{len(x)} inference(s) on {args.on} -> {args.output} (int8, shape {y.reshape(len(x), -1).shape})")
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from .api import load_graph

    graph = load_graph(args.model, calibration_data=calibration_data(args))
    rows = graph.layer_stats()
    if args.json:
        print(json.dumps([{**r, "input": list(r["input"]), "output": list(r["output"])} for r in rows]))
        return 0
    head = (f"{'#':>2}  {'op':<18} {'input':<14} {'output':<14} {'params':>8} {'nonzeros':>9} {'MACs':>9} "
            f"{'sparsity':>8}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['index']:>2}  {r['op']:<18} {str(r['input']):<14} {str(r['output']):<14} {r['params']:>8} "
              f"{r['nonzeros']:>9} {r['macs']:>9} {r['sparsity']:>8.1%}")
    t = graph.totals()
    print(f"    {'total':<48} {t['params']:>8} {t['nonzeros']:>9} {t['macs']:>9}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import time

    from .board import load_board
    from .report import terminal_summary, write_outputs
    from .sweep import load_config, run_sweep

    if args.address and args.backend != "ray":
        raise ValueError("--address is for --backend ray")
    seeds = tuple(range(args.seeds)) if args.seeds is not None else None
    cfg = load_config(args.config, quick=args.quick, seeds=seeds, jobs=args.jobs, board=args.board)
    out = Path(args.out)
    t0 = time.time()
    rows = run_sweep(cfg, out, backend=args.backend, address=args.address)
    res = write_outputs(rows, out, load_board(cfg.board),
                        title="powerprune run" + (" (--quick preset)" if args.quick else ""))
    print(terminal_summary(res["aggregate"]))
    print(f"\n{len(rows)} rows in {time.time() - t0:.0f} s -> {out}/report.html, report.md, results.csv")
    if not all(r.bit_exact for r in rows):
        print("WARNING: some virtual-Pico outputs differ from the host reference", file=sys.stderr)
        return 1
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .board import calibrate, load_board, save_board

    if args.out:
        _refuse_overwrite_input(args.out, args.profile if args.profile.endswith(".toml") else None)
    board = calibrate(load_board(args.profile), args.measured_mj, args.cycles, args.name)
    path = save_board(board, Path(args.out) if args.out else None)
    print(f"{board.name}: active current {board.active_current_ma:.3f} mA at {board.supply_voltage_v} V "
          f"({board.active_power_mw:.2f} mW) -> {path}; use it with --board {board.name}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .prune.api import DEFAULT_FINETUNE, DEFAULT_SCHEDULE, DEFAULT_SCOPE, METHODS

    ap = _OneLineParser(prog="powerprune", description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--version", action="version", version=f"powerprune {__version__}")
    ap.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train the LeNet-5-like baseline on FashionMNIST (or your model/data)")
    p.add_argument("--out", required=True, help="model file to write (.pt)")
    p.add_argument("--model-def", default=None, metavar="FILE.py:FUNC",
                   help="train your own network: FUNC() returns a PyTorch module built from supported layers")
    p.add_argument("--epochs", type=positive_int, default=15)
    p.add_argument("--lr", type=positive_float, default=2e-3)
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--seed", type=non_negative_int, default=0)
    _add_data_limits(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("prune", help="prune a trained model to a compression rate and fine-tune it")
    p.add_argument("model", help="trained model (.pt)")
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
    p.add_argument("--schedule", choices=("oneshot", "gradual"), default=DEFAULT_SCHEDULE,
                   help="magnitude: raise sparsity along a cubic schedule while fine-tuning (gradual, default), "
                        "or prune at once and fine-tune (oneshot)")
    p.add_argument("--scope", choices=("global", "layer"), default=DEFAULT_SCOPE,
                   help="magnitude: rank weights across all layers (global, default) or give each layer the same "
                        "density (layer: more energy saved, a little more accuracy lost)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    _add_data_limits(p)
    p.set_defaults(func=cmd_prune)

    p = sub.add_parser("evaluate", help="test accuracy, parameters, nonzeros, compression and MACs")
    p.add_argument("model", help=".pt or .tflite")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_test_limit(p)
    add_data_option(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("export", help="quantize to int8 and write a .tflite that TFLite Micro runs")
    p.add_argument("model", help="model (.pt)")
    add_data_option(p)
    p.add_argument("--out", required=True, help=".tflite file to write")
    p.add_argument("--calibration", type=positive_int, default=500, metavar="N",
                   help="calibration images (default 500)")
    _add_test_limit(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("infer", help="run int8 inference on inputs from a .npy file")
    p.add_argument("model", help=".pt or .tflite")
    p.add_argument("--inputs", required=True, help="X.npy: int8 (already quantized), float32 or uint8 pixels")
    p.add_argument("--output", required=True, help="Y.npy: int8 outputs, one row per input")
    p.add_argument("--on", choices=("host", "rp2040"), default="host")
    p.add_argument("--kernels", default="tflm-ref", help="kernel set on rp2040")
    p.add_argument("--layout", choices=("flash", "sram"), default="flash")
    p.add_argument("--calibration", type=positive_int, default=500, metavar="N")
    add_data_option(p)
    p.set_defaults(func=cmd_infer)

    p = sub.add_parser("inspect", help="layer table of a model: op, shapes, params, nonzeros, MACs, sparsity")
    p.add_argument("model", help=".tflite or .pt")
    p.add_argument("--json", action="store_true")
    add_data_option(p)
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("run", help="the paper's experiment end to end: train, prune, int8, virtual Pico, report")
    p.add_argument("--config", help="TOML file with any of the sweep settings (see README)")
    p.add_argument("--quick", action="store_true", help="a few-minute preset (2 rates, short training, 2 kernel sets)")
    p.add_argument("--out", default="runs/paper", help="run directory (default runs/paper); rerun to resume")
    p.add_argument("--seeds", type=positive_int, default=None, metavar="K",
                   help="repeat with seeds 0..K-1, report mean ± std")
    p.add_argument("--jobs", type=positive_int, default=None, help="parallel worker processes (default 2)")
    p.add_argument("--board", default=None, help="board profile name or TOML path (default pico)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="run the model jobs in local processes (default) or as tasks on a Ray cluster")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (e.g. ray://head:10001 or auto); default: start a local Ray")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("calibrate", help="write a board profile that reproduces a hardware energy measurement")
    p.add_argument("--profile", default="pico", help="profile to start from (default pico)")
    p.add_argument("--measured-mj", type=positive_float, required=True, help="measured energy of one inference (mJ)")
    p.add_argument("--cycles", type=positive_float, required=True, help="cycles of that inference (from `profile`)")
    p.add_argument("--name", default=None, help="name of the new profile (default PROFILE-calibrated)")
    p.add_argument("--out", default=None, help="TOML path (default ~/.config/powerprune/boards/NAME.toml)")
    p.set_defaults(func=cmd_calibrate)

    from .mcu.cli import add_mcu_commands

    add_mcu_commands(sub)
    return ap


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (torch and numpy messages can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input ends with exactly one line on stderr and exit 2; anything we did not
    foresee too (with its type and a pointer to --debug), so a user never has to read a traceback."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("powerprune: interrupted", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError) as exc:
        if args.debug:
            raise
        print(f"powerprune {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # the last resort: a bug or a check we missed, still one line
        if args.debug:
            raise
        print(f"powerprune {args.command}: error: {type(exc).__name__}: {_one_line(exc)} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
