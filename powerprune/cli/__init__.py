"""``powerprune`` command line. Every command fails with one clear line and a non-zero exit on bad input,
and writes its outputs atomically, so nothing existing is lost on error.

One module per command group: ``model`` (train, prune, evaluate, export, infer, inspect), ``experiment``
(run, calibrate), ``device`` (deploy, measure, emulate, profile); what they share is in ``options``.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import device, experiment, model
from .options import OneLineParser, UsageError, one_line, report_error

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    ap = OneLineParser(prog="powerprune", description=__doc__.split("\n")[0] if __doc__ else None)
    ap.add_argument("--version", action="version", version=f"powerprune {__version__}")
    ap.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in (model, experiment, device):  # the order `powerprune --help` lists them in
        group.add_commands(sub)
    return ap


def _means_json(arg: str) -> bool:
    """``--json`` or an abbreviation argparse would take for it (no other option starts ``--js``)."""
    return len(arg) > 3 and "--json".startswith(arg)


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input ends with exactly one line on stderr and exit 2; anything we did not
    foresee too (with its type and a pointer to --debug), so a user never has to read a traceback.
    With --json, stdout is one JSON document either way: the result, or ``{"error": "<that line>"}``."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:  # no namespace yet: --json anywhere on the line asks for the JSON form
        report_error(exc.line, any(_means_json(a) for a in argv))
        return exc.code
    as_json = bool(getattr(args, "json", False))
    try:
        return args.func(args)
    except KeyboardInterrupt:
        report_error("powerprune: interrupted", as_json)
        return 130
    except (ValueError, RuntimeError, OSError) as exc:
        if args.debug:
            raise
        report_error(f"powerprune {args.command}: error: {one_line(exc)}", as_json)
        return 2
    except Exception as exc:  # the last resort: a bug or a check we missed, still one line
        if args.debug:
            raise
        report_error(f"powerprune {args.command}: error: {type(exc).__name__}: {one_line(exc)} "
                     "(run with --debug for the traceback)", as_json)
        return 2
