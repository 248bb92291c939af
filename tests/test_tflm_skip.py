"""The zero-skipping runtime (`tflm-skip`, the paper's adapted TFLM) on int8: the skipping loops for
weighted layers, the stock kernels for the rest, bit-exact with TFLM, and what skipping saves and costs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerprune.ir import (
    Activation,
    Conv2D,
    FullyConnected,
    Graph,
    Pool2D,
    Reshape,
    TensorInfo,
)
from powerprune.mcu.codegen import ADAPTED_KERNELS, KERNEL_SETS, choose_kernel
from powerprune.mcu.profile import profile, run_on_rp2040
from powerprune.oracle import tflm_run
from powerprune.sweep import SweepConfig
from powerprune.tflite import export_tflite

from .strategies import budget, random_graph


def _dense_conv_fc(density: float, seed: int = 0) -> Graph:
    """A conv + pool + FC int8 model whose weights are nonzero with probability ``density``."""
    rng = np.random.default_rng(seed)

    def w(shape):
        q = rng.integers(1, 128, size=shape) * rng.choice([-1, 1], size=shape)
        return (q * (rng.random(shape) < density)).astype(np.int8)

    inp = TensorInfo((12, 12, 2), 0.02, -3)
    conv_out = TensorInfo((10, 10, 8), 0.05, -20)
    pool_out = TensorInfo((5, 5, 8), 0.05, -20)
    fc_out = TensorInfo((10,), 0.1, 4)
    return Graph(inp, [
        Conv2D(w((8, 3, 3, 2)), rng.integers(-999, 999, 8).astype(np.int32), np.full(8, 0.01, np.float32), (1, 1),
               "VALID", Activation.for_output("RELU", conv_out), conv_out),
        Pool2D("AVERAGE", (2, 2), (2, 2), "VALID", Activation.for_output("NONE", pool_out), pool_out),
        Reshape(TensorInfo((200,), 0.05, -20)),
        FullyConnected(w((10, 200)), rng.integers(-999, 999, 10).astype(np.int32), np.array([0.003], np.float32),
                       Activation.for_output("NONE", fc_out), fc_out)])


def test_tflm_skip_gives_weighted_layers_the_skipping_loops_and_pools_the_stock_ones():
    g = _dense_conv_fc(0.5)
    impls = [choose_kernel(layer, inp, ADAPTED_KERNELS) for _, layer, inp in g.steps()]
    assert impls == ["tflmskip", "tflmref", "tflmref", "tflmskip"]
    assert ADAPTED_KERNELS in KERNEL_SETS and ADAPTED_KERNELS not in SweepConfig().kernels  # default run as before


@pytest.mark.slow
@budget(8)  # each example builds firmware and runs it on the virtual Pico
@given(g=random_graph(), seed=st.integers(0, 1000))
def test_tflm_skip_int8_is_bit_exact_with_tflm(g, seed):
    """Random conv/depthwise/pool/FC layers at weight density 1, 0.5 or 0.1, against TFLM's interpreter."""
    x = np.random.default_rng(seed).integers(-128, 128, size=(2,) + g.input.shape).astype(np.int8)
    got = run_on_rp2040(g, x, kernels=ADAPTED_KERNELS).outputs.reshape(2, -1)
    assert np.array_equal(got, tflm_run(export_tflite(g), x).reshape(2, -1))


@pytest.mark.slow
def test_tflm_skip_int8_saves_little_and_costs_on_dense_layers():
    """In int8 the M0+ multiplies in one cycle, so skipping a zero weight saves an input load and a
    multiply-accumulate but costs a compare and branch on every weight, and the stock loops spend most
    of their time outside the multiply (offsets per access, bounds checks, 64-bit requantization). So
    the adapted runtime is slower than the stock one on dense and half-zero layers (a 50 %-sparse LeNet:
    18.9 M cycles against 18.3 M) and only a little faster on very sparse ones. The paper's large
    savings come from float32, where the skipped multiply and add are soft-float calls."""
    x = np.random.default_rng(0).integers(-128, 128, size=(1, 12, 12, 2)).astype(np.int8)
    layers = {}
    for density in (1.0, 0.5, 0.1):
        g = _dense_conv_fc(density)
        for k in ("tflm-ref", ADAPTED_KERNELS):
            p = profile(g, x, k, "sram")
            assert p.bit_exact
            layers[density, k] = np.array(p.cycles_per_layer)[[0, 3]]  # the conv and the FC layer
    ratio = {d: layers[d, ADAPTED_KERNELS] / layers[d, "tflm-ref"] for d in (1.0, 0.5, 0.1)}
    assert (ratio[1.0] > 1).all() and (ratio[0.5] > 1).all()
    assert ratio[0.1][0] < 1 and ratio[0.1][1] < 0.93
    assert np.allclose(layers[1.0, "tflm-ref"], layers[0.1, "tflm-ref"], rtol=2e-3)  # the stock loops ignore zeros
