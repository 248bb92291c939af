"""The dense depthwise convolution and average pooling (kernels/dense_dw.c), which the dense, sparse and
auto sets share: graphs drawn to reach every path (separate groups for a depth multiplier of 1 and
shared ones above it, every group size 1-6, 1x1 to 5x5 windows, strides, SAME and VALID, channel
counts that leave partial groups, both requantizations, staged or not; padded and global average
pools), compared bit for bit with the host reference, which test_int8 holds to TFLM; the keyword
spotters that motivated them against TFLM itself."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerprune.ir import Activation, DepthwiseConv2D, Pool2D, TensorInfo, requantization
from powerprune.mcu import codegen, streams
from powerprune.mcu.profile import run_on_rp2040
from powerprune.oracle import tflm_run
from powerprune.reference import run
from powerprune.tflite import load_tflite

from .strategies import budget, depthwise_pool_graph
from .test_fast_kernels import pico_outputs_on_paths

FIXTURES = Path(__file__).parent / "fixtures" / "real_models"


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["dense", "sparse", "auto"])
@budget(10)  # each example builds firmware and runs it on the virtual Pico
@given(g=depthwise_pool_graph(), staged=st.booleans(), tables=st.booleans(), seed=st.integers(0, 1000))
def test_depthwise_and_avgpool_bit_exact_on_the_virtual_pico(kernels, g, staged, tables, seed):
    """Both requantizations, stream in SRAM or read from flash: the virtual Pico's outputs equal the
    host reference's, and the fast kernels are the ones that ran."""
    assert set(codegen.layer_kernels(g, kernels)) == {"dense"}
    x = np.random.default_rng(seed).integers(-128, 128, size=(2,) + g.input.shape).astype(np.int8)
    got = pico_outputs_on_paths(g, x, kernels, staged=staged, tables=tables)
    assert np.array_equal(got, run(g, x).reshape(2, -1))


def test_depthwise_groups_reach_every_path():
    """Separate groups of every size 1-6 (depth multiplier 1) and shared ones of 2-6 (multiplier > 1; a
    shared group of 1 runs the separate one), and a
    stream whose steps end each group's tap loop: negative inside a group, not negative at its end."""
    def layer(c, dm, kh, kw=3):
        out = TensorInfo((4, 4, c * dm), 0.05, 0)
        return DepthwiseConv2D(np.ones((1, kh, kw, c * dm), np.int8), np.zeros(c * dm, np.int32),
                               np.full(c * dm, 0.01, np.float32), (1, 1), "SAME", Activation("NONE", -128, 127), out)

    sizes = set()
    for c in range(1, 14):
        sizes |= {(mode, k) for mode, _, k in streams.depthwise_groups(layer(c, 1, 3), TensorInfo((4, 4, c), 0.02, 0))}
    assert sizes == {(streams.DW_SEPARATE, k) for k in range(1, 7)}
    for dm in range(2, 14):
        sizes |= {(mode, k) for mode, _, k in streams.depthwise_groups(layer(1, dm, 3), TensorInfo((4, 4, 1), 0.02, 0))}
    assert {k for mode, k in sizes if mode == streams.DW_SHARED} == set(range(2, 7))  # 1: as separate
    # walk the stream of a 2x3 window over 7 channels as the kernel does
    lay, inp = layer(7, 1, 2), TensorInfo((4, 4, 7), 0.02, 0)
    rq = requantization(lay, inp)
    stream = streams.dense_depthwise_stream(lay, inp, rq, streams.requantizer("l", lay, rq, 7, tables=False))
    at, groups = 1, 0
    while stream[at]:
        k = stream[at] % 6 or 6
        at += 1 + k
        steps = []
        for _ in range(6):
            at += k
            steps.append(stream[at])
            at += 1
        assert all(s < 0 for s in steps[:-1]) and steps[-1] >= 0
        at += k * 9
        groups += 1
    assert groups == len(streams.depthwise_groups(lay, inp)) and at == len(stream) - 1


def test_avgpool_reciprocal_is_exact_up_to_361_taps():
    """pp_avgpool_dense divides n = |sum| + count / 2 by multiplying with ceil(2^24 / count): equal to
    the integer division for every n an int8 window can give (|sum| <= 128 count), and within 32 bits."""
    for count in range(1, 362):
        n = np.arange(0, 128 * count + count // 2 + 1, dtype=np.uint64)
        recip = np.uint64(-(-(1 << 24) // count))
        assert int(n[-1] * recip) < 2**32
        assert np.array_equal((n * recip) >> np.uint64(24), n // np.uint64(count)), count


def test_depthwise_falls_back_only_past_the_accumulator_bound():
    """A bias that can push the accumulator past 2^30 leaves the fast requantization's range: tflm-ref."""
    out = TensorInfo((3, 3, 2), 0.05, 0)
    inp = TensorInfo((3, 3, 2), 0.02, 0)

    def dw(bias):
        return DepthwiseConv2D(np.ones((1, 3, 3, 2), np.int8), np.array([bias, 0], np.int32),
                               np.full(2, 0.01, np.float32), (1, 1), "SAME", Activation("NONE", -128, 127), out)
    assert codegen.choose_kernel(dw(2**29), inp, "dense") == "dense"
    assert codegen.choose_kernel(dw(2**30), inp, "dense") == "tflmref"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["kws_ref_model", "micro_speech_quantized"])
def test_keyword_spotters_on_dense_match_tflm(name):
    """MLPerf Tiny's DS-CNN (four 3x3 depthwise layers, a global average pool) and micro_speech (one
    10x8 depthwise layer with depth multiplier 8) on the fast kernels, one row against TFLM."""
    path = FIXTURES / f"{name}.tflite"
    g = load_tflite(path)
    plan = codegen.layer_kernels(g, "dense")
    assert all(k == "dense" for (_, layer, _), k in zip(g.steps(), plan, strict=True)
               if isinstance(layer, DepthwiseConv2D | Pool2D))
    x = np.random.default_rng(3).integers(-128, 128, size=(1,) + g.input.shape, dtype=np.int8)
    got = run_on_rp2040(g, x, kernels="dense").outputs.reshape(1, -1)
    assert np.array_equal(got, tflm_run(path.read_bytes(), x).reshape(1, -1))
