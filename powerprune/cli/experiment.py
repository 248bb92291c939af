"""Commands for the whole experiment: ``run`` (the paper's sweep end to end) and ``calibrate`` (a board
profile fitted to a hardware measurement, for the energy the sweep reports)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .options import library_default, positive_float, positive_int, refuse_overwrite_input, refuse_unwritable


def cmd_run(args: argparse.Namespace) -> int:
    from ..board import load_board
    from ..report import terminal_summary, write_outputs
    from ..sweep import bundled_configs, load_config, refusals, run_sweep

    if args.address and args.backend != "ray":
        raise ValueError("--address is for --backend ray")
    seeds = tuple(range(args.seeds)) if args.seeds is not None else None
    cfg = load_config(args.config, quick=args.quick, seeds=seeds, jobs=args.jobs, board=args.board)
    out = Path(args.out)
    refuse_unwritable(out)
    t0 = time.time()
    rows = run_sweep(cfg, out, backend=args.backend, address=args.address)
    refused = refusals(out)
    res = write_outputs(rows, out, load_board(cfg.board), arch=cfg.arch, dtype=cfg.dtype, refused=refused,
                        title="powerprune run" + (" (--quick preset)" if args.quick else "")
                        + (f" ({args.config})" if args.config in bundled_configs() else ""))
    print(terminal_summary(res["aggregate"], cfg.dtype, refused))
    print(f"\n{len(rows)} rows in {time.time() - t0:.0f} s -> {out}/report.html, report.md, results.csv")
    if not all(r.bit_exact for r in rows):
        print("WARNING: some virtual-Pico outputs differ from the host reference", file=sys.stderr)
        return 1
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from ..board import calibrate, load_board, save_board

    if args.out:
        refuse_overwrite_input(args.out, args.profile if args.profile.endswith(".toml") else None)
    board = calibrate(load_board(args.profile), args.measured_mj, args.cycles, args.name)
    path = save_board(board, Path(args.out) if args.out else None)
    print(f"{board.name}: active current {board.active_current_ma:.3f} mA at {board.supply_voltage_v} V "
          f"({board.active_power_mw:.2f} mW) -> {path}; use it with --board {board.name}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The experiment commands; what an option leaves unset is the run config's (``SweepConfig``)."""
    from ..board import DEFAULT_BOARD
    from ..sweep import BACKENDS, SweepConfig, run_sweep

    p = sub.add_parser("run", help="the paper's experiment end to end: train, prune, int8, virtual Pico, report")
    p.add_argument("--config", help="TOML file with any of the sweep settings (see README), or the name of a bundled "
                                    "one: paper-exact (the paper's network, float32, its runtimes and rates)")
    p.add_argument("--quick", action="store_true", help="a few-minute preset (2 rates, short training, 2 kernel sets)")
    p.add_argument("--out", default="runs/paper", help="run directory (default runs/paper); rerun to resume")
    p.add_argument("--seeds", type=positive_int, default=None, metavar="K",
                   help="repeat with seeds 0..K-1, report mean ± std")
    p.add_argument("--jobs", type=positive_int, default=None,
                   help=f"parallel worker processes (default {SweepConfig.jobs})")
    p.add_argument("--board", default=None, help=f"board profile name or TOML path (default {SweepConfig.board})")
    p.add_argument("--backend", choices=BACKENDS, default=library_default(run_sweep, "backend"),
                   help="run the model jobs in local processes (default) or as tasks on a Ray cluster")
    p.add_argument("--address", default=None,
                   help="Ray cluster address (e.g. ray://head:10001 or auto); default: start a local Ray")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("calibrate", help="write a board profile that reproduces a hardware energy measurement")
    p.add_argument("--profile", default=DEFAULT_BOARD, help=f"profile to start from (default {DEFAULT_BOARD})")
    p.add_argument("--measured-mj", type=positive_float, required=True, help="measured energy of one inference (mJ)")
    p.add_argument("--cycles", type=positive_float, required=True, help="cycles of that inference (from `profile`)")
    p.add_argument("--name", default=None, help="name of the new profile (default PROFILE-calibrated)")
    p.add_argument("--out", default=None, help="TOML path (default ~/.config/powerprune/boards/NAME.toml)")
    p.set_defaults(func=cmd_calibrate)
