"""What every command shares: the checked number types, the data options, where images come from,
and the one-line error form. Kept apart from the commands so each command group reads on its own."""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

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


# --- defaults: the library's, never typed in again -------------------------------------------------

def library_default(function: Callable, parameter: str) -> Any:
    """The default ``function`` gives ``parameter``. An option that stands for that parameter takes its
    default from here (and its help text quotes it), so the command line and the API cannot drift."""
    default = inspect.signature(function).parameters[parameter].default
    if default is inspect.Parameter.empty:
        raise TypeError(f"{function.__qualname__}() has no default for {parameter!r}")
    return default


# --- errors: one line, whatever went wrong --------------------------------------------------------

class UsageError(SystemExit):
    """A command line argparse refused, as its one line. A SystemExit with argparse's status 2, so a
    caller of ``parse_args`` that expects argparse's behaviour still gets it; ``main`` reports the
    line (on stderr, and as JSON for --json) the way it reports every other error."""

    def __init__(self, line: str) -> None:
        super().__init__(2)
        self.line = line


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as the one line every other error is (``powerprune CMD: error: ...``); --help
    still shows the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: error: {message}")


def note(text: str) -> None:
    """A remark beside a command's result (e.g. that inputs were made up): on stderr, so the result
    on stdout stays what a pipeline reads, one JSON document with --json."""
    print(f"note: {text}", file=sys.stderr, flush=True)


def print_json(document: object) -> None:
    """A --json result: one document on one line of stdout, strict JSON (NaN or infinity would be
    refused by jq and most parsers, so they fail here as an error instead)."""
    print(json.dumps(document, allow_nan=False), flush=True)


def report_error(line: str, as_json: bool) -> None:
    """A failed command's one line on stderr; with --json also as ``{"error": line}`` on stdout, so a
    pipeline reading stdout gets a JSON document whatever happened."""
    print(line, file=sys.stderr, flush=True)
    if as_json:
        print_json({"error": line})


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (torch and numpy messages can span several)."""
    return " ".join(str(exc).split()) or type(exc).__name__


def refuse_overwrite_input(out: str | Path, *inputs: str | Path | None, option: str = "--out") -> None:
    """Checks an output before any work: one that names one of the command's inputs would destroy it (and
    often fail afterwards), and one that cannot be written would lose minutes of training at the end."""
    for i in inputs:
        if i is not None and Path(out).resolve() == Path(i).resolve():
            raise ValueError(f"{option} {out} would overwrite the input {i}; choose another path")
    refuse_unwritable(out, option)


def refuse_unwritable(out: str | Path, option: str = "--out") -> None:
    """The output's nearest existing folder must take a file. Permission bits are not enough to ask (root
    ignores them; a read-only mount does not), so a probe file is created there and removed again."""
    target = Path(out).resolve()
    folder = target if target.is_dir() else target.parent
    while not folder.is_dir():
        if folder.exists():
            raise ValueError(f"{option} {out}: {folder} is a file, not a folder")
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".powerprune-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{option} {out} cannot be written: {exc.strerror or exc} ({folder})") from None


# --- data: --data FILE.npz, else FashionMNIST -----------------------------------------------------

def add_data_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, metavar="FILE.npz",
                   help="your own dataset: x_train, y_train, x_test, y_test arrays (default: FashionMNIST)")


def add_data_limits(p: argparse.ArgumentParser) -> None:
    add_data_option(p)
    p.add_argument("--train-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N training images (quick experiments, tests)")
    add_test_limit(p)


def add_test_limit(p: argparse.ArgumentParser) -> None:
    p.add_argument("--test-limit", type=positive_int, default=None, metavar="N",
                   help="evaluate on only the first N test images")


def data_split(args: argparse.Namespace, split: str, limit: int | None = None):
    """The ``split`` of ``--data`` if given, else of FashionMNIST."""
    from ..data import load_fashion_mnist, load_npz

    limit = limit if limit is not None else getattr(args, f"{split}_limit", None)
    if getattr(args, "data", None):
        return load_npz(args.data, split, limit)
    return load_fashion_mnist(split, limit)


def calibration_data(args: argparse.Namespace):
    """Calibration images for a .pt model: only read when needed (a .tflite brings its own scales)."""
    return data_split(args, "train") if getattr(args, "data", None) else None


def images_for_model(args: argparse.Namespace, n: int, shape: tuple[int, ...]) -> np.ndarray | None:
    """The first ``n`` test images for a model whose input is ``shape`` (H, W, C). ``--data`` must fit
    the model (the user chose those images); FashionMNIST is used when its images fit, and None says
    they do not, so the caller can run a model of its own shape on made-up inputs instead."""
    from ..data import FASHION_MNIST_SHAPE

    if not getattr(args, "data", None) and shape != FASHION_MNIST_SHAPE:
        return None
    images = data_split(args, "test", n).images
    if images.shape[1:] != shape:
        raise ValueError(f"the model takes inputs of shape {shape}, the test images are {images.shape[1:]}")
    return images
