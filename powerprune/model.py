"""The LeNet-5-like network of the paper, with widths that structured pruning can shrink.

conv 6@5x5 (same) - ReLU - maxpool 2 - conv 16@5x5 (valid) - ReLU - maxpool 2 - FC 120 - ReLU - FC 84 - ReLU
- FC 10: 61,706 parameters at full width. Structured pruning rebuilds the network with smaller widths,
so the widths are the architecture and are saved with the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .seqnet import Maskable, SeqNet, from_spec, spec_for_saving

FORMAT = "powerprune-model"
FORMAT_VERSION = 1


class ModelFileError(RuntimeError):
    """A model file is missing, corrupt, or not a powerprune model."""


@dataclass(frozen=True)
class LeNetArch:
    """Widths of the prunable layers plus the fixed input/output geometry."""

    conv1: int = 6
    conv2: int = 16
    fc1: int = 120
    fc2: int = 84
    num_classes: int = 10
    in_channels: int = 1
    image_size: int = 28

    @property
    def widths(self) -> tuple[int, int, int, int]:
        return (self.conv1, self.conv2, self.fc1, self.fc2)

    @property
    def flat_size(self) -> int:
        # same-padded 5x5 conv keeps the size, pool halves, valid 5x5 conv loses 4, pool halves
        side = ((self.image_size // 2) - 4) // 2
        return self.conv2 * side * side

    def param_count(self) -> int:
        """Weights plus biases, in closed form, so pruning can plan widths without building models."""
        c1, c2, f1, f2 = self.widths
        k = 25
        return (c1 * (k * self.in_channels + 1) + c2 * (k * c1 + 1) + f1 * (self.flat_size + 1)
                + f2 * (f1 + 1) + self.num_classes * (f2 + 1))


class LeNet5(Maskable):
    """The paper's LeNet-5-like CNN, with the widths structured pruning shrinks."""

    def __init__(self, arch: LeNetArch | None = None):
        super().__init__()
        self.arch = arch or LeNetArch()
        a = self.arch
        self.conv1 = nn.Conv2d(a.in_channels, a.conv1, 5, padding=2)
        self.conv2 = nn.Conv2d(a.conv1, a.conv2, 5)
        self.fc1 = nn.Linear(a.flat_size, a.fc1)
        self.fc2 = nn.Linear(a.fc1, a.fc2)
        self.fc3 = nn.Linear(a.fc2, a.num_classes)
        self.pool = nn.MaxPool2d(2)
        self.masks: dict[str, torch.Tensor] = {}

    # The order in which layers run; pruning, quantization and export all walk this.
    layer_names = ("conv1", "conv2", "fc1", "fc2", "fc3")

    def forward(self, x: torch.Tensor, taps: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``taps``, when given, receives the post-ReLU activation of every hidden layer (for APoZ)."""
        def relu(name: str, t: torch.Tensor) -> torch.Tensor:
            t = torch.relu(t)
            if taps is not None:
                taps[name] = t
            return t

        x = self.pool(relu("conv1", self.conv1(x)))
        x = self.pool(relu("conv2", self.conv2(x)))
        x = torch.flatten(x, 1)
        x = relu("fc1", self.fc1(x))
        x = relu("fc2", self.fc2(x))
        return self.fc3(x)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.arch.in_channels, self.arch.image_size, self.arch.image_size)


@dataclass
class ModelInfo:
    """What a model file says about how it was made (recipe, pruning, accuracies)."""

    method: str = "none"
    compression_requested: float = 1.0
    history: list[dict[str, Any]] = field(default_factory=list)
    reference_params: int | None = None   # the dense model compression is measured against
    energy_budget: float | None = None
    accuracy_budget: float | None = None


def save_model(model: Maskable, path: str | Path, info: ModelInfo | None = None) -> None:
    """Write atomically: a crash mid-write never leaves a truncated model behind. A LeNet5 is stored
    by its widths, any other (bring-your-own) network by its layer spec; never as pickled code."""
    path = Path(path)
    if isinstance(model, LeNet5):
        structure = {"arch": asdict(model.arch)}
    elif isinstance(model, SeqNet):
        structure = {"seqnet": spec_for_saving(model)}
    else:
        raise ModelFileError(f"cannot save a {type(model).__name__}; convert it with powerprune.from_torch first")
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        **structure,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "masks": {k: v.cpu() for k, v in model.masks.items()},
        "info": asdict(info or ModelInfo()),
    }
    payload["sha256"] = content_hash(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def content_hash(payload: dict[str, Any]) -> str:
    """SHA-256 of what a model file stores (structure, info, every tensor's name, dtype, shape and
    bytes). torch's zip container has no checksum of its own, so a flipped byte in a weight would
    otherwise load as a slightly different model."""
    h = hashlib.sha256()
    meta = {k: v for k, v in payload.items() if k not in ("state_dict", "masks", "sha256")}
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for group in ("state_dict", "masks"):
        for name, t in sorted(payload[group].items()):
            h.update(f"{group}/{name}/{t.dtype}/{tuple(t.shape)}".encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _check_contents(path: Path, payload: dict[str, Any]) -> None:
    """The stored hash (files written before it existed have none) and finite weights: a model with
    NaN/inf weights would evaluate at chance level and prune 'successfully'."""
    try:
        tensors = {**payload["state_dict"], **payload["masks"]}
        matches = "sha256" not in payload or payload["sha256"] == content_hash(payload)
    except (KeyError, TypeError, AttributeError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is damaged: {type(exc).__name__}: {exc}") from exc
    if not matches:
        raise ModelFileError(f"{path} is damaged: its contents do not match the hash stored when it was saved")
    bad = [k for k, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise ModelFileError(f"{path}: {', '.join(sorted(bad))} contain NaN or infinity")


def load_model(path: str | Path) -> tuple[Maskable, ModelInfo]:
    """One call from a file to a ready model (eval mode) and what is known about it."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged zip/pickle
        raise ModelFileError(f"{path} is not a readable model file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a powerprune model file")
    if payload.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format version {payload.get('version')}, "
                             f"this powerprune reads version {FORMAT_VERSION}")
    _check_contents(path, payload)
    try:
        if "seqnet" in payload:
            model = from_spec(payload["seqnet"])
        else:
            model = LeNet5(LeNetArch(**payload["arch"]))
        model.load_state_dict(payload["state_dict"])
        model.masks = dict(payload["masks"])
        info = ModelInfo(**payload["info"])
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is damaged: {exc}") from exc
    model.eval()
    return model, info
