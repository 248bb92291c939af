"""The LeNet-5-like network of the paper as a spec of the general float model (``SeqNet``), and model files.

conv 6@5x5 (same) - ReLU - maxpool 2 - conv 16@5x5 (valid) - ReLU - maxpool 2 - FC 120 - ReLU - FC 84 - ReLU
- FC 10: 61,706 parameters at full width. ``lenet5(arch)`` builds it as a ``SeqNet``, so training,
pruning (structured pruning rebuilds it with smaller widths), quantization and saving treat it like any
other chain; its layers are named by position like every SeqNet's: conv0, conv3, fc7, fc9, fc11.
``paper_cnn()`` is the network the paper's published measurements were made with (3x3 convs, average
pools, 110,742 parameters); ``ARCHS`` names both.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .seqnet import SeqNet, from_spec, spec_for_saving

FORMAT = "powerprune-model"
FORMAT_VERSION = 1
# Files written before LeNet-5 became a SeqNet store its widths ("arch") and name its layers like this.
_OLD_LENET_NAMES = {"conv1": "conv0", "conv2": "conv3", "fc1": "fc7", "fc2": "fc9", "fc3": "fc11"}


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
    def flat_size(self) -> int:
        # same-padded 5x5 conv keeps the size, pool halves, valid 5x5 conv loses 4, pool halves
        side = ((self.image_size // 2) - 4) // 2
        return self.conv2 * side * side


def lenet5(arch: LeNetArch | None = None) -> SeqNet:
    """The paper's LeNet-5-like CNN (full width by default) as a SeqNet."""
    a = arch or LeNetArch()

    def conv(cin: int, cout: int, pad: int) -> dict:
        return {"type": "conv", "in": cin, "out": cout, "kernel": [5, 5], "stride": [1, 1], "padding": [pad, pad],
                "groups": 1}

    pool = {"type": "maxpool", "kernel": [2, 2], "stride": [2, 2]}
    relu = {"type": "relu"}
    spec = [conv(a.in_channels, a.conv1, 2), relu, pool, conv(a.conv1, a.conv2, 0), relu, pool, {"type": "flatten"},
            {"type": "linear", "in": a.flat_size, "out": a.fc1}, relu, {"type": "linear", "in": a.fc1, "out": a.fc2},
            relu, {"type": "linear", "in": a.fc2, "out": a.num_classes}]
    return SeqNet(spec, (a.in_channels, a.image_size, a.image_size))


def paper_cnn(num_classes: int = 10, in_channels: int = 1, image_size: int = 28) -> SeqNet:
    """The network Widmann et al. (EANN 2023) actually measured, as their repository builds it in Keras:
    conv 12@3x3 (valid) - ReLU - avgpool 2 - conv 32@3x3 (valid) - ReLU - avgpool 2 - flatten (800) -
    FC 120 - ReLU - FC 84 - ReLU - FC 10: 110,742 parameters at 28x28x1.

    ``lenet5`` is our LeNet-5 reading of the paper's text; this one is the network behind its
    measured rows, layer for layer. The softmax is left out as in every SeqNet: it does not change
    the argmax, and training applies it inside the cross-entropy loss."""
    def conv(cin: int, cout: int) -> dict:
        return {"type": "conv", "in": cin, "out": cout, "kernel": [3, 3], "stride": [1, 1], "padding": [0, 0],
                "groups": 1}

    pool = {"type": "avgpool", "kernel": [2, 2], "stride": [2, 2]}
    relu = {"type": "relu"}
    side = ((image_size - 2) // 2 - 2) // 2  # valid 3x3 loses 2, the pool halves (floor, as Keras does)
    spec = [conv(in_channels, 12), relu, pool, conv(12, 32), relu, pool, {"type": "flatten"},
            {"type": "linear", "in": 32 * side * side, "out": 120}, relu, {"type": "linear", "in": 120, "out": 84},
            relu, {"type": "linear", "in": 84, "out": num_classes}]
    return SeqNet(spec, (in_channels, image_size, image_size))


# Full-width networks by name, for configs and the command line: "lenet" is the default everywhere,
# "paper" the network of the paper's published measurements.
ARCHS: dict[str, Callable[[], SeqNet]] = {"lenet": lenet5, "paper": paper_cnn}
DEFAULT_ARCH = "lenet"


def build_arch(name: str) -> SeqNet:
    """A freshly initialized full-width network by its ``ARCHS`` name."""
    if name not in ARCHS:
        raise ValueError(f"unknown architecture {name!r}; choose from {list(ARCHS)}")
    return ARCHS[name]()


def _renamed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An old LeNet5 file's state dict or masks under the SeqNet layer names."""
    def new(key: str) -> str:
        layer, dot, rest = key.partition(".")
        return _OLD_LENET_NAMES.get(layer, layer) + dot + rest

    return {new(k): v for k, v in tensors.items()}


@dataclass
class ModelInfo:
    """What a model file says about how it was made (recipe, pruning, accuracies)."""

    method: str = "none"
    compression_requested: float = 1.0
    history: list[dict[str, Any]] = field(default_factory=list)
    reference_params: int | None = None   # the dense model compression is measured against
    reference_weights: int | None = None  # its weights (without biases)
    energy_budget: float | None = None
    accuracy_budget: float | None = None

    def check(self) -> ModelInfo:
        """Every field within what the code that writes it can produce. A file saved before content hashes
        existed is trusted whole otherwise, and a negative ``reference_params`` would come out as a negative
        compression with exit 0. Raises ValueError naming the field."""
        def bad(name: str, want: str) -> ValueError:
            return ValueError(f"info.{name} is {getattr(self, name)!r}; it must be {want}")

        def number(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)

        if not isinstance(self.method, str) or not self.method:
            raise bad("method", "a method name")
        if not number(self.compression_requested) or self.compression_requested <= 0:
            raise bad("compression_requested", "a number > 0")
        if not isinstance(self.history, list) or not all(isinstance(h, dict) for h in self.history):
            raise bad("history", "a list of records")
        for name in ("reference_params", "reference_weights"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise bad(name, "a whole number >= 1 (or absent)")
        if self.energy_budget is not None and not (number(self.energy_budget) and 0 < self.energy_budget < 1):
            raise bad("energy_budget", "a fraction in (0, 1) (or absent)")
        if self.accuracy_budget is not None and not (number(self.accuracy_budget) and 0 <= self.accuracy_budget < 1):
            raise bad("accuracy_budget", "a fraction in [0, 1) (or absent)")
        return self


def save_model(model: SeqNet, path: str | Path, info: ModelInfo | None = None) -> None:
    """Write atomically: a crash mid-write never leaves a truncated model behind. The network is stored
    by its layer spec, never as pickled code."""
    path = Path(path)
    if not isinstance(model, SeqNet):
        raise ModelFileError(f"cannot save a {type(model).__name__}; convert it with powerprune.from_torch first")
    payload = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "seqnet": spec_for_saving(model),
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


def load_model(path: str | Path) -> tuple[SeqNet, ModelInfo]:
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
            state, masks = payload["state_dict"], dict(payload["masks"])
        else:  # a LeNet5 file from before it became a SeqNet
            model = lenet5(LeNetArch(**payload["arch"]))
            state, masks = _renamed(payload["state_dict"]), _renamed(payload["masks"])
        model.load_state_dict(state)
        model.masks = masks
        info = ModelInfo(**payload["info"]).check()
    except (TypeError, KeyError, ValueError, RuntimeError) as exc:
        raise ModelFileError(f"{path} is damaged: {exc}") from exc
    model.eval()
    return model, info
