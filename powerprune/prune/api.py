"""``prune()``: one call from a trained model to a pruned, fine-tuned model at a requested compression."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from torch import nn

from ..data import Dataset
from ..metrics import dense_reference, model_stats
from ..model import ModelInfo
from ..results import METHODS  # the names every result row and report use
from ..seqnet import SeqNet, from_torch, rebuild_seqnet
from ..train import Recipe, accuracy, fit
from .apoz import current_widths, keep_indices, measure_apoz, nearest_reachable, plan_channels, prunable
from .energy import Budget, CollapseError, LayerCycles, energy_prune
from .magnitude import magnitude_masks
from .schedule import PolynomialDecay

TOLERANCE = 0.01  # achieved compression within 1% of the request
# Defaults shared by the CLI, the Python API and `powerprune run` (BENCHMARKS.md measures these).
DEFAULT_FINETUNE = Recipe(epochs=10, lr=1e-3)
SCHEDULES = ("oneshot", "gradual")  # magnitude: prune at once, or along a cubic schedule while fine-tuning
SCOPES = ("global", "layer")        # magnitude: rank all weights together, or each layer to the same sparsity
DEFAULT_SCHEDULE = "gradual"
DEFAULT_SCOPE = "global"


class PruneError(ValueError):
    """The request cannot be met (bad rate, unknown method, unreachable compression)."""


@dataclass
class PruneResult:
    model: SeqNet
    info: ModelInfo
    compression: float           # achieved, parameters (weights + biases)
    weight_compression: float    # achieved, weights only
    accuracy_before_finetune: float | None  # on test_data: one-shot magnitude and APoZ's last round
    accuracy_after_finetune: float | None


def _check_request(method: str, compression: float | None) -> None:
    if method not in METHODS:
        raise PruneError(f"unknown pruning method {method!r}; choose one of {', '.join(METHODS)}")
    if compression is None:
        if method != "energy":
            raise PruneError(f"{method} pruning needs a compression rate")
        return
    if not math.isfinite(compression) or compression < 1:
        raise PruneError(f"compression must be a number >= 1 (got {compression})")


def _magnitude(model: SeqNet, keep: int, train_data: Dataset, finetune: Recipe, schedule: str, scope: str,
               tag: str, progress: bool, on_pruned: Callable[[SeqNet], None] = lambda m: None) -> SeqNet:
    """Unstructured pruning to ``keep`` weights, one-shot or along a cubic schedule, with fine-tuning."""
    if schedule == "oneshot":
        model.masks = magnitude_masks(model, keep, scope)
        model.apply_masks()
        on_pruned(model)
        fit(model, train_data, finetune, desc=f"finetune {tag}", progress=progress)
    elif schedule == "gradual":
        total_w = model_stats(model).weights
        steps = math.ceil(len(train_data) / finetune.batch_size) * finetune.epochs
        start = 1 - model_stats(model).nonzero_weights / total_w  # hybrid starts from a smaller net
        sched = PolynomialDecay(start, 1 - keep / total_w, begin=0, end=max(1, int(0.7 * steps)),
                                frequency=max(1, steps // 50))

        def on_step(step: int, _total: int) -> None:
            if sched.due(step):
                kept = keep if step >= sched.end else round(total_w * (1 - sched.sparsity(step)))
                model.masks = magnitude_masks(model, kept, scope)

        fit(model, train_data, finetune, desc=f"gradual {tag}", on_step=on_step, progress=progress)
        if not model.masks:  # fewer steps than one update: prune at the end
            model.masks = magnitude_masks(model, keep, scope)
            model.apply_masks()
    else:
        raise PruneError(f"unknown schedule {schedule!r}; use 'oneshot' or 'gradual'")
    return model


def _weights_to_keep(model: SeqNet, target_params: float, compression: float, reference_params: int) -> int:
    stats = model_stats(model)
    biases = stats.nonzero_params - stats.nonzero_weights
    keep = round(target_params) - biases
    if keep < len(model.layer_names):
        raise PruneError(
            f"compression {compression:g} leaves {round(target_params)} parameters, fewer than the "
            f"{biases} biases plus one weight per layer; the highest reachable rate is "
            f"{reference_params / (biases + len(model.layer_names)):.1f}")
    return keep


def _apoz(model: SeqNet, compression: float, target_params: float, tolerance: float, train_data: Dataset,
          finetune: Recipe, apoz_images: int, reference_params: int, history: list[dict],
          progress: bool, on_pruned: Callable[[SeqNet], None] = lambda m: None) -> SeqNet:
    """Channels removed in rounds (compression doubling per round), each followed by fine-tuning."""
    if not prunable(model):
        raise PruneError("APoZ found no layer whose channels it can remove: it needs conv/linear layers followed "
                         "by a ReLU that feed another conv/linear layer")
    start = current_widths(model)  # every round's widths are as uniform as possible relative to these
    final = plan_channels(model, target_params, tolerance, reference=start)
    if final is None:
        nearest = nearest_reachable(model, target_params)
        near = "" if nearest is None else f"; the nearest reachable is {nearest} parameters"
        raise PruneError(f"APoZ cannot reach compression {compression:g} within {tolerance:.0%}: no channel widths "
                         f"give {target_params:.0f} parameters{near}")
    rounds = max(1, math.ceil(math.log2(compression)))
    per_round = replace(finetune, epochs=max(1, round(finetune.epochs / rounds)))
    apoz_data = train_data.take(apoz_images)
    for r in range(1, rounds + 1):
        if r == rounds:
            widths = final
        else:
            step_target = reference_params / compression ** (r / rounds)
            now = current_widths(model)
            widths = plan_channels(model, step_target, 0.05, upper=now, reference=start) or now
            widths = {n: max(final[n], w) for n, w in widths.items()}
        apoz = measure_apoz(model, apoz_data)
        model = rebuild_seqnet(model, keep_indices(apoz, widths))
        if r == rounds:
            on_pruned(model)
        history.append({"step": f"apoz round {r}/{rounds}", "widths": list(widths.values()),
                        "mean_apoz": {n: float(v.mean()) for n, v in apoz.items()}})
        if compression > 1:
            fit(model, train_data, replace(per_round, seed=finetune.seed + r),
                desc=f"finetune apoz {compression:g}x round {r}/{rounds}", progress=progress)
    return model


def prune(model: nn.Module, method: str, compression: float | None, train_data: Dataset,
          test_data: Dataset | None = None, *, finetune: Recipe | None = None,
          schedule: str = DEFAULT_SCHEDULE, scope: str = DEFAULT_SCOPE, apoz_images: int = 10000,
          energy_budget: float | None = None, accuracy_budget: float | None = None,
          cycles: LayerCycles | None = None, progress: bool = True) -> PruneResult:
    """Prune a copy of ``model`` to ``compression`` = dense parameters / nonzero parameters.

    ``model`` is a SeqNet (such as ``lenet5()``) or any PyTorch network of supported layers (converted with
    ``from_torch`` using the images' shape); ``train_data`` any ``Dataset``.

    magnitude: unstructured; ``schedule`` 'oneshot' prunes then fine-tunes with fixed masks, 'gradual'
    raises sparsity along a cubic PolynomialDecay during fine-tuning. ``scope`` 'global' or 'layer'.
    apoz: structured; channels removed in rounds (compression doubling per round), each followed by
    fine-tuning; the last round lands within 1% of the request.
    hybrid: APoZ to the square root of the rate, then magnitude sparsity (served by the sparse
    kernels) for the rest; fine-tuning split evenly.
    energy: greedy energy-aware pruning (``prune.energy``) to the compression rate, or instead to
    ``energy_budget`` (fraction of the model's predicted cycles) or ``accuracy_budget`` (largest
    validation accuracy drop, a fraction). ``finetune.epochs`` is the total for every method, except
    that an accuracy budget adds one epoch per pruning phase before its final ``finetune.epochs``.
    ``cycles`` is the energy method's cost model of the target board, e.g. the Pico's
    ``powerprune.mcu.costmodel.auto_cycles``.
    """
    if energy_budget is not None or accuracy_budget is not None:
        if method != "energy":
            raise PruneError(f"an energy or accuracy budget is for the energy method, not {method}; "
                             "give the compression rate instead")
        if compression is not None:
            raise PruneError("give the energy method one budget: a compression rate, an energy or an accuracy budget")
    _check_request(method, compression)
    if method == "energy" and cycles is None:
        raise PruneError("the energy method needs the target's cost model: cycles=powerprune.mcu.costmodel.auto_cycles "
                         "for the Pico")
    finetune = finetune or DEFAULT_FINETUNE
    if isinstance(model, SeqNet):
        model = copy.deepcopy(model)
    else:
        h, w, c = train_data.images.shape[1:]
        model = from_torch(model, (c, h, w))
    reference = dense_reference(model)
    history: list[dict] = []
    tag = f"{method} {compression:g}x" if compression is not None else method
    before: list[float] = []

    def on_pruned(m: SeqNet) -> None:
        if test_data is not None:
            before.append(accuracy(m, test_data))

    if method == "magnitude":
        target = reference.params / compression
        keep = _weights_to_keep(model, target, compression, reference.params)
        model = _magnitude(model, keep, train_data, finetune, schedule, scope, tag, progress, on_pruned)
        history.append({"step": "magnitude", "schedule": schedule, "scope": scope, "keep_weights": keep})
    elif method == "apoz":
        model = _apoz(model, compression, reference.params / compression, TOLERANCE, train_data, finetune,
                      apoz_images, reference.params, history, progress, on_pruned)
    elif method == "hybrid":
        structured = math.sqrt(compression)
        half = replace(finetune, epochs=max(1, finetune.epochs // 2))
        model = _apoz(model, structured, reference.params / structured, 0.05, train_data, half,
                      apoz_images, reference.params, history, progress)
        keep = _weights_to_keep(model, reference.params / compression, compression, reference.params)
        rest = replace(finetune, epochs=max(1, finetune.epochs - half.epochs), seed=finetune.seed + 100)
        model = _magnitude(model, keep, train_data, rest, schedule, scope, tag, progress, on_pruned)
        history.append({"step": "magnitude", "schedule": schedule, "scope": scope, "keep_weights": keep})
    else:
        budget = Budget(compression=compression, energy=energy_budget, accuracy_drop=accuracy_budget)
        try:
            model, steps = energy_prune(model, train_data, budget, finetune, reference.params, cycles, progress)
        except CollapseError:
            raise  # kept apart from other refusals: a sweep records it as a problem of that budget
        except ValueError as exc:
            raise PruneError(str(exc)) from exc
        history += steps

    stats = model_stats(model)
    achieved = stats.compression(reference.params)
    if compression is not None and abs(achieved / compression - 1) > TOLERANCE + 1e-9:
        raise PruneError(f"reached compression {achieved:.3f}, not within 1% of {compression:g}")
    acc_after = accuracy(model, test_data) if test_data is not None else None
    history.append({"step": "done", "compression": achieved, "accuracy": acc_after})
    budget_note = {"energy_budget": energy_budget} if energy_budget is not None else (
        {"accuracy_budget": accuracy_budget} if accuracy_budget is not None else {})
    info = ModelInfo(method=method, compression_requested=float(compression or achieved), history=history,
                     reference_params=reference.params, reference_weights=reference.weights, **budget_note)
    model.eval()
    return PruneResult(model, info, achieved, stats.weight_compression(reference.weights),
                       before[-1] if before else None, acc_after)
