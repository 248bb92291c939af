"""The hypothesis strategies of the property tests, in one home, and the few builders they share with
the tests that use them (the ADD graph and its constructed ties, seeded input rows, float32 values).

Each strategy draws a small model meant to reach the corners of one part of the stack: quantization
parameters at their extremes, shapes that leave partial groups and tails, weight densities the sparse
kernels care about. How many examples each test draws is set by the hypothesis profile (tests/conftest.py)
or, where a test needs another number, by ``budget``.
"""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from powerprune.ir import (
    Activation,
    Add,
    Conv2D,
    DepthwiseConv2D,
    FullyConnected,
    Graph,
    Mean,
    Pool2D,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
)
from powerprune.ir import output_size as out_size


def budget(ci_examples: int) -> settings:
    """Settings for a test that needs ``ci_examples`` examples under the ci profile instead of its 100
    (more for a cheap call over a wide domain, fewer where each example builds firmware); other
    profiles scale the number as they scale their own (dev: a tenth), never below one."""
    scale = settings.default.max_examples / settings.get_profile("ci").max_examples
    return settings(max_examples=max(1, round(ci_examples * scale)))


NO_CLAMP = Activation("NONE", -128, 127)
int32 = st.integers(-(2**31), 2**31 - 1)
zero_points = st.integers(-128, 127)
activations = st.sampled_from(["NONE", "RELU", "RELU6"])


def rows(graph: Graph, n: int, seed: int) -> np.ndarray:
    """``n`` seeded random int8 input rows for ``graph``."""
    return np.random.default_rng(seed).integers(-128, 128, size=(n,) + graph.input.shape, dtype=np.int8)


# --- int8 chains against TFLM (test_int8, test_mcu, test_paper_exact) ------------------------------

# Scales of the int8 chains' tensors (1e-4 to 0.5; tensor_info rounds them to float32).
int8_scales = st.floats(min_value=1e-4, max_value=0.5, allow_nan=False)


@st.composite
def tensor_info(draw, shape):
    """An int8 tensor of ``shape`` at a drawn (float32-exact) scale and zero point."""
    return TensorInfo(shape, float(np.float32(draw(int8_scales))), draw(zero_points))


@st.composite
def random_graph(draw):
    """An int8 chain: a conv or depthwise conv (any kernel, stride, padding, activation, weight density
    1, 0.5 or 0.1), maybe a pool, a reshape and a fully connected layer (per-tensor or per-channel scales)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    h, w, c = draw(st.integers(3, 9)), draw(st.integers(3, 9)), draw(st.integers(1, 4))
    inp = draw(tensor_info((h, w, c)))
    layers = []
    cur = inp
    density = draw(st.sampled_from([1.0, 0.5, 0.1]))

    def weights(shape):
        q = rng.integers(-127, 128, size=shape).astype(np.int8)
        return (q * (rng.random(shape) < density)).astype(np.int8)

    def bias(n):
        return rng.integers(-(2**15), 2**15, size=n).astype(np.int32)

    def wscales(n):
        # spread over orders of magnitude so multipliers hit extreme significands and shifts
        return (10.0 ** rng.uniform(-5, -0.5, size=n)).astype(np.float32)

    kind = draw(st.sampled_from(["conv", "depthwise"]))
    k = draw(st.integers(1, 3))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    oh, _ = out_size(cur.shape[0], k, stride[0], padding)
    ow, _ = out_size(cur.shape[1], k, stride[1], padding)
    if kind == "conv":
        oc = draw(st.integers(1, 5))
        out = draw(tensor_info((oh, ow, oc)))
        layers.append(Conv2D(weights((oc, k, k, c)), bias(oc), wscales(oc), stride, padding,
                             Activation.for_output(draw(activations), out), out))
    else:
        mult = draw(st.integers(1, 2))
        oc = c * mult
        out = draw(tensor_info((oh, ow, oc)))
        layers.append(DepthwiseConv2D(weights((1, k, k, oc)), bias(oc), wscales(oc), stride, padding,
                                      Activation.for_output(draw(activations), out), out))
    cur = out
    if draw(st.booleans()) and min(cur.shape[:2]) >= 2:
        pk = draw(st.sampled_from(["MAX", "AVERAGE"]))
        ppad = draw(st.sampled_from(["SAME", "VALID"]))
        ph, _ = out_size(cur.shape[0], 2, 2, ppad)
        pw, _ = out_size(cur.shape[1], 2, 2, ppad)
        pout = TensorInfo((ph, pw, cur.shape[2]), cur.scale, cur.zero_point)
        layers.append(Pool2D(pk, (2, 2), (2, 2), ppad, Activation.for_output(draw(activations), pout), pout))
        cur = pout
    flat = TensorInfo((cur.size,), cur.scale, cur.zero_point)
    layers.append(Reshape(flat))
    units = draw(st.integers(1, 6))
    fout = draw(tensor_info((units,)))
    per_channel = draw(st.booleans())
    layers.append(FullyConnected(weights((units, cur.size)), bias(units), wscales(units if per_channel else 1),
                                 Activation.for_output(draw(activations), fout), fout))
    return Graph(inp, layers)


# --- the fast kernels' paths on the virtual Pico (test_fast_kernels, test_dense_dw) --------------

@st.composite
def conv_fc_graph(draw):
    """A convolution, a reshape and a fully connected layer with shapes drawn to reach every path."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c = draw(st.sampled_from([1, 2, 3, 6, 7]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    h, w = draw(st.integers(kh, 9)), draw(st.integers(kw, 12))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    oh, _ = out_size(h, kh, stride[0], padding)
    ow, _ = out_size(w, kw, stride[1], padding)
    oc = draw(st.sampled_from([1, 2, 4, 5, 6, 7, 11, 13, 16, 23, 35]))
    density = draw(st.sampled_from([1.0, 0.5, 0.1, 0.0]))
    steep = draw(st.booleans())  # effective scales near or above 1: no table, arithmetic requantization

    def weights(shape):
        q = rng.choice(np.array([-128, -127, -64, -1, 1, 2, 64, 127], np.int8), size=shape)
        q = np.where(rng.random(shape) < 0.5, rng.integers(-128, 128, size=shape), q).astype(np.int8)
        return (q * (rng.random(shape) < density)).astype(np.int8)

    def wscales(n, lo, hi):
        return (10.0 ** rng.uniform(lo, hi, size=n)).astype(np.float32)

    def info(shape):
        return TensorInfo(shape, float(np.float32(10 ** rng.uniform(-2.5, -0.5))), int(rng.integers(-128, 128)))

    def act(kind, out):
        return Activation.for_output(kind, out)

    inp = info((h, w, c))
    cout = info((oh, ow, oc))
    conv = Conv2D(weights((oc, kh, kw, c)), rng.integers(-(2**15), 2**15, size=oc).astype(np.int32),
                  wscales(oc, -1.5, 1.5) if steep else wscales(oc, -4, -1.5), stride, padding,
                  act(draw(st.sampled_from(["NONE", "RELU", "RELU6"])), cout), cout)
    flat = TensorInfo((cout.size,), cout.scale, cout.zero_point)
    units = draw(st.integers(1, 19))
    fout = info((units,))
    per_channel = draw(st.booleans())
    fc_act = act(draw(st.sampled_from(["NONE", "RELU"])), fout)
    fc = FullyConnected(weights((units, cout.size)), rng.integers(-(2**15), 2**15, size=units).astype(np.int32),
                        wscales(units if per_channel else 1, -4, -1.5), fc_act, fout)
    return Graph(inp, [conv, Reshape(flat), fc])


@st.composite
def depthwise_pool_graph(draw):
    """A depthwise convolution, then (usually) an average pool, with shapes drawn to reach every path."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    c = draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 13]))
    dm = draw(st.sampled_from([1, 1, 2, 3, 5, 8]))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    least = (kh, kw) if padding == "VALID" else (1, 1)
    h, w = draw(st.integers(least[0], 8)), draw(st.integers(least[1], 9))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    oh, _ = out_size(h, kh, stride[0], padding)
    ow, _ = out_size(w, kw, stride[1], padding)
    oc = c * dm
    steep = draw(st.booleans())  # effective scales near or above 1: no table, arithmetic requantization

    def info(shape):
        return TensorInfo(shape, float(np.float32(10 ** rng.uniform(-2.5, -0.5))), int(rng.integers(-128, 128)))

    q = rng.choice(np.array([-128, -127, -64, -1, 1, 2, 64, 127], np.int8), size=(1, kh, kw, oc))
    weights = np.where(rng.random(q.shape) < 0.5, rng.integers(-128, 128, size=q.shape), q).astype(np.int8)
    weights = (weights * (rng.random(q.shape) < draw(st.sampled_from([1.0, 0.5])))).astype(np.int8)
    scales = (10.0 ** rng.uniform(*((-1.5, 1.5) if steep else (-4, -1.5)), size=oc)).astype(np.float32)
    inp, out = info((h, w, c)), info((oh, ow, oc))
    act = Activation.for_output(draw(st.sampled_from(["NONE", "RELU", "RELU6"])), out)
    layers = [DepthwiseConv2D(weights, rng.integers(-(2**15), 2**15, size=oc).astype(np.int32), scales, stride,
                              padding, act, out)]
    if draw(st.integers(0, 3)):
        ph, pw = draw(st.integers(1, oh)), draw(st.integers(1, ow))
        pstride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        ppad = draw(st.sampled_from(["SAME", "VALID"]))
        if draw(st.booleans()):  # a global pool, as DS-CNN ends
            (ph, pw), pstride, ppad = (oh, ow), (1, 1), "VALID"
        pout = TensorInfo((out_size(oh, ph, pstride[0], ppad)[0], out_size(ow, pw, pstride[1], ppad)[0], oc),
                          out.scale, out.zero_point)
        pact = Activation.for_output(draw(st.sampled_from(["NONE", "RELU", "RELU6"])), pout)
        layers.append(Pool2D("AVERAGE", (ph, pw), pstride, ppad, pact, pout))
    return Graph(inp, layers)


# --- ADD and DAGs (test_graph) ----------------------------------------------------------------------

def pick(first: int, count: int, channels: int, out: TensorInfo) -> Conv2D:
    """1x1 conv that copies channels [first, first + count) of a (scale 1, zero point 0) input into
    ``out`` unchanged: weight 1, weight scale = out scale, so the requantization multiplier is exactly
    1.0, and bias = -out zero point. The ADD behind it thus sees exactly the int8 values we put into
    the input, at the quantization ``out`` declares."""
    w = np.zeros((count, 1, 1, channels), np.int8)
    w[np.arange(count), 0, 0, first + np.arange(count)] = 1
    return Conv2D(w, np.full(count, -out.zero_point, np.int32), np.full(count, out.scale, np.float32), (1, 1),
                  "VALID", NO_CLAMP, out)


def add_graph(shape: tuple[int, int, int], a: TensorInfo, b: TensorInfo, out: TensorInfo, act: str) -> Graph:
    """input (H, W, 2C) -> [a = first C channels, b = last C channels] -> a + b: input channels c and
    C + c are the ADD's operands at every pixel."""
    h, w, c = shape
    inp = TensorInfo((h, w, 2 * c), 1.0, 0)
    layers = [pick(0, c, 2 * c, a), pick(c, c, 2 * c, b), Add(Activation.for_output(act, out), out)]
    return Graph(inp, layers, "add", reads=[(0,), (0,), (1, 2)])


# Scales (a, b, out) built so that TFLM's roundings hit exact ties (all float32-exact):
TIES = {
    # equal power-of-two input scales: the sum lands on half an output step for every odd u + v, and
    # the output rescale is a rounding doubling high multiply (by 2^30) followed by a rounding shift
    "equal_scales_half_steps": (2**-4, 2**-4, 2**-3),
    # b / (2 a) = 2^-2 + 2^-22: b's multiplier is 2^30 + 2^10, so x * 2^20 * m is an odd multiple of
    # 2^30 for every odd x - a tie in the doubling high multiply - before a rounding shift by 1
    "input_multiplier_ties": (2**-5, 2**-6 + 2**-26, 2**-5),
    # the same with the operands swapped and a finer output scale
    "input_ties_swapped": (2**-6 + 2**-26, 2**-5, 2**-7),
    # b is 2^-33 of a: its multiplier flushes to zero exactly as TFLM's QuantizeMultiplier does
    "tiny_ratio_flushes_to_zero": (1.0, 2**-33, 1 / 64),
    # the smallest output scale TFLM accepts (multiplier just below 1): most sums saturate
    "largest_output_multiplier": (0.5, 0.25, 0.5 / 2**19 * 1.0001),
    # scales with nothing special about them
    "ordinary": (0.0473, 0.1129, 0.0951),
}

# ADD operand and output scales, float32-exact as TFLite stores them.
add_scales = st.floats(min_value=1e-4, max_value=1.0, allow_nan=False).map(lambda s: float(np.float32(s)))


@st.composite
def random_add(draw):
    """An ADD graph with random shape, scales (sometimes a constructed tie), zero points and fused
    activation; rows of random operands."""
    shape = (draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 4)))
    if draw(st.booleans()):
        sa, sb, so = (float(np.float32(s)) for s in TIES[draw(st.sampled_from(sorted(TIES)))])
    else:
        sa = draw(add_scales)
        sb = sa if draw(st.booleans()) else draw(add_scales)
        so = draw(add_scales)
    za, zb, zo = (draw(st.integers(-128, 127)) for _ in range(3))
    act = draw(st.sampled_from(["NONE", "RELU", "RELU6"]))
    g = add_graph(shape, TensorInfo(shape, sa, za), TensorInfo(shape, sb, zb), TensorInfo(shape, so, zo), act)
    return g, rows(g, 3, draw(st.integers(0, 2**32 - 1)))


@st.composite
def random_dag(draw):
    """Equal-shaped tensors wired at random: 3x3 convs, identity reshapes (views) and ADDs reading
    any earlier tensors; tensors nobody read are then summed into the output, so every tensor is
    read (what Graph.validate requires)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = (draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 3)))

    def info() -> TensorInfo:
        return TensorInfo(shape, float(np.float32(10 ** rng.uniform(-2, -0.5))), int(rng.integers(-128, 128)))

    inp = info()
    layers, reads = [], []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["conv", "conv", "add", "reshape"]))
        n = len(layers) + 1  # tensors so far
        if kind == "conv":
            c = shape[2]
            layers.append(Conv2D(rng.integers(-127, 128, (c, 3, 3, c)).astype(np.int8),
                                 rng.integers(-999, 999, c).astype(np.int32),
                                 (10.0 ** rng.uniform(-3, -1.5, c)).astype(np.float32), (1, 1), "SAME",
                                 NO_CLAMP, info()))
            reads.append((draw(st.integers(0, n - 1)),))
        elif kind == "add":
            out = info()
            layers.append(Add(Activation.for_output(draw(st.sampled_from(["NONE", "RELU"])), out), out))
            reads.append((draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))))
        else:
            src = draw(st.integers(0, n - 1))
            t = inp if src == 0 else layers[src - 1].output
            layers.append(Reshape(TensorInfo(shape, t.scale, t.zero_point)))
            reads.append((src,))
    read = {t for r in reads for t in r}
    for t in range(len(layers)):
        if t not in read:
            out = info()
            layers.append(Add(NO_CLAMP, out))
            reads.append((len(layers) - 1, t))
            read |= {t, len(layers) - 1}
    return Graph(inp, layers, "dag", reads=reads)


# --- float32 graphs (test_paper_exact) ---------------------------------------------------------------

def float_values(rng: np.random.Generator, shape, magnitude: str, density: float = 1.0) -> np.ndarray:
    """float32 values whose sums depend on the order they are added in: 'wide' spans 2^-12..2^12, so
    small terms are lost against large ones unless added in the same order; 'tiny' makes products
    denormal (below 2^-126), which soft-float and SSE must both round exactly; 'unit' is ordinary."""
    lo, hi = {"unit": (-2, 1), "wide": (-12, 12), "tiny": (-68, -58)}[magnitude]
    v = rng.uniform(1, 2, shape) * np.exp2(rng.integers(lo, hi + 1, shape)) * rng.choice([-1, 1], shape)
    return (v * (rng.random(shape) < density)).astype(np.float32)


@st.composite
def random_float_graph(draw):
    """conv or depthwise (any kernel, stride, padding, activation), maybe a pool, flatten, FC, maybe a
    softmax: every float32 op, its weights at density 1, 0.5 or 0.1 (zeros for tflm-skip to skip)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    magnitude = draw(st.sampled_from(["unit", "wide", "tiny"]))
    density = draw(st.sampled_from([1.0, 0.5, 0.1]))
    h, w, c = draw(st.integers(3, 8)), draw(st.integers(3, 8)), draw(st.integers(1, 3))
    inp = TensorInfo.float32((h, w, c))
    k, padding = draw(st.integers(1, 3)), draw(st.sampled_from(["SAME", "VALID"]))
    stride = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    oh, ow = out_size(h, k, stride[0], padding)[0], out_size(w, k, stride[1], padding)[0]
    act = draw(st.sampled_from(["NONE", "RELU", "RELU6"]))
    no_scales = np.zeros(0, np.float32)
    if draw(st.booleans()):
        oc = draw(st.integers(1, 4))
        out = TensorInfo.float32((oh, ow, oc))
        layers = [Conv2D(float_values(rng, (oc, k, k, c), magnitude, density), float_values(rng, (oc,), magnitude),
                         no_scales, stride, padding, Activation.for_output(act, out), out)]
    else:
        oc = c * draw(st.integers(1, 2))
        out = TensorInfo.float32((oh, ow, oc))
        layers = [DepthwiseConv2D(float_values(rng, (1, k, k, oc), magnitude, density),
                                  float_values(rng, (oc,), magnitude), no_scales, stride, padding,
                                  Activation.for_output(act, out), out)]
    cur = out
    if draw(st.booleans()) and min(cur.shape[:2]) >= 2:
        ppad = draw(st.sampled_from(["SAME", "VALID"]))
        pout = TensorInfo.float32((out_size(cur.shape[0], 2, 2, ppad)[0], out_size(cur.shape[1], 2, 2, ppad)[0],
                                   cur.shape[2]))
        layers.append(Pool2D(draw(st.sampled_from(["MAX", "AVERAGE"])), (2, 2), (2, 2), ppad,
                             Activation.for_output(draw(st.sampled_from(["NONE", "RELU"])), pout), pout))
        cur = pout
    layers.append(Reshape(TensorInfo.float32((cur.size,))))
    units = draw(st.integers(1, 6))
    fout = TensorInfo.float32((units,))
    layers.append(FullyConnected(float_values(rng, (units, cur.size), magnitude, density),
                                 float_values(rng, (units,), magnitude), no_scales,
                                 Activation.for_output(draw(st.sampled_from(["NONE", "RELU"])), fout), fout))
    if draw(st.booleans()):
        layers.append(Softmax(draw(st.sampled_from([1.0, 0.5, 3.0])), fout))
    return Graph(inp, layers), magnitude


# --- single ops (test_unary_ops) ---------------------------------------------------------------------

# Single-op models: scales log-uniform over four decades (float32-exact), small dimensions.
op_scales = st.floats(-3.5, 0.5).map(lambda e: float(np.float32(10.0**e)))
dims = st.integers(1, 5)


def power_of_two_or(draw, base: float) -> float:
    """A scale that is ``base`` times a power of two (exact ties) half of the time, else random."""
    if draw(st.booleans()):
        return float(np.float32(base * 2.0 ** draw(st.integers(-4, 4))))
    return draw(op_scales)


@st.composite
def mean_case(draw):
    """A MEAN over height and width (kept dims or not) whose output quantization is the input's, a
    power-of-two multiple of it (exact half-way ties), or random."""
    h, w, c = draw(st.integers(1, 9)), draw(st.integers(1, 9)), draw(dims)
    inp = TensorInfo((h, w, c), draw(op_scales), draw(zero_points))
    keep = draw(st.booleans())
    kind = draw(st.sampled_from(["same", "pow2", "random"]))
    if kind == "same":    # one quantization in and out: means of .5 are exact ties when h x w is even
        out_q = (inp.scale, inp.zero_point)
    else:
        out_q = (power_of_two_or(draw, inp.scale) if kind == "pow2" else draw(op_scales), draw(zero_points))
    return Graph(inp, [Mean(keep, TensorInfo((1, 1, c) if keep else (c,), *out_q))])


@st.composite
def requantize_case(draw):
    """An int8 -> int8 QUANTIZE over 256 values, its output scale a power-of-two multiple of the input's
    (exact half-way ties) half of the time."""
    s_in = draw(op_scales)
    return Graph(TensorInfo((256,), s_in, draw(zero_points)),
                 [Quantize(TensorInfo((256,), power_of_two_or(draw, s_in), draw(zero_points)))])
