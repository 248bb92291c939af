"""Training, fine-tuning and evaluation loops (PyTorch, CPU).

The default recipe (Adam, lr 2e-3 with cosine decay to 0, batch 64, 15 epochs, no augmentation)
reaches about 91% test accuracy on FashionMNIST in about 100 s on 2 cores; BENCHMARKS.md has the
measured numbers.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import numerics
from .data import Dataset, DatasetError, check_images, check_labels
from .progress import Progress

numerics.pin_torch()  # this module brings torch in: the same numbers on every machine

OPTIMIZERS = ("adam", "rmsprop")


@dataclass(frozen=True)
class Recipe:
    epochs: int = 15
    lr: float = 2e-3
    batch_size: int = 64
    weight_decay: float = 0.0
    seed: int = 0
    optimizer: str = "adam"  # or "rmsprop", the paper's (Keras's flavour: see make_optimizer)

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose from {list(OPTIMIZERS)}")


# The baseline's training recipe, shared by `powerprune train` and `powerprune run`.
DEFAULT_TRAINING = Recipe()

# The paper's recipe: RMSprop at Keras's default learning rate 1e-3 (what its repository used), batch 64.
# Epochs as in our default recipe, so both networks get the same training budget; ``fit``'s cosine decay
# applies as to every recipe (a constant rate, as Keras keeps it, ends on a noisier model).
PAPER_TRAINING = Recipe(epochs=15, lr=1e-3, batch_size=64, optimizer="rmsprop")

# The recipe each network of ``model.ARCHS`` is trained with by default on the command line: our LeNet
# with ours, the paper's network with the paper's.
ARCH_TRAINING = {"lenet": DEFAULT_TRAINING, "paper": PAPER_TRAINING}


def recipe_for(arch: str) -> Recipe:
    """The default training recipe of the network named ``arch`` (a ``model.ARCHS`` name)."""
    if arch not in ARCH_TRAINING:
        raise ValueError(f"unknown architecture {arch!r}; choose from {list(ARCH_TRAINING)}")
    return ARCH_TRAINING[arch]


def make_optimizer(params: Iterable[nn.Parameter], recipe: Recipe) -> torch.optim.Optimizer:
    """The recipe's optimizer. RMSprop takes Keras's defaults (rho 0.9, eps 1e-7) rather than torch's
    (alpha 0.99, eps 1e-8), so the paper's recipe means what it meant in its repository."""
    if recipe.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=recipe.lr, alpha=0.9, eps=1e-7, weight_decay=recipe.weight_decay)
    return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _tensors(data: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(data.as_float()), torch.from_numpy(data.labels)


def fit(model: nn.Module, data: Dataset, recipe: Recipe, *, desc: str = "train",
        on_step: Callable[[int, int], None] | None = None, progress: bool = True) -> None:
    """Train in place. ``on_step(step, total_steps)`` runs after each optimizer step, before masks are
    re-applied, so a pruning schedule can update the masks there."""
    if len(data) == 0:
        raise DatasetError("no training images")
    check_images(data, getattr(model, "input_shape", None))
    x, y = _tensors(data)
    with torch.no_grad():  # eval mode: one forward that changes no statistics, to know the classes
        model.eval()
        check_labels(data, model(x[:1]).shape[1])
    gen = torch.Generator().manual_seed(recipe.seed)
    steps_per_epoch = math.ceil(len(y) / recipe.batch_size)
    total = steps_per_epoch * recipe.epochs
    opt = make_optimizer(model.parameters(), recipe)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(total, 1))))
    loss_fn = nn.CrossEntropyLoss()
    apply_masks = getattr(model, "apply_masks", lambda: None)  # any nn.Module trains; ours keep zeros
    model.train()
    step = 0
    # off a terminal: one line per epoch
    bar = Progress(total, desc, "step", enabled=progress, line_every=steps_per_epoch, leave=False)
    for _ in range(recipe.epochs):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), recipe.batch_size):
            idx = order[i:i + recipe.batch_size]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if on_step is not None:
                on_step(step, total)
            apply_masks()
            bar.update(note=f"loss {loss.item():.3f}")
    bar.close()
    model.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, data: Dataset, batch_size: int = 1000) -> np.ndarray:
    model.eval()
    check_images(data, getattr(model, "input_shape", None))
    x, _ = _tensors(data)
    return torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]).numpy()


def accuracy(model: nn.Module, data: Dataset) -> float:
    """Top-1 accuracy in [0, 1]."""
    logits = predict_logits(model, data)
    check_labels(data, logits.shape[1])
    return float((logits.argmax(1) == data.labels).mean())
