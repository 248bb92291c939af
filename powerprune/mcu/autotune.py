"""The ``auto`` kernel set's plan, measured: per layer, dense or sparse, whichever the virtual Pico says.

``costmodel`` predicts a layer's cycles from its sizes, which is what pruning needs before anything is
quantized. It cannot promise that ``auto`` never loses: whether a layer's kernel data fit the SRAM
staging budget, how a stream that did not fit thrashes the 16 KB XIP cache, or how a depthwise or 1xN
layer behaves are facts of the whole firmware, not of one layer. So the plan ``auto`` builds with is
measured: run the ``dense`` choice and the ``sparse`` choice of every layer (``kernelsets.auto_choices``)
on the virtual Pico, take each layer's cheaper one, run that mix as well, and keep the cheapest of the
three firmwares. Each is measured on one input twice, a first inference with a cold XIP cache and a
warm one after it, because a small model's choice can differ between the two. By construction ``auto``
then costs at most ``min(dense, sparse)`` cycles on the input it was measured with; our kernels'
cycles hardly depend on the data (no data-dependent branches in the multiply-accumulate loops), so on
other inputs they move only by the requantization's few branches.

Plans are cached on disk next to the firmware cache, keyed by everything that decides the cycles (the
two firmwares' sources, layout, flags, XIP miss cost), so a sweep or a rerun measures each model once.

``POWERPRUNE_AUTO_PLAN=predicted`` skips the measuring: ``auto`` then runs the cost model's plan, as
it did before plans were measured (no emulator needed; no promise against dense or sparse). The test
suite uses it where a test checks kernels rather than plans (tests/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import write_json
from ..ir import Graph
from .build import DEFAULT_CFLAGS, build_firmware, cache_dir, firmware_sources
from .codegen import auto_choices, kernel_plan
from .emulator import DEFAULT_XIP_MISS_CYCLES, run_firmware

PLAN_ENV = "POWERPRUNE_AUTO_PLAN"  # "measured" (the default) or "predicted"
TUNING_SEED = 0  # the tuning input: one seeded uniform row over the input's whole range
PLAN_VERSION = 2  # bump when the way plans are chosen changes: old cached plans are then ignored


@dataclass(frozen=True)
class TunedPlan:
    impls: tuple[str, ...]                 # per layer, what auto runs it as
    chosen: str                            # "dense", "sparse", "mixed" or "only" (nothing to choose)
    cycles: dict[str, int] = field(default_factory=dict)  # per candidate plan: a cold plus a warm inference


def tuning_input(graph: Graph) -> np.ndarray:
    rng = np.random.default_rng(TUNING_SEED)
    if graph.input.is_float:
        return rng.uniform(-1, 1, size=(1,) + graph.input.shape).astype(np.float32)
    return rng.integers(-128, 128, size=(1,) + graph.input.shape, dtype=np.int8)


def _key(graph: Graph, dense: tuple[str, ...], sparse: tuple[str, ...], layout: str, cflags: tuple[str, ...],
         xip_miss_cycles: int) -> str:
    texts = [firmware_sources(graph, "auto", "emu", plan)[0] for plan in (dense, sparse)]
    blob = repr((PLAN_VERSION, [sorted(t.items()) for t in texts], layout, cflags, xip_miss_cycles, TUNING_SEED))
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _plans_dir() -> Path:
    return cache_dir().parent / "auto-plans"


def _candidates(graph: Graph) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """auto's two whole-model candidates: every layer as the dense set runs it, and as sparse does."""
    choices = auto_choices(graph)
    return tuple(c[0] for c in choices), tuple(c[-1] for c in choices)


def _lookup(graph: Graph, layout: str, cflags: tuple[str, ...], xip_miss_cycles: int
            ) -> tuple[tuple[str, ...], tuple[str, ...], Path, TunedPlan | None]:
    """The two candidates, where their measured plan is kept, and that plan if it needs no measuring
    (nothing to choose, or measured before). Generating the candidates' sources for the key is the
    costly part, so tuned_plan does this once."""
    dense, sparse = _candidates(graph)
    if dense == sparse:
        return dense, sparse, _plans_dir(), TunedPlan(dense, "only")  # nothing to measure or keep
    path = _plans_dir() / f"{_key(graph, dense, sparse, layout, cflags, xip_miss_cycles)}.json"
    try:
        cached = json.loads(path.read_text())
        return dense, sparse, path, TunedPlan(tuple(cached["impls"]), cached["chosen"], cached["cycles"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return dense, sparse, path, None  # not measured yet, or a damaged entry (measured again, rewritten)


def cached_plan(graph: Graph, layout: str = "flash", cflags: tuple[str, ...] = DEFAULT_CFLAGS,
                xip_miss_cycles: int = DEFAULT_XIP_MISS_CYCLES) -> TunedPlan | None:
    """The plan ``tuned_plan`` would return, if it needs no measuring (nothing to choose, or measured
    before); None otherwise, and None with ``POWERPRUNE_AUTO_PLAN=predicted``, where auto runs the cost
    model's plan (so a command shows the plan auto will run). For commands that must stay instant, such as
    ``inspect``: the lookup's key generates the candidates' sources, seconds on a large model."""
    if os.environ.get(PLAN_ENV, "measured") == "predicted":
        return None
    return _lookup(graph, layout, cflags, xip_miss_cycles)[3]


def tuned_plan(graph: Graph, layout: str = "flash", cflags: tuple[str, ...] = DEFAULT_CFLAGS,
               xip_miss_cycles: int = DEFAULT_XIP_MISS_CYCLES) -> TunedPlan:
    """The measured plan of ``auto`` for ``graph`` on the virtual Pico's ``layout`` (see the module's
    docstring). Costs up to three emulated firmwares the first time, a file read after that."""
    dense, sparse, path, known = _lookup(graph, layout, cflags, xip_miss_cycles)
    if known is not None:
        return known
    x = tuning_input(graph)

    def measure(plan: tuple[str, ...]) -> list[int]:
        """Total cycles, then each layer's, of the auto firmware built with ``plan``: a first inference
        (cold XIP cache) plus a second (warm), since a device runs both kinds."""
        fw = build_firmware(graph, "auto", layout, cflags, plan=plan)
        run = run_firmware(fw, np.ascontiguousarray(np.concatenate([x, x]), graph.input.np_dtype),
                           graph.output.size, output_dtype=graph.output.np_dtype, xip_miss_cycles=xip_miss_cycles)
        return [sum(r.cycles for r in run.inferences),
                *np.sum([r.layer_cycles for r in run.inferences], axis=0).tolist()]

    measured = {"dense": measure(dense), "sparse": measure(sparse)}
    # each layer on whichever ran it in fewer cycles (a tie keeps dense: less flash, fewer surprises)
    mixed = tuple(d if cd <= cs else s for d, s, cd, cs in
                  zip(dense, sparse, measured["dense"][1:], measured["sparse"][1:], strict=True))
    plans = {"dense": dense, "sparse": sparse}
    if mixed not in (dense, sparse):
        plans["mixed"], measured["mixed"] = mixed, measure(mixed)
    totals = {name: m[0] for name, m in measured.items()}
    chosen = min(totals, key=lambda name: (totals[name], list(plans).index(name)))
    result = TunedPlan(plans[chosen], chosen, totals)
    write_json(path, asdict(result))
    return result


def auto_plan(graph: Graph, layout: str = "flash", cflags: tuple[str, ...] = DEFAULT_CFLAGS,
              xip_miss_cycles: int = DEFAULT_XIP_MISS_CYCLES) -> tuple[str, ...]:
    """What ``auto`` runs ``graph`` as: the measured plan, or the cost model's with
    ``POWERPRUNE_AUTO_PLAN=predicted`` (see the module's docstring)."""
    mode = os.environ.get(PLAN_ENV, "measured")
    if mode == "predicted":
        return tuple(kernel_plan(graph, "auto"))
    if mode != "measured":
        raise ValueError(f"{PLAN_ENV}={mode!r}: use 'measured' (the default) or 'predicted'")
    return tuned_plan(graph, layout, cflags, xip_miss_cycles).impls
