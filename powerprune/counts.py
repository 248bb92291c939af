"""The multiply-accumulate count of a weight layer: the one formula every size and cost figure uses.

The IR's layer table, the Pico's cost model, the float model's statistics and energy-aware pruning all
quote MACs, and they must agree: a pruned model's MACs in ``evaluate`` are the MACs its ``inspect``
table sums and the MACs the cost model turns into cycles. So the count is defined here once, from what
every caller has at hand whatever framework it works in: a weight count, an output shape and the kind
of layer (the TFLite op name, as the IR and the cost model call it).

Every weight is used once per output position: a conv weight at each of the H x W output pixels (a
depthwise or grouped conv too: its weight tensor holds only the weights one output channel reads), a
fully connected weight once. The count is linear in the weights, so passing the nonzero weights gives
the MACs a sparse kernel performs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
FULLY_CONNECTED = "FULLY_CONNECTED"
# Where an activation keeps its channels: the IR and TFLite store (H, W, C), PyTorch (C, H, W).
Layout = Literal["HWC", "CHW"]


def layer_macs(weights: int, output_shape: Sequence[int], op: str, layout: Layout = "HWC") -> int:
    """MACs of one conv or fully connected layer with ``weights`` weights (all of them, or only the
    nonzero ones) and output ``output_shape`` (without batch, in ``layout``).

    >>> layer_macs(6 * 5 * 5 * 1, (28, 28, 6), "CONV_2D")        # LeNet-5's first conv
    117600
    >>> layer_macs(6 * 5 * 5 * 1, (6, 28, 28), "CONV_2D", "CHW")  # the same conv as PyTorch holds it
    117600
    >>> layer_macs(120 * 400, (120,), "FULLY_CONNECTED")
    48000
    """
    if op == FULLY_CONNECTED:
        return int(weights)
    if op not in CONVOLUTIONS:
        raise ValueError(f"MACs are counted for {', '.join((*CONVOLUTIONS, FULLY_CONNECTED))}, not {op}")
    if len(output_shape) != 3:
        raise ValueError(f"{op} output shape {tuple(output_shape)} is not 3-D ({layout})")
    height, width = output_shape[:2] if layout == "HWC" else output_shape[1:]
    return int(weights) * int(height) * int(width)
