"""Size and cost of a float model: parameters, nonzeros, compression, multiply-accumulates."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .model import LeNet5, LeNetArch


@dataclass(frozen=True)
class ModelStats:
    params: int
    nonzero_params: int
    weights: int
    nonzero_weights: int
    macs: int
    nonzero_macs: int

    def compression(self, reference_params: int) -> float:
        """The paper's compression rate: parameters of the dense model / nonzero parameters left."""
        return reference_params / max(self.nonzero_params, 1)

    def weight_compression(self, reference_weights: int) -> float:
        return reference_weights / max(self.nonzero_weights, 1)


def _spatial_outputs(model: LeNet5) -> dict[str, int]:
    """Output pixels of each layer (1 for fully connected): MACs = outputs x kernel work."""
    s = model.arch.image_size
    side2 = s // 2 - 4
    return {"conv1": s * s, "conv2": side2 * side2, "fc1": 1, "fc2": 1, "fc3": 1}


def model_stats(model: LeNet5) -> ModelStats:
    params = nonzero = weights = nonzero_w = macs = nz_macs = 0
    pixels = _spatial_outputs(model)
    for name in model.layer_names:
        layer = getattr(model, name)
        w, b = layer.weight.detach(), layer.bias.detach()
        nzw = int(torch.count_nonzero(w))
        weights += w.numel()
        nonzero_w += nzw
        params += w.numel() + b.numel()
        nonzero += nzw + int(torch.count_nonzero(b))
        macs += w.numel() * pixels[name]
        nz_macs += nzw * pixels[name]
    return ModelStats(params, nonzero, weights, nonzero_w, macs, nz_macs)


def dense_reference(model: LeNet5) -> ModelStats:
    """Stats of the unpruned network of the same family (compression is measured against it)."""
    a = model.arch
    return model_stats(LeNet5(LeNetArch(num_classes=a.num_classes, in_channels=a.in_channels,
                                        image_size=a.image_size)))
