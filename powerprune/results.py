"""What a run's results are made of: the row the sweep writes and the report reads, and the names in it.

The sweep (which trains, so needs torch) produces these rows and the report (plain Python on them)
consumes them; neither owns them, so they live here, importing nothing. That keeps ``import
powerprune.report`` free of torch: a report can be rebuilt from a results.json anywhere.
The names of the pruning methods are here too, because every row carries one and the report groups
rows by them; ``prune.api`` checks a request against the same tuple.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields

# The paper's two methods and the two this project adds; every list of methods (the CLI, the sweep,
# the report's tables and plots) is in this order.
PAPER_METHODS = ("magnitude", "apoz")
NEW_METHODS = ("hybrid", "energy")
METHODS = PAPER_METHODS + NEW_METHODS
METHOD_ORDER = ("dense", *METHODS)  # rows and reports list models in this order

STOCK_KERNELS = "tflm-ref"      # the paper's "stock TFLM"
CMSIS_KERNELS = "cmsis-nn"      # the second stock baseline

# an accuracy within this of chance says the model learnt nothing: the energy search refuses such a model
# and the report lists such a row as a problem, never as a finding
CHANCE_MARGIN = 0.02


def chance_accuracy(labels: Iterable[int]) -> float:
    """The accuracy of always answering the most common label: what a network that lost every input
    dependence scores (1/classes on balanced data)."""
    counts = Counter(int(v) for v in labels)
    return max(counts.values()) / sum(counts.values()) if counts else 0.0


NOT_IN_CSV = {"csv": False}  # field metadata: per-layer lists and artifact paths stay in results.json only


@dataclass(frozen=True)
class Measurement:
    """One model on one kernel set as a sweep job measures it: sizes, accuracies, and what the virtual
    Pico counted. Energy needs the board and the seed's dense baseline, so ``Row`` adds it later."""

    seed: int
    method: str                  # "dense" or one of METHODS
    rate: float                  # compression rate asked for (energy method: the energy divisor R)
    kernels: str                 # one of mcu.codegen.KERNEL_SETS
    compression: float           # achieved: dense parameters / nonzero parameters
    params: int
    nonzero_params: int
    macs: int
    nonzero_macs: int
    widths: tuple[int, ...] = field(metadata=NOT_IN_CSV)
    float_accuracy: float
    int8_accuracy: float
    cycles: float                # mean over the profiled images
    cycles_per_layer: tuple[float, ...] = field(metadata=NOT_IN_CSV)
    layer_ops: tuple[str, ...] = field(metadata=NOT_IN_CSV)
    flash_bytes: int
    sram_bytes: int
    xip_misses: float            # per inference
    bit_exact: bool              # the virtual Pico's outputs equal the host reference's
    tflite: str = field(metadata=NOT_IN_CSV)
    elf: str = field(metadata=NOT_IN_CSV)
    # what always answering the test set's most common label scores: an accuracy near it is no finding
    chance_accuracy: float | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class Row(Measurement):
    """One line of results.json: a measurement with its latency, energy, and deltas against the same
    seed's dense model on the stock kernels. The sweep produces these; the report consumes them.

    Savings are quoted against both stock runtimes: TFLM's reference kernels (the paper's baseline,
    ``energy_delta_pct``) and CMSIS-NN (what pico-tflmicro runs, ``energy_delta_cmsis_pct``; None
    when the run did not profile it)."""

    latency_ms: float
    energy_mj: float
    energy_delta_pct: float
    accuracy_delta_pp: float
    energy_delta_cmsis_pct: float | None = None


CSV_COLUMNS = tuple(f.name for f in fields(Row) if f.metadata.get("csv", True))


@dataclass(frozen=True)
class Refusal:
    """A model the sweep did not make: its budget could only be met by a network at chance accuracy
    (``prune.CollapseError``). The report lists it under problems, never among the findings."""

    seed: int
    method: str
    rate: float
    reason: str


def model_label(method: str, rate: float) -> str:
    """'magnitude 4x' (compression); the energy method is asked for energy: 'energy E/4'."""
    if method == "dense":
        return "dense"
    return f"energy E/{rate:g}" if method == "energy" else f"{method} {rate:g}x"
