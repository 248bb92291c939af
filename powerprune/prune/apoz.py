"""Structured APoZ pruning (Hu et al. 2016, "Network Trimming").

APoZ, the Average Percentage of Zeros of a channel after its ReLU, says how rarely a filter or neuron
fires. Channels that are almost always zero are removed and the network is physically rebuilt smaller:
the next layer loses the matching inputs and the flatten size follows, so the int8 model and the MCU
kernels simply see a smaller dense network.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import Dataset
from ..model import LeNet5, LeNetArch
from ..seqnet import Maskable, SeqNet, channel_layers, rebuild_seqnet, widths_param_count

PRUNABLE = ("conv1", "conv2", "fc1", "fc2")  # the output layer fc3 is never pruned


def prunable(model: Maskable) -> dict[str, str]:
    """Layers whose channels APoZ may remove -> the post-ReLU output it reads."""
    return {n: n for n in PRUNABLE} if isinstance(model, LeNet5) else channel_layers(model)


def current_widths(model: Maskable) -> dict[str, int]:
    return {n: int(getattr(model, n).weight.shape[0]) for n in prunable(model)}


@torch.no_grad()
def measure_apoz(model: Maskable, data: Dataset, batch_size: int = 1000) -> dict[str, np.ndarray]:
    """Fraction of zero activations per channel (conv: over images and positions; FC: over images)."""
    model.eval()
    taps_of = prunable(model)
    zeros = dict.fromkeys(taps_of)
    counts = dict.fromkeys(taps_of, 0)
    x = torch.from_numpy(data.as_float())
    for i in range(0, len(x), batch_size):
        taps: dict[str, torch.Tensor] = {}
        if isinstance(model, LeNet5):
            model(x[i:i + batch_size], taps=taps)
        else:
            model(x[i:i + batch_size], taps)
        for n, tap in taps_of.items():
            t = taps[tap]
            per_channel = (t == 0).transpose(0, 1).reshape(t.shape[1], -1)
            z = per_channel.sum(1).double()
            zeros[n] = z if zeros[n] is None else zeros[n] + z
            counts[n] += per_channel.shape[1]
    return {n: (zeros[n] / counts[n]).numpy() for n in taps_of}


def _param_grid(arch: LeNetArch, upper: tuple[int, ...]) -> tuple[list[np.ndarray], np.ndarray]:
    """Parameter count of every width combination up to ``upper`` (the closed form of
    ``LeNetArch.param_count``, broadcast over a 4-D grid)."""
    grids = np.meshgrid(*[np.arange(1, u + 1) for u in upper], indexing="ij", sparse=True)
    c1, c2, f1, f2 = grids
    flat = arch.flat_size // arch.conv2
    params = (c1 * (25 * arch.in_channels + 1) + c2 * (25 * c1 + 1) + f1 * (c2 * flat + 1)
              + f2 * (f1 + 1) + arch.num_classes * (f2 + 1))
    return grids, np.broadcast_to(params, tuple(upper))


def plan_widths(arch: LeNetArch, target_params: float, tolerance: float,
                upper: tuple[int, ...] | None = None) -> tuple[int, int, int, int] | None:
    """The most uniform widths (same kept fraction in every prunable layer, as NNI's per-layer
    sparsity does) whose parameter count lies within ``tolerance`` (relative, on the compression rate)
    of ``target_params``. Every width combination is enumerated: the space is under a million points,
    which numpy checks in milliseconds, and it guarantees we find a fit whenever one exists.
    Returns None when no width combination lands in the window."""
    full = np.array(LeNetArch(num_classes=arch.num_classes, in_channels=arch.in_channels,
                              image_size=arch.image_size).widths, dtype=np.float64)
    (c1, c2, f1, f2), params = _param_grid(arch, upper or arch.widths)
    lo, hi = target_params / (1 + tolerance), target_params / (1 - tolerance)
    ok = (params >= lo) & (params <= hi)
    if not ok.any():
        return None
    logs = [np.log(w / f) for w, f in zip((c1, c2, f1, f2), full, strict=True)]
    mean = sum(logs) / 4
    spread = sum((lg - mean) ** 2 for lg in logs)
    # closeness to the exact target breaks ties between equally uniform choices
    score = np.where(ok, spread + 1e-3 * np.abs(params - target_params) / target_params, np.inf)
    return tuple(int(v) + 1 for v in np.unravel_index(np.argmin(score), score.shape))  # index 0 = width 1


def nearest_reachable(arch: LeNetArch, target_params: float) -> int:
    """Parameter count closest to the target that some width combination reaches (for error messages)."""
    _, params = _param_grid(arch, arch.widths)
    flat = params.ravel()
    return int(flat[np.argmin(np.abs(flat - target_params))])


def plan_channels(model: Maskable, target_params: float, tolerance: float,
                  upper: dict[str, int] | None = None) -> dict[str, int] | None:
    """Widths of the prunable layers whose parameter count is within ``tolerance`` of the target,
    as uniform across layers as possible; None when none is. LeNet5: every combination is
    enumerated (``plan_widths``). Other chains: a uniform kept fraction found by bisection, then
    one-channel nudges of single layers to land in the window."""
    if isinstance(model, LeNet5):
        up = tuple(upper[n] for n in PRUNABLE) if upper else None
        found = plan_widths(model.arch, target_params, tolerance, upper=up)
        return None if found is None else dict(zip(PRUNABLE, found, strict=True))
    full = upper or current_widths(model)
    if not full:
        return None

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


def keep_indices(apoz: dict[str, np.ndarray], widths: dict[str, int]) -> dict[str, np.ndarray]:
    """Per layer, the channels to keep: the ``width`` with the lowest APoZ, in original order."""
    out = {}
    for name, width in widths.items():
        order = np.argsort(apoz[name], kind="stable")  # most active first
        out[name] = np.sort(order[:width])
    return out


@torch.no_grad()
def rebuild(model: Maskable, keep: dict[str, np.ndarray]) -> Maskable:
    """A new, smaller network holding only the kept channels, with every downstream input sliced."""
    if isinstance(model, SeqNet):
        return rebuild_seqnet(model, keep)
    a = model.arch
    k = {n: torch.as_tensor(v, dtype=torch.long) for n, v in keep.items()}
    new = LeNet5(LeNetArch(len(k["conv1"]), len(k["conv2"]), len(k["fc1"]), len(k["fc2"]),
                           a.num_classes, a.in_channels, a.image_size))
    side2 = (a.flat_size // a.conv2)
    # fc1 reads the NCHW flatten of conv2's pooled output: channel c owns inputs c*side2 .. c*side2+side2-1
    fc1_cols = (k["conv2"][:, None] * side2 + torch.arange(side2)[None, :]).flatten()
    slices = {
        "conv1": (k["conv1"], slice(None)),
        "conv2": (k["conv2"], k["conv1"]),
        "fc1": (k["fc1"], fc1_cols),
        "fc2": (k["fc2"], k["fc1"]),
        "fc3": (slice(None), k["fc2"]),
    }
    for name, (rows, cols) in slices.items():
        src, dst = getattr(model, name), getattr(new, name)
        w = src.weight[rows][:, cols]
        dst.weight.copy_(w)
        dst.bias.copy_(src.bias[rows])
        if name in model.masks:  # unstructured masks survive channel removal (energy, hybrid)
            new.masks[name] = model.masks[name][rows][:, cols].clone()
    return new
