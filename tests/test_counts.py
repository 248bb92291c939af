"""counts.layer_macs is the one MAC count: the float model, the IR, the cost model and pruning agree."""

import doctest

import numpy as np
import pytest
import torch
from torch import nn

from powerprune import counts
from powerprune.counts import layer_macs
from powerprune.data import from_arrays
from powerprune.ir import WEIGHTED
from powerprune.mcu import costmodel
from powerprune.metrics import model_stats
from powerprune.prune.energy import model_cycles
from powerprune.quantize import quantize
from powerprune.seqnet import from_torch


def test_the_examples_in_its_docstring_hold():
    result = doctest.testmod(counts)
    assert result.attempted >= 3 and result.failed == 0


def _net_with_every_weighted_op() -> nn.Module:
    """A conv, a depthwise conv (each weight reads one input channel) and two fully connected layers, on
    an input that is not square and a channel count equal to neither side, so that (H, W, C) and
    (C, H, W) cannot be confused."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Conv2d(3, 3, 3, groups=3, padding=1), nn.ReLU(),
                        nn.MaxPool2d(2), nn.Flatten(), nn.Linear(3 * 4 * 2, 10), nn.ReLU(), nn.Linear(10, 3))
    with torch.no_grad():
        net[0].weight[0] = 0  # nonzero MACs below the dense ones
    return from_torch(net, (1, 10, 6))


def test_the_float_model_the_ir_the_cost_model_and_pruning_count_the_same_macs():
    model = _net_with_every_weighted_op()
    rng = np.random.default_rng(0)
    graph = quantize(model, from_arrays(rng.integers(0, 256, (8, 10, 6), dtype=np.uint8), np.arange(8) % 3))
    by_hand = 3 * 1 * 9 * 8 * 4 + 3 * 9 * 8 * 4 + 24 * 10 + 10 * 3  # weights x output pixels

    seen = []
    model_cycles(model, lambda op, macs, nonzero_macs, outputs: seen.append(macs) or 0.0)
    weighted = [layer for layer in graph.layers if isinstance(layer, WEIGHTED)]
    assert model_stats(model).macs == graph.totals()["macs"] == sum(seen) == by_hand
    assert [costmodel.macs(layer) for layer in weighted] == seen  # layer by layer, not only in total
    assert model_stats(model).nonzero_macs == by_hand - 9 * 8 * 4


def test_a_layer_without_weights_is_refused_in_one_line():
    with pytest.raises(ValueError, match="^MACs are counted for CONV_2D, .*, not MAX_POOL_2D$"):
        layer_macs(10, (4, 4, 2), "MAX_POOL_2D")


def test_a_convolution_needs_a_three_dimensional_output():
    with pytest.raises(ValueError, match=r"CONV_2D output shape \(16,\) is not 3-D"):
        layer_macs(10, (16,), "CONV_2D")
