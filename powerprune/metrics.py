"""Size and cost of a float model: parameters, nonzeros, compression, multiply-accumulates."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .counts import layer_macs
from .seqnet import SeqNet, output_shapes


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


@torch.no_grad()
def layer_outputs(model: SeqNet) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch, in PyTorch's (C, H, W)) of every weight layer, which its MACs depend
    on: a SeqNet knows them from its spec, any other network runs one forward pass with hooks."""
    if isinstance(model, SeqNet):
        shapes = output_shapes(model)
        return {n: shapes[n] for n in model.layer_names}
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [getattr(model, n).register_forward_hook(
        lambda _m, _i, out, n=n: shapes.__setitem__(n, tuple(out.shape[1:]))) for n in model.layer_names]
    try:
        was = model.training
        model.eval()
        model(torch.zeros(1, *model.input_shape))
        model.train(was)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def model_stats(model: SeqNet) -> ModelStats:
    params = nonzero = weights = nonzero_w = macs = nz_macs = 0
    shapes = layer_outputs(model)
    for name in model.layer_names:
        layer = getattr(model, name)
        w, b = layer.weight.detach(), layer.bias.detach()
        nzw = int(torch.count_nonzero(w))
        weights += w.numel()
        nonzero_w += nzw
        params += w.numel() + b.numel()
        nonzero += nzw + int(torch.count_nonzero(b))
        op = "FULLY_CONNECTED" if isinstance(layer, nn.Linear) else "CONV_2D"
        macs += layer_macs(w.numel(), shapes[name], op, "CHW")
        nz_macs += layer_macs(nzw, shapes[name], op, "CHW")
    return ModelStats(params, nonzero, weights, nonzero_w, macs, nz_macs)


def dense_reference(model: SeqNet) -> ModelStats:
    """Stats of the unpruned network compression is measured against, for a model not pruned yet: its
    own shape with every weight kept. (A pruned model's file records its reference: ``ModelInfo``.)"""
    s = model_stats(model)
    return ModelStats(s.params, s.params, s.weights, s.weights, s.macs, s.macs)


def widths(model: SeqNet) -> list[int]:
    """Output channels/features of every weight layer but the classifier (what APoZ shrinks)."""
    return [int(getattr(model, n).weight.shape[0]) for n in model.layer_names[:-1]]


def reference_params(model: SeqNet, recorded: int | None = None) -> int:
    """Parameters of the dense model that compression is measured against: as recorded when the
    model was pruned, else the model's own."""
    return recorded if recorded else dense_reference(model).params
