"""The report's Pareto plot labels its front without piling text: labels once sat on top of each other
along the front."""

import itertools

import matplotlib
import numpy as np

from powerprune.report.plots import place_labels

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def test_placed_labels_never_overlap_and_stay_inside_the_axes():
    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs = np.geomspace(0.1, 10, 25) * rng.uniform(0.97, 1.03, 25)  # a crowded front, as a 2..64x sweep gives
    ys = 90 - np.log(xs[::-1]) * rng.uniform(0.5, 1.5, 25)
    ax.scatter(xs, ys)
    ax.set_xscale("log")
    fig.tight_layout()
    placed = place_labels(ax, [((x, y), f"magnitude {i}x\nauto") for i, (x, y) in enumerate(zip(xs, ys, strict=True))])
    renderer = fig.canvas.get_renderer()
    boxes = [a.get_window_extent(renderer) for a in placed]
    frame = ax.get_window_extent(renderer)
    assert len(placed) >= 10  # most points keep a label
    assert not [(i, j) for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2) if a.overlaps(b)]
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    plt.close(fig)
