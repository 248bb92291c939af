"""Commands for the Raspberry Pi Pico: ``profile`` on the virtual Pico, ``deploy`` to a physical one,
``measure`` a board over UART (and its power trace), ``emulate`` a deployed firmware. They live in the
CLI, not in ``mcu``, so the MCU package never reaches back into the command line."""

from __future__ import annotations

import argparse
import time

import numpy as np

from ..mcu.boot2 import FLASH_CLKDIV
from ..mcu.build import DEFAULT_CFLAGS, LAYOUTS
from ..mcu.codegen import KERNEL_SETS, kernel_plan
from ..mcu.deploy import IMAGE_CHOICES
from ..mcu.emulator import CLOCK_HZ, DEFAULT_CYCLE_BUDGET, DEFAULT_XIP_MISS_CYCLES
from .options import (
    add_data_option,
    calibration_data,
    images_for_model,
    library_default,
    non_negative_int,
    note,
    positive_float,
    positive_int,
    print_json,
    refuse_unwritable,
)


def _graph(args: argparse.Namespace):
    """The model as int8; a .pt calibrates on ``--data`` (or FashionMNIST)."""
    from ..api import load_graph

    return load_graph(args.model, calibration_data=calibration_data(args))


def _test_inputs(args: argparse.Namespace, graph, n: int) -> np.ndarray:
    """``n`` test images of ``--data`` (or FashionMNIST) as the graph's input. Without --data, a model
    whose input shape is not the dataset's gets seeded random inputs (cycles barely depend on the
    values), and says so."""
    from ..api import random_inputs
    from ..quantize import quantize_images

    images = images_for_model(args, n, tuple(graph.input.shape))
    if images is not None:
        return quantize_images(graph, images)
    note(f"input shape {graph.input.shape} is not FashionMNIST's and no --data was given; "
         f"using random {graph.input.dtype} inputs")
    return random_inputs(graph, n)


def cmd_profile(args: argparse.Namespace) -> int:
    from ..mcu.profile import profile

    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    unknown = [k for k in kernels if k not in KERNEL_SETS]
    if unknown or not kernels:
        raise ValueError(f"unknown kernel set(s) {', '.join(unknown) or repr(args.kernels)}; "
                         f"available: {', '.join(KERNEL_SETS)}")
    cflags = tuple(args.cflags.split()) if args.cflags else DEFAULT_CFLAGS
    graph = _graph(args)
    for k in kernels:  # a set that cannot run this model (float32 on dense) fails before any emulation
        kernel_plan(graph, k)
    x = _test_inputs(args, graph, args.images)
    report = {"model": str(args.model), "kernels": {}}
    for k in kernels:
        p = profile(graph, x, k, args.layout, args.xip_miss_cycles, args.cycle_budget, cflags)
        report["kernels"][k] = p.summary()
    if args.json:  # one document: the report, or (from main) the error of a firmware that is not bit-exact
        _fail_unless_bit_exact(report["kernels"])
        print_json(report)
        return 0
    print(f"{args.model}: {args.images} test image(s), layout {args.layout}, {CLOCK_HZ / 1e6:.0f} MHz")
    print(f"{'kernels':<10} {'cycles':>12} {'ms':>8} {'flash B':>9} {'SRAM B':>8} {'XIP miss':>9}  bit-exact")
    for k, s in report["kernels"].items():
        print(f"{k:<10} {s['cycles_mean']:>12.0f} {s['cycles_mean'] / CLOCK_HZ * 1e3:>8.2f} {s['flash_bytes']:>9} "
              f"{s['sram_bytes']:>8} {s['xip_misses'] / args.images:>9.0f}  {s['bit_exact']}")
        per = np.array(s["cycles_per_layer"])
        print("           per layer: " + ", ".join(f"{v:.0f} ({k})" for v, k in zip(per, s["layer_kernels"],
                                                                                      strict=True)))
    _fail_unless_bit_exact(report["kernels"])
    return 0


def _fail_unless_bit_exact(summaries: dict[str, dict]) -> None:
    """Cycles of a firmware that computes something else are meaningless: after the report, an error."""
    bad = [k for k, s in summaries.items() if not s["bit_exact"]]
    if bad:
        raise RuntimeError(f"bit-exact check failed: the virtual Pico's outputs with kernel set(s) "
                           f"{', '.join(bad)} differ from the host reference")


def cmd_deploy(args: argparse.Namespace) -> int:
    from ..mcu.deploy import deploy

    if args.kernels not in KERNEL_SETS:
        raise ValueError(f"unknown kernel set {args.kernels!r}; available: {', '.join(KERNEL_SETS)}")
    refuse_unwritable(args.out)
    res = deploy(_graph(args), args.out, args.kernels, args.board, args.image)
    if res["image"] == "flash":
        print(f"{res['uf2']}: flash UF2 ({res['uf2_bytes']} bytes; {res['flash_bytes']} B of the 2 MB flash, "
              f"{res['sram_bytes']} B of the 264 KB SRAM)")
        print("  hold BOOTSEL while plugging the Pico in, copy the .uf2 onto the RPI-RP2 drive; it is written to flash")
        print("  and boots at once and after every power-up (our boot2: standard 03h serial reads, "
              f"SCK = clk_sys / {FLASH_CLKDIV})")
    else:
        print(f"{res['uf2']}: RAM-only UF2 ({res['uf2_bytes']} bytes, {res['sram_bytes']} B of the 264 KB SRAM)")
        print("  hold BOOTSEL while plugging the Pico in, copy the .uf2 onto the RPI-RP2 drive; it runs at once")
        print("  (RAM images do not survive a power cycle; --image flash makes one that does)")
    print(f"  C sources + CMakeLists.txt for pico-sdk: {res['sources']}")
    return 0


def cmd_measure(args: argparse.Namespace) -> int:
    from ..mcu.measure import energy_from_csv

    report: dict = {}
    if args.port:
        import serial

        from ..mcu.codegen import kernel_plan
        from ..mcu.measure import measure_board

        if not args.model:
            raise ValueError("--model is needed to check the board's outputs against the host reference")
        graph = _graph(args)
        kernel_plan(graph, "tflm-ref")  # one line, before anything, for a model no firmware can run (an LSTM)
        x = _test_inputs(args, graph, args.images)
        try:
            port = serial.Serial(args.port, args.baud, timeout=0.2)
        except serial.SerialException as exc:
            raise OSError(f"cannot open {args.port}: {exc}") from exc
        with port:
            report["board"] = measure_board(port, graph, x, timeout=args.timeout).summary()
    if args.energy_csv:
        report["energy"] = energy_from_csv(args.energy_csv)
    if not report:
        raise ValueError("give --port (and --model) to run inferences, and/or --energy-csv to analyse a trace")
    bit_exact = report.get("board", {}).get("bit_exact", True)
    if args.json:
        if bit_exact:  # else the error below is the one document
            print_json(report)
    else:
        if "board" in report:
            b = report["board"]
            print(f"{b['images']} images, {b['mismatches']} mismatching outputs (bit-exact: {b['bit_exact']}); "
                  f"{b['cycles_mean']:.0f} cycles = {b['latency_ms']:.2f} ms on the board; "
                  f"round trip {b['round_trip_ms']:.1f} ms")
        if "energy" in report:
            e = report["energy"]
            print(f"{e['inferences']} marked inferences: {e['energy_mj_mean']:.4f} ± {e['energy_mj_std']:.4f} mJ, "
                  f"{e['duration_ms_mean']:.2f} ms each")
    if not bit_exact:
        raise RuntimeError(f"bit-exact check failed: {report['board']['mismatches']} of the board's outputs "
                           "differ from the host reference")
    return 0


def cmd_emulate(args: argparse.Namespace) -> int:
    from ..mcu.virtual_board import VirtualBoard

    with VirtualBoard(args.uf2) as board:
        print(f"virtual Pico running {args.uf2}; UART0 at {board.port} (Ctrl-C to stop)", flush=True)
        shown, xip_shown = 0, False
        try:
            while True:
                board.check()  # a fault or a dead emulator ends the command with an error
                # what only the emulator sees: the flash read boot2 set up, and per inference the
                # marker pin's high time and (flash images) the XIP cache misses in it
                if board.xip and not xip_shown:
                    x = board.xip
                    print(f"boot2 set up XIP: {x['command']:02x}h serial reads, SCK = clk_sys / {x['sck_divider']}, "
                          f"{x['cycles']} cycles per XIP cache miss", flush=True)
                    xip_shown = True
                while shown < len(board.xip_misses):
                    misses = f", {board.xip_misses[shown]} XIP cache misses" if board.xip else ""
                    print(f"inference: {board.marker_high_cycles[shown]} cycles with GP2 high{misses}", flush=True)
                    shown += 1
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The device commands, with the defaults the library uses (so the CLI and the API cannot drift)."""
    from ..mcu.deploy import deploy
    from ..mcu.measure import measure_board
    from ..mcu.profile import profile
    from ..sweep import SweepConfig

    p = sub.add_parser("deploy", help="UF2 and C sources to run a model on a physical Raspberry Pi Pico")
    p.add_argument("model", help=".pt or .tflite")
    p.add_argument("--board", default=library_default(deploy, "board"))
    p.add_argument("--kernels", default=library_default(deploy, "kernels"),
                   help=f"kernel set ({', '.join(KERNEL_SETS)}; default {library_default(deploy, 'kernels')})")
    p.add_argument("--image", choices=IMAGE_CHOICES, default=library_default(deploy, "image"),
                   help="flash: boots from flash through our boot2, code and weights execute in place (any model "
                        "up to 2 MB, survives power cycles); ram: RAM-only, everything in SRAM (faster, must fit "
                        "264 KB, lost at power-off); auto (default): ram when it fits, else flash")
    p.add_argument("--out", required=True, help="output directory")
    add_data_option(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("measure", help="run test images on a board over UART; energy from a power trace")
    p.add_argument("--port", help="serial port of the board (e.g. /dev/ttyACM0, or a virtual board's pty)")
    p.add_argument("--model", help="the deployed model (.pt or .tflite), to check outputs")
    p.add_argument("--images", type=positive_int, default=20, help="test images to stream (default 20)")
    p.add_argument("--baud", type=positive_int, default=115200)
    p.add_argument("--timeout", type=positive_float, default=library_default(measure_board, "timeout"),
                   help="seconds to wait for each response")
    p.add_argument("--energy-csv", help="power analyzer export with columns time_s,current_a,voltage_v,marker")
    p.add_argument("--json", action="store_true")
    add_data_option(p)
    p.set_defaults(func=cmd_measure)

    p = sub.add_parser("emulate", help="run a deployed firmware.uf2 on a virtual Pico with UART0 on a pty")
    p.add_argument("uf2", help="firmware.uf2 written by `powerprune deploy`")
    p.set_defaults(func=cmd_emulate)

    p = sub.add_parser("profile", help="cycles, per-layer cycles and footprint on the virtual Raspberry Pi Pico")
    p.add_argument("model", help=".pt or .tflite")
    p.add_argument("--kernels", default=library_default(profile, "kernels"),
                   help=f"comma-separated kernel sets ({', '.join(KERNEL_SETS)})")
    p.add_argument("--images", type=positive_int, default=SweepConfig.profile_images,
                   help=f"test images to run (default {SweepConfig.profile_images}, as a run profiles)")
    p.add_argument("--layout", choices=LAYOUTS, default=library_default(profile, "layout"),
                   help="flash: code and weights execute in place from QSPI flash (default); sram: all in SRAM")
    p.add_argument("--xip-miss-cycles", type=non_negative_int, default=DEFAULT_XIP_MISS_CYCLES,
                   help=f"cycles one XIP cache miss costs (default {DEFAULT_XIP_MISS_CYCLES})")
    p.add_argument("--cycle-budget", type=positive_int, default=DEFAULT_CYCLE_BUDGET,
                   help="cycles one inference may take before the run is stopped as a runaway")
    p.add_argument("--cflags", default=None,
                   help=f"compiler flags instead of the default '{' '.join(DEFAULT_CFLAGS)}'")
    p.add_argument("--json", action="store_true")
    add_data_option(p)
    p.set_defaults(func=cmd_profile)
