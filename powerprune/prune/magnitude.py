"""Unstructured magnitude pruning: keep the largest |w|, as masks that hold exact zeros."""

from __future__ import annotations

import torch

from ..seqnet import SeqNet


def weight_layers(model: SeqNet) -> list[str]:
    return list(model.layer_names)


def _top_k_mask(w: torch.Tensor, keep: int) -> torch.Tensor:
    """Mask keeping exactly ``keep`` entries of largest magnitude (ties broken by position)."""
    flat = w.detach().abs().flatten()
    mask = torch.zeros_like(flat)
    if keep > 0:
        idx = torch.argsort(flat, descending=True, stable=True)[:keep]
        mask[idx] = 1.0
    return mask.view_as(w)


def magnitude_masks(model: SeqNet, keep_weights: int, scope: str = "global") -> dict[str, torch.Tensor]:
    """Masks keeping ``keep_weights`` weights in total.

    ``global`` ranks all weights together (layers that matter less lose more); ``layer`` gives every
    layer the same density. Either way each layer keeps at least one weight so no layer is cut off.
    """
    names = weight_layers(model)
    weights = {n: getattr(model, n).weight.detach() for n in names}
    total = sum(w.numel() for w in weights.values())
    keep_weights = max(min(keep_weights, total), len(names))
    if scope == "layer":
        density = keep_weights / total
        quotas = {n: max(1, int(w.numel() * density)) for n, w in weights.items()}
        # hand out what rounding lost, largest layers first, so the total is exact
        for n in sorted(names, key=lambda n: -weights[n].numel()):
            short = keep_weights - sum(quotas.values())
            if short <= 0:
                break
            quotas[n] += min(short, weights[n].numel() - quotas[n])
        return {n: _top_k_mask(weights[n], quotas[n]) for n in names}
    if scope != "global":
        raise ValueError(f"unknown magnitude scope {scope!r}; use 'global' or 'layer'")
    # every layer's single largest weight is reserved first, then the rest compete globally
    masks = {n: _top_k_mask(w, 1) for n, w in weights.items()}
    rest = torch.cat([(w.abs() * (1 - masks[n])).flatten() for n, w in weights.items()])
    order = torch.argsort(rest, descending=True, stable=True)[: keep_weights - len(names)]
    chosen = torch.zeros_like(rest)
    chosen[order] = 1.0
    offset = 0
    for n, w in weights.items():
        part = chosen[offset:offset + w.numel()].view_as(w)
        masks[n] = torch.clamp(masks[n] + part, max=1.0)
        offset += w.numel()
    return masks
