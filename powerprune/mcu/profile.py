"""Profile int8 models on the virtual Pico: cycles (total and per layer), footprint, bit-exactness."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph
from ..reference import run as reference_run
from .build import DEFAULT_CFLAGS, Firmware, build_firmware
from .emulator import DEFAULT_CYCLE_BUDGET, DEFAULT_XIP_MISS_CYCLES, EmulatorRun, run_firmware


@dataclass
class KernelProfile:
    kernels: str
    layout: str
    cycles: list[int]
    cycles_per_layer: list[float]
    flash_bytes: int
    sram_bytes: int
    arena_bytes: int
    xip_hits: int
    xip_misses: int
    bit_exact: bool
    emulated_mips: float
    wall_seconds: float
    elf: str = ""
    layer_kernels: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        c = np.array(self.cycles)
        return {
            "cycles_mean": float(c.mean()), "cycles_min": int(c.min()), "cycles_max": int(c.max()),
            "cycles_per_layer": self.cycles_per_layer, "flash_bytes": self.flash_bytes,
            "sram_bytes": self.sram_bytes, "arena_bytes": self.arena_bytes, "xip_hits": self.xip_hits,
            "xip_misses": self.xip_misses, "bit_exact": self.bit_exact, "layout": self.layout,
            "emulated_mips": round(self.emulated_mips, 2), "wall_seconds": round(self.wall_seconds, 3),
            "layer_kernels": self.layer_kernels,
        }


def _build_and_run(graph: Graph, x: np.ndarray, kernels: str, layout: str, xip_miss_cycles: int,
                   cycle_budget: int, cflags: tuple[str, ...]) -> tuple[Firmware, EmulatorRun]:
    fw = build_firmware(graph, kernels, layout, cflags)
    x = np.ascontiguousarray(x, graph.input.np_dtype)  # the bytes the firmware reads
    run = run_firmware(fw, x, graph.output.size, output_dtype=graph.output.np_dtype,
                       xip_miss_cycles=xip_miss_cycles, cycle_budget=cycle_budget)
    for r in run.inferences:
        r.output = r.output.reshape(graph.output.shape)
    return fw, run


def run_on_rp2040(graph: Graph, x: np.ndarray, kernels: str = "tflm-ref", layout: str = "flash",
                  xip_miss_cycles: int = DEFAULT_XIP_MISS_CYCLES,
                  cycle_budget: int = DEFAULT_CYCLE_BUDGET, cflags: tuple[str, ...] = DEFAULT_CFLAGS) -> EmulatorRun:
    return _build_and_run(graph, x, kernels, layout, xip_miss_cycles, cycle_budget, cflags)[1]


def profile(graph: Graph, x: np.ndarray, kernels: str = "tflm-ref", layout: str = "flash",
            xip_miss_cycles: int = DEFAULT_XIP_MISS_CYCLES, cycle_budget: int = DEFAULT_CYCLE_BUDGET,
            cflags: tuple[str, ...] = DEFAULT_CFLAGS) -> KernelProfile:
    """Build, run ``x`` through the virtual Pico, and compare every output with the host reference."""
    fw, run = _build_and_run(graph, x, kernels, layout, xip_miss_cycles, cycle_budget, cflags)
    expected = reference_run(graph, np.asarray(x, graph.input.np_dtype)).reshape(len(x), -1)
    exact = bool(np.array_equal(run.outputs.reshape(len(x), -1), expected))
    layer = np.array([r.layer_cycles for r in run.inferences], dtype=np.float64).mean(axis=0)
    return KernelProfile(
        kernels=kernels, layout=layout, cycles=[r.cycles for r in run.inferences],
        cycles_per_layer=[round(float(v), 1) for v in layer], flash_bytes=fw.flash_bytes,
        sram_bytes=fw.sram_bytes, arena_bytes=fw.arena_bytes,
        xip_hits=sum(r.xip_hits for r in run.inferences), xip_misses=sum(r.xip_misses for r in run.inferences),
        bit_exact=exact, emulated_mips=run.mips, wall_seconds=run.wall_seconds, elf=str(fw.elf),
        layer_kernels=list(fw.layer_kernels),
    )
