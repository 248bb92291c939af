"""Structured APoZ pruning (Hu et al. 2016, "Network Trimming").

APoZ, the Average Percentage of Zeros of a channel after its ReLU, says how rarely a filter or neuron
fires. Channels that are almost always zero are removed and the network is physically rebuilt smaller:
the next layer loses the matching inputs and the flatten size follows, so the int8 model and the MCU
kernels simply see a smaller dense network. In a residual network the channels summed by an add form
one group (``seqnet.channel_groups``): the group's APoZ is the mean over its ReLU outputs, and a channel
is kept or removed in every layer of the group at once.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..data import Dataset
from ..seqnet import ChannelGroup, SeqNet, channel_groups, widths_param_count

GRID_LIMIT = 2_000_000  # width combinations enumerated exhaustively (LeNet-5: 6 x 16 x 120 x 84 = 967,680)


def prunable(model: SeqNet) -> dict[str, ChannelGroup]:
    """Channel groups APoZ may shrink, by the name of their first layer (in a chain: the layer itself)."""
    return channel_groups(model)


def current_widths(model: SeqNet) -> dict[str, int]:
    return {n: int(getattr(model, n).weight.shape[0]) for n in prunable(model)}


@torch.no_grad()
def measure_apoz(model: SeqNet, data: Dataset, batch_size: int = 1000) -> dict[str, np.ndarray]:
    """Per channel group, the fraction of zero activations per channel (conv: over images and positions;
    FC: over images), averaged over the group's ReLU outputs when it has several."""
    model.eval()
    groups = prunable(model)
    taps = [t for g in groups.values() for t in g.taps]
    zeros: dict[str, torch.Tensor | None] = dict.fromkeys(taps)
    counts = dict.fromkeys(taps, 0)
    x = torch.from_numpy(data.as_float())
    for i in range(0, len(x), batch_size):
        outputs: dict[str, torch.Tensor] = {}
        model(x[i:i + batch_size], outputs)
        for tap in taps:
            t = outputs[tap]
            per_channel = (t == 0).transpose(0, 1).reshape(t.shape[1], -1)
            z = per_channel.sum(1).double()
            zeros[tap] = z if zeros[tap] is None else zeros[tap] + z
            counts[tap] += per_channel.shape[1]
    return {n: (sum(zeros[t] / counts[t] for t in g.taps) / len(g.taps)).numpy() for n, g in groups.items()}


def _param_grid(model: SeqNet, upper: dict[str, int]) -> tuple[list[np.ndarray], np.ndarray]:
    """Parameter count of every combination of widths 1..``upper`` (one grid axis per prunable layer),
    counted by ``widths_param_count`` on broadcast arrays in one pass."""
    grids = np.meshgrid(*[np.arange(1, u + 1) for u in upper.values()], indexing="ij", sparse=True)
    params = widths_param_count(model, dict(zip(upper, grids, strict=True)))
    return grids, np.broadcast_to(params, tuple(upper.values()))


def _exhaustive(model: SeqNet, target_params: float, tolerance: float, upper: dict[str, int],
                reference: dict[str, int]) -> dict[str, int] | None:
    """The most uniform widths (same kept fraction of ``reference`` in every prunable layer, as NNI's
    per-layer sparsity does) whose parameter count lies within ``tolerance`` (relative, on the
    compression rate) of ``target_params``. Every combination is enumerated, which guarantees a fit
    whenever one exists (LeNet-5 hits the paper's rates exactly); None when none lands in the window."""
    grids, params = _param_grid(model, upper)
    lo, hi = target_params / (1 + tolerance), target_params / (1 - tolerance)
    ok = (params >= lo) & (params <= hi)
    if not ok.any():
        return None
    logs = [np.log(w / f) for w, f in zip(grids, np.array(list(reference.values()), dtype=np.float64), strict=True)]
    mean = sum(logs) / len(logs)
    spread = sum((lg - mean) ** 2 for lg in logs)
    # closeness to the exact target breaks ties between equally uniform choices
    score = np.where(ok, spread + 1e-3 * np.abs(params - target_params) / target_params, np.inf)
    best = np.unravel_index(np.argmin(score), score.shape)
    return {n: int(i) + 1 for n, i in zip(upper, best, strict=True)}  # index 0 = width 1


def _bisection(model: SeqNet, target_params: float, tolerance: float, full: dict[str, int]) -> dict[str, int] | None:
    """For grids too large to enumerate: a uniform kept fraction found by bisection, then one-channel
    nudges of single layers to land in the window."""
    def count(w: dict[str, int]) -> int:
        return widths_param_count(model, w)

    def uniform(f: float) -> dict[str, int]:
        return {n: max(1, min(full[n], round(f * full[n]))) for n in full}

    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if count(uniform(mid)) > target_params else (mid, hi)

    def error(w: dict[str, int]) -> float:
        return abs(count(w) - target_params)

    best = min((uniform(lo), uniform(hi)), key=error)
    best_error = error(best)
    for _ in range(8):  # nudge single layers while that gets closer
        options = [{**best, n: best[n] + d} for n in full for d in (-1, 1) if 1 <= best[n] + d <= full[n]]
        scored = [(error(w), w) for w in options]
        if not scored or min(e for e, _ in scored) >= best_error:
            break
        best_error, best = min(scored, key=lambda t: t[0])
    return best if abs(target_params / count(best) - 1) <= tolerance else None


def plan_channels(model: SeqNet, target_params: float, tolerance: float, upper: dict[str, int] | None = None,
                  reference: dict[str, int] | None = None) -> dict[str, int] | None:
    """Widths of the prunable layers (each at most ``upper``, default the current ones) whose parameter
    count is within ``tolerance`` of the target, as uniform across layers as possible relative to
    ``reference`` (default: the current widths); None when none is. Every combination is enumerated
    when there are at most ``GRID_LIMIT`` of them, any network alike; larger ones are bisected."""
    upper = upper or current_widths(model)
    if not upper:
        return None
    if math.prod(upper.values()) <= GRID_LIMIT:
        return _exhaustive(model, target_params, tolerance, upper, reference or current_widths(model))
    return _bisection(model, target_params, tolerance, upper)


def nearest_reachable(model: SeqNet, target_params: float) -> int | None:
    """Parameter count closest to the target that some width combination reaches (for error messages);
    None when there are too many combinations to enumerate."""
    upper = current_widths(model)
    if math.prod(upper.values()) > GRID_LIMIT:
        return None
    flat = _param_grid(model, upper)[1].ravel()
    return int(flat[np.argmin(np.abs(flat - target_params))])


def keep_indices(apoz: dict[str, np.ndarray], widths: dict[str, int]) -> dict[str, np.ndarray]:
    """Per layer, the channels to keep: the ``width`` with the lowest APoZ, in original order."""
    out = {}
    for name, width in widths.items():
        order = np.argsort(apoz[name], kind="stable")  # most active first
        out[name] = np.sort(order[:width])
    return out
