"""``powerprune measure``: stream test images to a board, check its outputs, report cycles and latency;
optionally compute energy per inference from a power analyzer's trace.

Energy trace CSV (export from Otii, Joulescope, an INA219 logger, ...): a header row with the columns
``time_s``, ``current_a``, ``voltage_v`` and ``marker`` (0/1: the level of the marker pin GP2,
recorded on a digital input of the analyzer). Energy of one inference = the integral of V x I over
each interval where the marker is high (trapezoidal rule).
"""

from __future__ import annotations

import csv
import statistics
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..ir import Graph
from ..reference import run as reference_run
from .emulator import CLOCK_HZ
from .protocol import CMD_INFER, CMD_INFO, call


class MeasureError(RuntimeError):
    pass


@dataclass
class Measurement:
    images: int = 0
    mismatches: int = 0
    cycles: list[int] = field(default_factory=list)
    round_trip_s: list[float] = field(default_factory=list)

    def summary(self) -> dict:
        c = self.cycles or [0]
        return {"images": self.images, "mismatches": self.mismatches, "bit_exact": self.mismatches == 0,
                "cycles_mean": statistics.fmean(c), "cycles_min": min(c), "cycles_max": max(c),
                "latency_ms": statistics.fmean(c) / CLOCK_HZ * 1e3,
                "round_trip_ms": 1e3 * statistics.fmean(self.round_trip_s or [0.0])}


def measure_board(port, graph: Graph, x: np.ndarray, timeout: float = 10.0) -> Measurement:
    """Run every row of ``x`` on the board behind ``port`` (a pyserial-like object)."""
    if graph.dtype != "int8":
        raise MeasureError("measure checks int8 models (float32 only at their boundary) on the board; this one "
                           "is float32 throughout")
    info = call(port, CMD_INFO, timeout=timeout)
    in_size, out_size = struct.unpack("<HH", info)  # bytes (4 per value of a float32 boundary)
    if (in_size, out_size) != (graph.input.nbytes, graph.output.nbytes):
        raise MeasureError(f"the board runs a model with {in_size} input / {out_size} output bytes, "
                           f"this model has {graph.input.nbytes} / {graph.output.nbytes}: deploy it first")
    x = np.ascontiguousarray(x, graph.input.np_dtype)
    expected = reference_run(graph, x).reshape(len(x), -1)
    m = Measurement()
    for row, want in zip(x, expected, strict=True):
        t = time.perf_counter()
        body = call(port, CMD_INFER, row.tobytes(), timeout=timeout)
        m.round_trip_s.append(time.perf_counter() - t)
        got = np.frombuffer(body[:out_size], graph.output.np_dtype)
        (cycles,) = struct.unpack("<I", body[out_size:out_size + 4])
        m.images += 1
        m.mismatches += int(not np.array_equal(got, want))
        m.cycles.append(cycles)
    return m


def energy_from_csv(path: str | Path) -> dict:
    """Energy per inference (mJ) between the marker's rising and falling edges."""
    path = Path(path)
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise MeasureError(f"cannot read {path}: {exc}") from exc
    need = {"time_s", "current_a", "voltage_v", "marker"}
    if not rows or not need <= set(rows[0]):
        raise MeasureError(f"{path}: needs a header with columns {sorted(need)}")
    try:
        t = np.array([float(r["time_s"]) for r in rows])
        p = np.array([float(r["current_a"]) * float(r["voltage_v"]) for r in rows])
        mk = np.array([float(r["marker"]) > 0.5 for r in rows])
    except ValueError as exc:
        raise MeasureError(f"{path}: non-numeric value ({exc})") from exc
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise MeasureError(f"{path}: NaN or infinite time, current or voltage in row "
                           f"{int(np.flatnonzero(~(np.isfinite(t) & np.isfinite(p)))[0]) + 2}")
    edges = np.flatnonzero(np.diff(mk.astype(int)))
    rises = [i + 1 for i in edges if mk[i + 1]]
    falls = [i + 1 for i in edges if not mk[i + 1]]
    energies, durations = [], []
    for r in rises:
        f = next((f for f in falls if f > r), None)
        if f is None:
            break
        seg = slice(r, f + 1)
        energies.append(float(np.trapezoid(p[seg], t[seg])) * 1e3)
        durations.append(float(t[f] - t[r]))
    if not energies:
        raise MeasureError(f"{path}: no complete marker pulse (rising then falling edge) in the trace")
    return {"inferences": len(energies), "energy_mj_mean": statistics.fmean(energies),
            "energy_mj_std": statistics.stdev(energies) if len(energies) > 1 else 0.0,
            "duration_ms_mean": 1e3 * statistics.fmean(durations)}
