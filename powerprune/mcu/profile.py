"""Profile models on the virtual Pico: cycles (total and per layer), footprint, bit-exactness.

Bit-exact means the Pico's outputs equal the host reference's bit for bit, with one exception: a
float32 model that ends in SOFTMAX. Its exponentials come from newlib's expf on the Pico and from the
host C library's expf in the reference (the one TFLM calls there), and the two round some arguments one
bit apart; the sum and the divisions then carry that into outputs up to a few ulp away. For such a
model every other step is still checked bit for bit: the SOFTMAX's input is read from the Pico's
memory and must equal the host's; newlib's expf is run on the virtual Pico for exactly the arguments
the host computes, and must lie within ``EXPF_ULP`` of the host's expf; and the SOFTMAX's output must
equal, bit for bit, TFLM's softmax computed on the host with newlib's exponentials.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..ir import Graph
from ..reference import expf, softmax_arguments, softmax_from_exponentials
from ..reference import run as reference_run
from .autotune import auto_plan
from .build import DEFAULT_CFLAGS, Firmware, build_expf_firmware, build_firmware
from .elf import read_elf
from .emulator import DEFAULT_CYCLE_BUDGET, DEFAULT_XIP_MISS_CYCLES, EmulatorRun, run_firmware

EXPF_ULP = 1  # newlib's expf against the host's: the one difference a float32 model may show


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
    output_max_ulp: int = 0       # float32: the largest distance of an output from the host's, in ulp
    expf_max_ulp: int = 0         # a final float32 SOFTMAX: newlib's expf against the host's, in ulp

    def summary(self) -> dict:
        c = np.array(self.cycles)
        return {
            "cycles_mean": float(c.mean()), "cycles_min": int(c.min()), "cycles_max": int(c.max()),
            "cycles_per_layer": self.cycles_per_layer, "flash_bytes": self.flash_bytes,
            "sram_bytes": self.sram_bytes, "arena_bytes": self.arena_bytes, "xip_hits": self.xip_hits,
            "xip_misses": self.xip_misses, "bit_exact": self.bit_exact, "layout": self.layout,
            "emulated_mips": round(self.emulated_mips, 2), "wall_seconds": round(self.wall_seconds, 3),
            "layer_kernels": self.layer_kernels, "output_max_ulp": self.output_max_ulp,
            "expf_max_ulp": self.expf_max_ulp,
        }


def _ends_in_softmax(graph: Graph) -> bool:
    return graph.dtype == "float32" and len(graph.layers) > 1 and graph.layers[-1].op == "SOFTMAX"


def _softmax_input_probe(graph: Graph, fw: Firmware) -> tuple[tuple[int, int, int], ...]:
    """(layer, address, bytes) of a final float32 SOFTMAX's input, read when the layer before it is done."""
    if not _ends_in_softmax(graph):
        return ()
    k = len(graph.layers) - 2
    return ((k, read_elf(fw.elf).symbol("pp_arena") + fw.layer_offsets[k], graph.layers[k].output.nbytes),)


def _build_and_run(graph: Graph, x: np.ndarray, kernels: str, layout: str, xip_miss_cycles: int,
                   cycle_budget: int, cflags: tuple[str, ...]) -> tuple[Firmware, EmulatorRun]:
    # auto runs the plan measured for it (mcu/autotune.py), so it never loses to dense or sparse
    plan = auto_plan(graph, layout, cflags, xip_miss_cycles) if kernels == "auto" else None
    fw = build_firmware(graph, kernels, layout, cflags, plan=plan)
    x = np.ascontiguousarray(x, graph.input.np_dtype)  # the bytes the firmware reads
    run = run_firmware(fw, x, graph.output.size, output_dtype=graph.output.np_dtype,
                       xip_miss_cycles=xip_miss_cycles, cycle_budget=cycle_budget,
                       probes=_softmax_input_probe(graph, fw))
    for r in run.inferences:
        r.output = r.output.reshape(graph.output.shape)
    return fw, run


def ulp_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """How many float32 values lie between a and b (0: equal; +0 and -0 count as equal)."""
    def ordered(v: np.ndarray) -> np.ndarray:
        bits = np.ascontiguousarray(v, np.float32).view(np.int32).astype(np.int64)
        return np.where(bits < 0, -(2**31) - bits, bits)  # negative floats count down from -0

    return np.abs(ordered(a) - ordered(b))


def newlib_expf(x: np.ndarray) -> np.ndarray:
    """newlib's expf, run on the virtual Pico, for every row of ``x`` (2-D float32)."""
    fw = build_expf_firmware(x.shape[1])
    return run_firmware(fw, np.ascontiguousarray(x, np.float32), x.shape[1], output_dtype=np.float32
                        ).outputs.reshape(x.shape)


@dataclass(frozen=True)
class OutputCheck:
    bit_exact: bool       # in the sense of this module's docstring
    max_ulp: int          # the largest distance of an output from the host reference's
    expf_max_ulp: int = 0  # a final float32 SOFTMAX: newlib's expf against the host's


def check_outputs(graph: Graph, x: np.ndarray, run: EmulatorRun) -> OutputCheck:
    """The Pico's outputs against the host reference (this module's docstring says what is exact)."""
    x = np.asarray(x, graph.input.np_dtype)
    got = run.outputs.reshape(len(x), -1)
    expected = reference_run(graph, x).reshape(len(x), -1)
    if graph.dtype != "float32":  # int8 (a float boundary's DEQUANTIZE is exact arithmetic, too)
        return OutputCheck(bool(np.array_equal(got, expected)), 0)
    ulp = int(ulp_distance(got, expected).max(initial=0))
    if not _ends_in_softmax(graph):
        return OutputCheck(bool(np.array_equal(got.view(np.uint32), expected.view(np.uint32))), ulp)
    softmax = graph.layers[-1]
    logits = reference_run(Graph(graph.input, graph.layers[:-1], graph.name), x).reshape(len(x), -1)
    pico_logits = np.stack([np.frombuffer(r.probes[0], np.uint32) for r in run.inferences])
    args = softmax_arguments(logits.reshape(-1, softmax.output.shape[-1]), softmax.beta)
    theirs = newlib_expf(args)
    expf_ulp = int(ulp_distance(theirs, expf(args)).max(initial=0))
    want = softmax_from_exponentials(theirs).reshape(len(x), -1)
    exact = (np.array_equal(pico_logits, logits.view(np.uint32)) and expf_ulp <= EXPF_ULP
             and np.array_equal(got.view(np.uint32), want.view(np.uint32)))
    return OutputCheck(bool(exact), ulp, expf_ulp)


def run_on_rp2040(graph: Graph, x: np.ndarray, kernels: str = "tflm-ref", layout: str = "flash",
                  xip_miss_cycles: int = DEFAULT_XIP_MISS_CYCLES,
                  cycle_budget: int = DEFAULT_CYCLE_BUDGET, cflags: tuple[str, ...] = DEFAULT_CFLAGS) -> EmulatorRun:
    return _build_and_run(graph, x, kernels, layout, xip_miss_cycles, cycle_budget, cflags)[1]


def profile(graph: Graph, x: np.ndarray, kernels: str = "tflm-ref", layout: str = "flash",
            xip_miss_cycles: int = DEFAULT_XIP_MISS_CYCLES, cycle_budget: int = DEFAULT_CYCLE_BUDGET,
            cflags: tuple[str, ...] = DEFAULT_CFLAGS) -> KernelProfile:
    """Build, run ``x`` through the virtual Pico, and compare every output with the host reference."""
    fw, run = _build_and_run(graph, x, kernels, layout, xip_miss_cycles, cycle_budget, cflags)
    check = check_outputs(graph, x, run)
    layer = np.array([r.layer_cycles for r in run.inferences], dtype=np.float64).mean(axis=0)
    return KernelProfile(
        kernels=kernels, layout=layout, cycles=[r.cycles for r in run.inferences],
        cycles_per_layer=[round(float(v), 1) for v in layer], flash_bytes=fw.flash_bytes,
        sram_bytes=fw.sram_bytes, arena_bytes=fw.arena_bytes,
        xip_hits=sum(r.xip_hits for r in run.inferences), xip_misses=sum(r.xip_misses for r in run.inferences),
        bit_exact=check.bit_exact, emulated_mips=run.mips, wall_seconds=run.wall_seconds, elf=str(fw.elf),
        layer_kernels=list(fw.layer_kernels), output_max_ulp=check.max_ulp, expf_max_ulp=check.expf_max_ulp,
    )
