"""Python side of the virtual Pico: one Node process (rp2040js) per batch of inputs.

What is emulated: the Cortex-M0+ core instruction by instruction with rp2040js's cycle counts, and
the XIP cache, which we model ourselves (rp2040js reads flash like SRAM). What is not: bus contention,
wait states other than XIP misses, the second core (idle).
"""

from __future__ import annotations

import base64
import json
import queue
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from .build import Firmware
from .elf import read_elf

CLOCK_HZ = 125_000_000
# One XIP cache miss refills an 8-byte line over QSPI with SCK = clk_sys / 2 (the Pico's default
# divider). Counting SCK edges of a quad-I/O continuous read (no command byte: 6 address + 2 mode
# + 4 dummy + 16 data clocks = 28 SCK) gives 56 clk_sys cycles; the SSI overlaps part of that with
# the bus transfer, and the project uses about 40 cycles at 125 MHz as its default. The choice
# barely moves the ratios we report: BENCHMARKS.md shows 40 vs 56. Change it with --xip-miss-cycles.
DEFAULT_XIP_MISS_CYCLES = 40
DEFAULT_CYCLE_BUDGET = 500_000_000  # per inference: 4 s of Pico time; a runaway stops here
# The wall-clock guard on one runner process, on top of the cycle budget (which catches firmware that
# runs away): it catches a runner that stops making progress at all. rp2040js emulates 5-20 M cycles
# per second here, so allowing 1 M per second of the whole budget is never reached by a working run.
MIN_CYCLES_PER_WALL_SECOND = 1_000_000
RUNNER_START_SECONDS = 60
EXIT_GRACE_SECONDS = 10  # after its result, how long the runner may take to exit before it is killed


class EmulatorError(RuntimeError):
    pass


@dataclass
class Inference:
    cycles: int
    layer_cycles: list[int]
    instructions: int
    output: np.ndarray
    xip_hits: int
    xip_misses: int
    probes: list[bytes] = field(default_factory=list)  # the bytes each requested probe copied


@dataclass
class EmulatorRun:
    inferences: list[Inference] = field(default_factory=list)
    boot_cycles: int = 0
    wall_seconds: float = 0.0
    instructions_total: int = 0

    @property
    def outputs(self) -> np.ndarray:
        return np.stack([r.output for r in self.inferences])

    @property
    def mips(self) -> float:
        return self.instructions_total / max(self.wall_seconds, 1e-9) / 1e6


def runner_dir() -> Path:
    return Path(str(resources.files("powerprune.mcu") / "runner"))


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise EmulatorError("node not found; install nodejs (or run `make setup`)")
    if not (runner_dir() / "node_modules" / "rp2040js").is_dir():
        raise EmulatorError(f"rp2040js is not installed; run `npm ci` in {runner_dir()} (or `make setup`)")
    return node


def run_firmware(fw: Firmware, inputs: np.ndarray, output_size: int, *, output_dtype: type = np.int8,
                 xip: bool | None = None, xip_miss_cycles: int = DEFAULT_XIP_MISS_CYCLES,
                 cycle_budget: int = DEFAULT_CYCLE_BUDGET,
                 probes: tuple[tuple[int, int, int], ...] = ()) -> EmulatorRun:
    """Run every row of ``inputs`` through the firmware on the virtual Pico. The firmware's buffers are
    bytes: each row goes in as the bytes of its dtype (int8, or float32 for a float input) and
    ``output_size`` values of ``output_dtype`` come back. ``probes`` are (layer, SRAM address, bytes):
    what that address holds when the layer has finished, per inference (how a test sees an
    intermediate tensor without changing the firmware)."""
    out_bytes = int(output_size) * np.dtype(output_dtype).itemsize
    image = read_elf(fw.elf)
    vectors = image.symbol("pp_vectors")
    seg_bytes = {s.paddr: s.data for s in image.segments}
    # initial stack pointer = first word of the vector table, as the hardware does
    sp = next(int.from_bytes(d[vectors - a:vectors - a + 4], "little")
              for a, d in seg_bytes.items() if a <= vectors < a + len(d))
    job = {
        "segments": [{"addr": s.paddr, "data": base64.b64encode(s.data).decode()} for s in image.segments],
        "entry": image.symbol("pp_reset_handler"),
        "sp": sp,
        "input_addr": image.symbol("pp_input"),
        "output_addr": image.symbol("pp_output"),
        "output_size": out_bytes,
        "inputs": [base64.b64encode(np.ascontiguousarray(x).tobytes()).decode() for x in inputs],
        "cycle_budget": int(cycle_budget),
        "xip": {"enabled": fw.layout == "flash" if xip is None else xip, "miss_cycles": int(xip_miss_cycles)},
        "probes": [{"layer": int(k), "addr": int(a), "size": int(n)} for k, a, n in probes],
    }
    total_budget = int(cycle_budget) * (len(inputs) + 1)  # +1: boot and the way to the first marker
    timeout = RUNNER_START_SECONDS + total_budget / MIN_CYCLES_PER_WALL_SECOND
    stdout, stderr, status = _run_runner(json.dumps(job), timeout)
    try:
        res = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError) as exc:
        raise EmulatorError(f"virtual Pico runner failed ({status}): {stderr.strip()[-2000:]}") from exc
    if "error" in res:
        raise EmulatorError(f"virtual Pico: {res['error']}")
    run = EmulatorRun(boot_cycles=res["boot_cycles"], wall_seconds=res["wall_seconds"],
                      instructions_total=res["instructions_total"])
    for r in res["results"]:
        out = np.frombuffer(base64.b64decode(r["output"]), output_dtype).copy()
        run.inferences.append(Inference(r["cycles"], r["layer_cycles"], r["instructions"], out,
                                        r["xip_hits"], r["xip_misses"],
                                        [base64.b64decode(b) for b in r.get("probes", [])]))
    return run


def _run_runner(job: str, timeout: float) -> tuple[str, str, str]:
    """Run run.mjs on ``job``: (stdout, stderr, how it ended). The runner writes one JSON line, its
    result, and exits. Node 20 has been seen to hang for good while exiting after that line (every
    thread parked on a futex), so the result is taken as soon as its line is complete and the process
    gets EXIT_GRACE_SECONDS to go before it is killed; a runner with no result within ``timeout``
    seconds of wall-clock time is killed, too."""
    proc = subprocess.Popen([node_executable(), str(runner_dir() / "run.mjs")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str | None] = queue.Queue()
    errors: list[str] = []

    def pump_stdout() -> None:
        for line in proc.stdout:
            lines.put(line)
        lines.put(None)

    readers = [threading.Thread(target=pump_stdout, daemon=True),
               threading.Thread(target=lambda: errors.append(proc.stderr.read()), daemon=True)]
    for t in readers:
        t.start()
    try:
        proc.stdin.write(job)
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the runner died before reading its job: its stderr says why
    out, status, deadline = [], "", time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            status = f"no result within {timeout:.0f} s of wall-clock time, killed"
            break
        if line is None:
            break
        out.append(line)
        if line.endswith("\n"):
            break  # the runner's one line: its result
    try:
        code = proc.wait(timeout=EXIT_GRACE_SECONDS)
        status = status or f"exit {code}"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        status = status or "hung after writing its result, killed"
    readers[1].join(timeout=1)
    return "".join(out), "".join(errors), status
