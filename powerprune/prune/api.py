"""``prune()``: one call from a trained model to a pruned, fine-tuned model at a requested compression."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace

from ..data import Dataset
from ..metrics import dense_reference, model_stats
from ..model import LeNet5, ModelInfo
from ..train import Recipe, accuracy, fit
from .apoz import PRUNABLE, keep_indices, measure_apoz, nearest_reachable, plan_widths, rebuild
from .magnitude import magnitude_masks
from .schedule import PolynomialDecay

METHODS = ("magnitude", "apoz")
TOLERANCE = 0.01  # achieved compression within 1% of the request
# Defaults shared by the CLI, the Python API and `powerprune run` (BENCHMARKS.md measures these).
DEFAULT_FINETUNE = Recipe(epochs=10, lr=1e-3)
DEFAULT_SCHEDULE = "gradual"
DEFAULT_SCOPE = "global"


class PruneError(ValueError):
    """The request cannot be met (bad rate, unknown method, unreachable compression)."""


@dataclass
class PruneResult:
    model: LeNet5
    info: ModelInfo
    compression: float           # achieved, parameters (weights + biases)
    weight_compression: float    # achieved, weights only
    accuracy_before_finetune: float | None
    accuracy_after_finetune: float | None


def _check_request(method: str, compression: float) -> None:
    if method not in METHODS:
        raise PruneError(f"unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")
    if not math.isfinite(compression) or compression < 1:
        raise PruneError(f"compression must be a number >= 1 (got {compression})")


def prune(model: LeNet5, method: str, compression: float, train_data: Dataset,
          test_data: Dataset | None = None, *, finetune: Recipe | None = None,
          schedule: str = DEFAULT_SCHEDULE, scope: str = DEFAULT_SCOPE, apoz_images: int = 10000,
          progress: bool = True) -> PruneResult:
    """Prune a copy of ``model`` to ``compression`` = dense parameters / nonzero parameters.

    magnitude: unstructured; ``schedule`` 'oneshot' prunes then fine-tunes with fixed masks, 'gradual'
    raises sparsity along a cubic PolynomialDecay during fine-tuning. ``scope`` 'global' or 'layer'.
    apoz: structured; channels removed in rounds (compression doubling per round), each followed by
    fine-tuning; the last round lands within 1% of the request. ``finetune.epochs`` is the total.
    """
    _check_request(method, compression)
    finetune = finetune or DEFAULT_FINETUNE
    model = copy.deepcopy(model)
    reference = dense_reference(model)
    target = reference.params / compression
    history: list[dict] = []
    acc_before = None

    def evaluate() -> float | None:
        return accuracy(model, test_data) if test_data is not None else None

    if method == "magnitude":
        stats = model_stats(model)
        biases = stats.nonzero_params - stats.nonzero_weights
        keep = round(target) - biases
        if keep < len(model.layer_names):
            raise PruneError(
                f"compression {compression:g} leaves {round(target)} parameters, fewer than the "
                f"{biases} biases plus one weight per layer; the highest reachable rate is "
                f"{reference.params / (biases + len(model.layer_names)):.1f}")
        if schedule == "oneshot":
            model.masks = magnitude_masks(model, keep, scope)
            model.apply_masks()
            acc_before = evaluate()
            fit(model, train_data, finetune, desc=f"finetune magnitude {compression:g}x", progress=progress)
        elif schedule == "gradual":
            total_w = stats.weights
            steps = math.ceil(len(train_data) / finetune.batch_size) * finetune.epochs
            sched = PolynomialDecay(0.0, 1 - keep / total_w, begin=0, end=max(1, int(0.7 * steps)),
                                    frequency=max(1, steps // 50))

            def on_step(step: int, _total: int) -> None:
                if sched.due(step):
                    kept = keep if step >= sched.end else round(total_w * (1 - sched.sparsity(step)))
                    model.masks = magnitude_masks(model, kept, scope)

            fit(model, train_data, finetune, desc=f"gradual magnitude {compression:g}x",
                on_step=on_step, progress=progress)
            if not model.masks:  # fewer steps than one update: prune at the end
                model.masks = magnitude_masks(model, keep, scope)
                model.apply_masks()
        else:
            raise PruneError(f"unknown schedule {schedule!r}; use 'oneshot' or 'gradual'")
        history.append({"step": "magnitude", "schedule": schedule, "scope": scope, "keep_weights": keep})
    else:
        final = plan_widths(model.arch, target, TOLERANCE)
        if final is None:
            near = nearest_reachable(model.arch, target)
            raise PruneError(
                f"APoZ cannot reach compression {compression:g} within 1%: no channel widths give "
                f"{target:.0f} parameters; the nearest reachable is {near} ({reference.params / near:.2f}x)")
        rounds = max(1, math.ceil(math.log2(compression)))
        per_round = replace(finetune, epochs=max(1, round(finetune.epochs / rounds)))
        apoz_data = train_data.take(apoz_images)
        for r in range(1, rounds + 1):
            if r == rounds:
                widths = final
            else:
                step_target = reference.params / compression ** (r / rounds)
                widths = plan_widths(model.arch, step_target, 0.05, upper=model.arch.widths) or model.arch.widths
                widths = tuple(max(f, w) for f, w in zip(final, widths, strict=True))
            apoz = measure_apoz(model, apoz_data)
            model = rebuild(model, keep_indices(apoz, widths))
            if r == rounds:
                acc_before = evaluate()
            history.append({"step": f"apoz round {r}/{rounds}", "widths": list(widths),
                            "mean_apoz": {n: float(apoz[n].mean()) for n in PRUNABLE}})
            if compression > 1:
                fit(model, train_data, replace(per_round, seed=finetune.seed + r),
                    desc=f"finetune apoz {compression:g}x round {r}/{rounds}", progress=progress)

    stats = model_stats(model)
    achieved = stats.compression(reference.params)
    if abs(achieved / compression - 1) > TOLERANCE + 1e-9:
        raise PruneError(f"reached compression {achieved:.3f}, not within 1% of {compression:g}")
    acc_after = evaluate()
    history.append({"step": "done", "compression": achieved, "accuracy": acc_after})
    info = ModelInfo(method=method, compression_requested=float(compression), history=history)
    model.eval()
    return PruneResult(model, info, achieved, stats.weight_compression(reference.weights), acc_before, acc_after)
