"""Specification of powerprune/mcu/arena.py, the arena planner: no two tensors alive at the same time
share a byte, a reshape is a view of the buffer it reads, and the arena holds every buffer."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from powerprune.ir import Activation, Add, Conv2D, Graph, Reshape, TensorInfo
from powerprune.mcu.arena import plan_arena

NO_CLAMP = Activation("NONE", -128, 127)


@st.composite
def dags(draw) -> Graph:
    """Random wiring over tensors of several sizes: 1x1 convolutions to a random channel count,
    reshapes of any earlier tensor (views, or a copy of the model input), ADDs of two earlier tensors
    of one shape. Tensors nobody read are then brought to one shape and summed into the output, so
    that every tensor but the output is read (what Graph.validate asks)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    hw = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))

    def info(c: int) -> TensorInfo:
        return TensorInfo((*hw, c), float(np.float32(10 ** rng.uniform(-2, -0.5))), int(rng.integers(-100, 100)))

    def conv(c_in: int, c_out: int) -> Conv2D:
        return Conv2D(rng.integers(-20, 21, (c_out, 1, 1, c_in)).astype(np.int8), np.zeros(c_out, np.int32),
                      np.full(c_out, 0.01, np.float32), (1, 1), "VALID", NO_CLAMP, info(c_out))

    inp = info(draw(st.integers(1, 5)))
    layers, reads = [], []

    def tensor(t: int) -> TensorInfo:
        return inp if t == 0 else layers[t - 1].output

    for _ in range(draw(st.integers(1, 10))):
        n = len(layers) + 1
        src = draw(st.integers(0, n - 1))
        kind = draw(st.sampled_from(["conv", "conv", "add", "reshape"]))
        same = [t for t in range(n) if tensor(t).shape == tensor(src).shape]
        if kind == "add" and len(tensor(src).shape) == 3:
            layers.append(Add(NO_CLAMP, info(tensor(src).shape[2])))
            reads.append((src, draw(st.sampled_from(same))))
        elif kind == "reshape":
            t = tensor(src)
            layers.append(Reshape(TensorInfo((t.size,) if len(t.shape) == 3 else (*hw, t.size // (hw[0] * hw[1])),
                                             t.scale, t.zero_point)))
            reads.append((src,))
        else:
            t = tensor(src)
            if len(t.shape) != 3:  # a flat tensor: back to H x W x C first, through a reshape
                continue
            layers.append(conv(t.shape[2], draw(st.integers(1, 6))))
            reads.append((src,))
    if not layers:
        layers.append(conv(inp.shape[2], 2))
        reads.append((0,))
    # the tensors nobody reads, and the last one, each brought to H x W x 3 and summed into the output
    ends = [t for t in range(1, len(layers)) if all(t not in r for r in reads)] + [len(layers)]
    summed = []
    for t in ends:
        if len(tensor(t).shape) != 3:
            layers.append(Reshape(TensorInfo((*hw, tensor(t).size // (hw[0] * hw[1])), tensor(t).scale,
                                             tensor(t).zero_point)))
            reads.append((t,))
            t = len(layers)
        layers.append(conv(tensor(t).shape[2], 3))
        reads.append((t,))
        summed.append(len(layers))
    acc = summed[0]
    for t in summed[1:]:
        layers.append(Add(NO_CLAMP, info(3)))
        reads.append((acc, t))
        acc = len(layers)
    return Graph(inp, layers, "dag", reads=reads)


def buffers(g: Graph) -> list[int]:
    """For every tensor t >= 1, the tensor whose buffer holds it: itself, or for a reshape of a layer
    output (a view) the buffer of what it reshapes."""
    root = list(range(len(g.layers) + 1))
    for i, layer in enumerate(g.layers):
        if layer.op == "RESHAPE" and g.reads[i][0] > 0:
            root[i + 1] = root[g.reads[i][0]]
    return root


def lifetimes(g: Graph) -> dict[int, tuple[int, int]]:
    """Each buffer's (first, last) layer index: from the layer that writes it to the last that reads it
    or any view of it (the model output's: to the end)."""
    root, last = buffers(g), g.last_reads()
    life: dict[int, tuple[int, int]] = {}
    for t in range(1, len(g.layers) + 1):
        b = root[t]
        born, dies = life.get(b, (b - 1, b - 1))
        life[b] = (born, max(dies, last[t]))
    return life


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=dags())
def test_the_planner_never_overlaps_two_live_tensors(g):
    offsets, arena = plan_arena(g)
    root, life = buffers(g), lifetimes(g)
    placed = {root[t]: offsets[t - 1] for t in range(1, len(g.layers) + 1)}
    for t in range(1, len(g.layers) + 1):  # the views sit where the buffer they view sits
        assert offsets[t - 1] == placed[root[t]]
    spans = {b: (o, o + g.tensor(b).nbytes) for b, o in placed.items() if o is not None}
    for b, (start, end) in spans.items():
        assert start % 4 == 0 and end <= arena, (b, start, end, arena)
    for a in spans:
        for b in spans:
            if a < b and life[a][0] <= life[b][1] and life[b][0] <= life[a][1]:  # alive at the same time
                (a0, a1), (b0, b1) = spans[a], spans[b]
                assert a1 <= b0 or b1 <= a0, f"tensors {a} and {b} overlap: {spans[a]} {spans[b]}"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=dags())
def test_the_model_output_takes_no_arena_space_and_the_arena_is_no_larger_than_all_buffers(g):
    offsets, arena = plan_arena(g)
    root = buffers(g)
    out = root[len(g.layers)]
    assert all(offsets[t - 1] is None for t in range(1, len(g.layers) + 1) if root[t] == out)
    others = {root[t] for t in range(1, len(g.layers) + 1)} - {out}
    assert arena <= sum((g.tensor(b).nbytes + 3) & ~3 for b in others)


def test_a_chain_needs_only_its_largest_pair_of_neighbours():
    """Consecutive tensors at opposite ends: the arena is the largest input + output pair of the
    tensors it holds, not their sum."""
    rng = np.random.default_rng(0)
    hw, cs = (3, 3), (2, 8, 1, 6, 2)
    layers = []
    for c_in, c_out in zip(cs, cs[1:], strict=False):
        layers.append(Conv2D(rng.integers(-9, 10, (c_out, 1, 1, c_in)).astype(np.int8), np.zeros(c_out, np.int32),
                             np.full(c_out, 0.01, np.float32), (1, 1), "VALID", NO_CLAMP,
                             TensorInfo((*hw, c_out), 0.1, 0)))
    g = Graph(TensorInfo((*hw, cs[0]), 0.1, 0), layers)
    offsets, arena = plan_arena(g)
    sizes = [9 * c for c in cs[1:-1]]   # 72, 9, 54 (the last conv writes the model output)
    assert arena == max(a + b for a, b in zip([72, 12, 56], [12, 56], strict=False)) == 84
    assert offsets[0] == 0 and offsets[1] == arena - 12 and offsets[2] == 0 and offsets[3] is None
    assert sum(sizes) > arena
