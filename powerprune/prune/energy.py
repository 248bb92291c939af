"""Energy-aware pruning: spend the accuracy budget where the target board spends its cycles.

Magnitude and APoZ rank weights and channels by how little they matter, never by what they cost. On
the Pico a weight of LeNet-5's first conv is used at 784 pixels and one of its first FC layer once, and
every output element pays a fixed requantization cost, so a parameter is a poor measure of energy. This
method grows the pruning greedily (in the spirit of NetAdapt, Yang et al. 2018): at every step it tries
each candidate action,

* remove the least active channels of a layer (APoZ ranking; the network is rebuilt smaller), or
* drop the smallest remaining weights of a layer (magnitude ranking, any network),

predicts the cycles each saves with the target's kernel cost model, measures the loss each costs on
held-out training images, and takes the one with the least loss per unit saved. The cost model is
passed in (``cycles``, a ``LayerCycles``), so pruning knows no board: the sweep and the CLI pass the
Pico's (``mcu.costmodel.auto_cycles``, the ``auto`` kernel set: the cheaper of dense and sparse per
layer, fitted on the virtual Pico), and another board's model plugs in the same way.
Fine-tuning epochs are spread along the way (iterative prune and fine-tune) with the rest at the end.

The stopping rule is the budget: a compression rate (the parameter budget the paper's methods get, so
the three are compared at equal size), an energy budget (a fraction of the starting model's predicted
kernel cycles), or an accuracy budget (the largest validation accuracy drop allowed; the smallest
model found within it is returned).

The search never buys cycles with a network that no longer carries information. A cheap plan can empty a
layer: its last channels never fire on the validation images, the network outputs a constant, and
fine-tuning cannot bring it back (a LeNet at widths [1, 5, 18, 57] ended at 10.00 %, chance, and was once
reported as a finding). So an action is refused when it leaves a layer with no channel that is active on
the validation images, or leaves the validation accuracy within ``CHANCE_MARGIN`` of chance; and the
validation accuracy is checked again after every fine-tuning, where a budget that ends at chance is
refused in one line (``CollapseError``) instead of returning a dead model.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..counts import layer_macs
from ..data import Dataset
from ..metrics import layer_outputs, model_stats, widths
from ..results import CHANCE_MARGIN, chance_accuracy
from ..seqnet import SeqNet, rebuild_seqnet
from ..train import Recipe, fit
from .apoz import keep_indices, measure_apoz, prunable

WEIGHT_STEP = 0.2    # a weight action drops this fraction of a layer's remaining weights
CHANNEL_STEP = 0.125  # a channel action removes this fraction of a layer's channels (at least one)
MIN_LOSS = 1e-4      # loss increases below this count as free, so the bigger saving wins
VALIDATION = 2000    # training images held out to score actions (never the test set)


class CollapseError(ValueError):
    """The budget cannot be met without collapsing the network to chance accuracy."""


@dataclass(frozen=True)
class Budget:
    """Exactly one of: compression (dense params / nonzero params), energy (fraction of the start's
    predicted cycles), accuracy_drop (fraction, e.g. 0.01 for one point)."""

    compression: float | None = None
    energy: float | None = None
    accuracy_drop: float | None = None

    def check(self) -> Budget:
        given = [v for v in (self.compression, self.energy, self.accuracy_drop) if v is not None]
        if len(given) != 1:
            raise ValueError("energy pruning needs exactly one budget: compression, energy or accuracy")
        if self.energy is not None and not 0 < self.energy < 1:
            raise ValueError(f"energy budget must be a fraction in (0, 1), got {self.energy}")
        if self.accuracy_drop is not None and not 0 <= self.accuracy_drop < 1:
            raise ValueError(f"accuracy budget must be a fraction in [0, 1), got {self.accuracy_drop}")
        return self

    def describe(self) -> str:
        """The budget as a user asked for it, for messages."""
        if self.compression is not None:
            return f"compression {self.compression:g}x"
        if self.energy is not None:
            return f"energy budget {self.energy:g} (E/{1 / self.energy:.3g})"
        return f"accuracy budget {self.accuracy_drop:g}"


class LayerCycles(Protocol):
    """A board's kernel cost model: predicted cycles of one conv/FC layer from its sizes alone, so
    pruning can plan on a float model before anything is quantized."""

    def __call__(self, op: str, macs: float, nonzero_macs: float, outputs: int) -> float: ...


def model_cycles(model: SeqNet, cycles: LayerCycles) -> dict[str, float]:
    """Predicted kernel cycles of every conv/FC layer of the float model, by the cost model ``cycles``."""
    out = {}
    for name, shape in layer_outputs(model).items():
        layer = getattr(model, name)
        w = layer.weight
        nz = int(model.masks[name].sum()) if name in model.masks else int(torch.count_nonzero(w))
        op = "FULLY_CONNECTED" if isinstance(layer, nn.Linear) else "CONV_2D"
        macs = layer_macs(w.numel(), shape, op, "CHW")
        depthwise = isinstance(layer, nn.Conv2d) and layer.groups > 1
        out[name] = cycles(op, macs, macs if depthwise else layer_macs(nz, shape, op, "CHW"), int(np.prod(shape)))
    return out


def _nonzero_params(model: SeqNet) -> int:
    return model_stats(model).nonzero_params


@torch.no_grad()
def _loss_and_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    return float(nn.functional.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def _drop_weights(model: SeqNet, name: str, remove: int) -> SeqNet:
    """A copy of ``model`` with the ``remove`` smallest remaining weights of ``name`` masked."""
    new = copy.deepcopy(model)
    w = getattr(new, name).weight.detach()
    mask = new.masks.get(name, torch.ones_like(w))
    keep = _kept_weights(new, name) - remove
    score = (w.abs() + 1.0) * mask  # masked weights score 0, every kept one scores above them
    idx = torch.argsort(score.flatten(), descending=True, stable=True)[:keep]
    flat = torch.zeros(w.numel())
    flat[idx] = 1.0
    new.masks[name] = flat.view_as(w)
    new.apply_masks()
    return new


def _drop_channels(model: SeqNet, name: str, remove: int, apoz: dict[str, np.ndarray]) -> SeqNet:
    widths = {layer: len(a) - (remove if layer == name else 0) for layer, a in apoz.items()}
    return rebuild_seqnet(model, keep_indices(apoz, widths))


def _kept_weights(model: SeqNet, name: str) -> int:
    return int(model.masks[name].sum()) if name in model.masks else getattr(model, name).weight.numel()


def _break_even_keep(model: SeqNet, name: str, cycles: LayerCycles) -> int | None:
    """For a layer on the dense kernel, the weight count below which the sparse kernel gets cheaper:
    smaller steps would save no cycles at all there."""
    base = model_cycles(model, cycles)[name]
    n = _kept_weights(model, name)
    lo, hi = 0, n
    while lo < hi:  # largest keep whose predicted cost is below the current one
        mid = (lo + hi + 1) // 2
        if model_cycles(_drop_weights(model, name, n - mid), cycles)[name] < base - 1e-6:
            lo = mid
        else:
            hi = mid - 1
    return lo if lo < n else None


class _Search:
    def __init__(self, model: SeqNet, budget: Budget, val: Dataset, reference_params: int,
                 layer_cycles: LayerCycles):
        self.layer_cycles = layer_cycles
        self.budget = budget
        self.val = val
        self.x = torch.from_numpy(val.as_float())
        self.y = torch.from_numpy(val.labels)
        self.chance = chance_accuracy(val.labels)
        self.start_cycles = self.cycles(model)
        self.start_params = _nonzero_params(model)
        self.target_params = reference_params / budget.compression if budget.compression else None
        self.target_cycles = self.start_cycles * budget.energy if budget.energy else None

    def per_layer(self, model: SeqNet) -> dict[str, float]:
        return model_cycles(model, self.layer_cycles)

    def cycles(self, model: SeqNet) -> float:
        return sum(self.per_layer(model).values())

    def done(self, model: SeqNet) -> bool:
        if self.target_params is not None:
            return _nonzero_params(model) <= self.target_params * 1.002
        if self.target_cycles is not None:
            return self.cycles(model) <= self.target_cycles
        return False

    def progress(self, model: SeqNet) -> float:
        """0 at the start, 1 at the budget (log scale, as compression rates are spaced)."""
        if self.target_params is not None:
            return math.log(self.start_params / _nonzero_params(model)) / math.log(
                max(self.start_params / self.target_params, 1 + 1e-9))
        if self.target_cycles is not None:
            return math.log(self.start_cycles / self.cycles(model)) / math.log(1 / self.budget.energy)
        return 0.0

    def collapsed(self, accuracy: float) -> bool:
        """Whether a validation accuracy is indistinguishable from answering the majority class."""
        return accuracy <= self.chance + CHANCE_MARGIN

    def candidates(self, model: SeqNet) -> list[tuple[str, str, SeqNet]]:
        out: list[tuple[str, str, SeqNet]] = []
        params = _nonzero_params(model)
        room = None if self.target_params is None else params - round(self.target_params)
        per_layer = self.per_layer(model)
        if prunable(model):
            apoz = measure_apoz(model, self.val)
            for name in apoz:
                width = getattr(model, name).weight.shape[0]
                remove = max(1, round(CHANNEL_STEP * width))
                if width - remove < 1:
                    continue
                kept = np.sort(apoz[name])[:width - remove]  # the most active channels stay
                if kept.min() >= 1.0:
                    continue  # every channel left would be zero on every validation image: a dead layer
                cand = _drop_channels(model, name, remove, apoz)
                if room is not None and params - _nonzero_params(cand) > room * 1.002 + 1:
                    continue  # would overshoot the parameter budget
                out.append(("channels", name, cand))
        for name in model.layer_names:
            layer = getattr(model, name)
            if isinstance(layer, nn.Conv2d) and layer.groups > 1:
                continue  # no sparse depthwise kernel: zeros there would save nothing
            n = _kept_weights(model, name)
            remove = max(1, round(WEIGHT_STEP * n))
            if self.target_params is None:
                trial = _drop_weights(model, name, remove)
                if self.per_layer(trial)[name] >= per_layer[name] - 1e-6:
                    keep = _break_even_keep(model, name, self.layer_cycles)
                    if keep is None:
                        continue
                    remove = n - keep
            if room is not None:
                remove = min(remove, room)
            if remove < 1 or n - remove < 1:
                continue
            out.append(("weights", name, _drop_weights(model, name, remove)))
        return out

    def step(self, model: SeqNet) -> tuple[SeqNet, dict] | None:
        """The best action from ``model``, or None when nothing is left to prune."""
        loss0, _ = _loss_and_accuracy(model, self.x, self.y)
        cycles0, params0 = self.cycles(model), _nonzero_params(model)
        best = None
        for kind, name, cand in self.candidates(model):
            loss, acc = _loss_and_accuracy(cand, self.x, self.y)
            if self.collapsed(acc):
                continue  # at chance the network carries no information, whatever it saves
            cycles, params = self.cycles(cand), _nonzero_params(cand)
            benefit = (cycles0 - cycles) / self.start_cycles
            if self.target_params is not None:
                benefit += (params0 - params) / self.start_params
            if benefit <= 0:
                continue
            score = max(loss - loss0, MIN_LOSS) / benefit
            if best is None or score < best[0]:
                best = (score, cand, {"action": kind, "layer": name, "loss": round(loss, 4),
                                      "val_accuracy": round(acc, 4), "predicted_cycles": round(cycles),
                                      "nonzero_params": params})
        return None if best is None else (best[1], best[2])


def energy_prune(model: SeqNet, train_data: Dataset, budget: Budget, finetune: Recipe,
                 reference_params: int, cycles: LayerCycles, progress: bool = True) -> tuple[SeqNet, list[dict]]:
    """Greedy energy-aware pruning with interleaved fine-tuning, pricing every action with the cost
    model ``cycles``; returns the model and its history."""
    budget.check()
    n_val = min(VALIDATION, max(1, len(train_data) // 5))
    val = Dataset(train_data.images[-n_val:], train_data.labels[-n_val:])
    fit_data = Dataset(train_data.images[:-n_val], train_data.labels[:-n_val])
    search = _Search(model, budget, val, reference_params, cycles)
    history: list[dict] = [{"step": "energy start", "predicted_cycles": round(search.start_cycles),
                            "nonzero_params": search.start_params}]
    _, acc_start = _loss_and_accuracy(model, search.x, search.y)
    intermediate = min(4, finetune.epochs - 1)
    epoch = 0

    def tune(m: SeqNet, epochs: int, tag: str) -> None:
        nonlocal epoch
        if epochs > 0:
            fit(m, fit_data, replace(finetune, epochs=epochs, seed=finetune.seed + epoch),
                desc=f"finetune energy {tag}", progress=progress)
            epoch += epochs

    def refuse_collapsed(m: SeqNet, when: str) -> None:
        """One line instead of a dead model: fine-tuning could not keep ``m`` above chance."""
        _, acc = _loss_and_accuracy(m, search.x, search.y)
        if search.collapsed(acc):
            raise CollapseError(
                f"{budget.describe()} collapses the network: validation accuracy {acc:.2%} {when} is within "
                f"{CHANCE_MARGIN:.0%} of chance ({search.chance:.2%}) at widths {widths(m)}; choose a larger budget")

    bar = tqdm(desc="energy-aware pruning", unit="action", disable=None if progress else True, leave=False)
    if budget.accuracy_drop is not None:
        # phases that each cut predicted cycles by 15%, a fine-tuning epoch after each; stop at the
        # first phase that leaves the budget and keep the one before it
        accepted = copy.deepcopy(model)
        for phase in range(1, 21):
            goal, exhausted = search.cycles(model) * 0.85, False
            while search.cycles(model) > goal and not exhausted:
                nxt = search.step(model)
                exhausted = nxt is None
                if nxt is not None:
                    model, rec = nxt
                    history.append(rec)
                    bar.update()
            tune(model, 1, f"phase {phase}")
            _, acc = _loss_and_accuracy(model, search.x, search.y)
            history.append({"step": f"phase {phase}", "val_accuracy": round(acc, 4)})
            over = acc_start - acc > budget.accuracy_drop or search.collapsed(acc)
            if over:
                model = accepted
            if over or exhausted:
                break
            accepted = copy.deepcopy(model)
        bar.close()
        tune(model, max(1, finetune.epochs), "final")
        refuse_collapsed(model, "after the final fine-tuning")
        return model, history

    next_phase = 1
    while not search.done(model):
        nxt = search.step(model)
        if nxt is None:
            raise ValueError(
                "energy pruning ran out of actions before reaching the budget: stopped at "
                f"{search.cycles(model):.0f} predicted cycles ({search.cycles(model) / search.start_cycles:.0%} "
                f"of the start), {_nonzero_params(model)} nonzero parameters; what is left is per-output cost "
                "that only channel removal could cut (layers followed by a ReLU), or layers without a sparse "
                "kernel (depthwise)")
        model, rec = nxt
        history.append(rec)
        bar.update()
        bar.set_postfix(cycles=f"{rec['predicted_cycles'] / 1e6:.2f}M", params=rec["nonzero_params"], refresh=False)
        if next_phase <= intermediate and search.progress(model) >= next_phase / (intermediate + 1) \
                and not search.done(model):
            tune(model, 1, f"step {next_phase}/{intermediate}")
            refuse_collapsed(model, f"after fine-tuning step {next_phase}/{intermediate}")
            next_phase += 1
    bar.close()
    tune(model, finetune.epochs - epoch, "final")
    refuse_collapsed(model, "after the final fine-tuning")
    history.append({"step": "energy done", "predicted_cycles": round(search.cycles(model)),
                    "start_cycles": round(search.start_cycles)})
    return model, history
