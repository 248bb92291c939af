"""The cmsis-nn kernel set beyond what every-set tests reach: its requantization (CMSIS-NN's
arm_nn_requantize rounding) against TFLM's, and the depthwise and convolution paths the random graphs
of test_mcu.py rarely or never take (channel multiplier 4 and 8, the 3x3 kernel's blocks of four
channels, the 1x1 matrix-product path, odd pixel and channel counts)."""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerprune.fixedpoint import multiply_by_quantized_multiplier
from powerprune.ir import Activation, Conv2D, DepthwiseConv2D, Graph, Reshape, TensorInfo
from powerprune.ir import output_size as out_size
from powerprune.mcu.codegen import choose_kernel
from powerprune.mcu.profile import run_on_rp2040
from powerprune.reference import run

from .host_c import int32_library
from .strategies import budget, int32


@pytest.fixture(scope="module")
def requant(tmp_path_factory):
    # the kernel file itself, so the test sees exactly the static inline function the firmware uses
    source = ('#include "cmsis_nn.c"\n'
              "int32_t requant(int32_t x, int32_t m, int32_t s) { return cmsis_requantize(x, m, s); }\n")
    return int32_library(tmp_path_factory.mktemp("cmsis"), source, {"requant": 3}).requant


def tflm(x: int, m: int, s: int) -> int:
    return int(multiply_by_quantized_multiplier(np.array(x), np.array(m), np.array(s)))


EDGES = [0, 1, -1, 2, -2, 2**31 - 1, -(2**31), -(2**31) + 1, 2**30, -(2**30), 2**30 - 1, -(2**30) - 1, 65535,
         -65536, 32767, -32768]
MULTS = [0, 2**30, 2**30 + 1, 2**31 - 1, 2**31 - 2, 1518500250, 1717986918]


def test_requantize_edges_equal_tflm(requant):
    for x in EDGES:
        for m in MULTS:
            for s in range(-31, 31):
                assert requant(x, m, s) == tflm(x, m, s), (x, m, s)


@pytest.mark.slow
@budget(4000)  # a host C call per example: cheap, and the int32 domain is wide
@given(x=int32, m=st.integers(2**30, 2**31 - 1), s=st.integers(-31, 30))
def test_requantize_equals_tflm(requant, x, m, s):
    """CMSIS-NN's floor-after-nudge equals TFLM's sign-dependent nudge for every TFLM multiplier."""
    assert requant(x, m, s) == tflm(x, m, s)


@pytest.mark.slow
@budget(2000)  # a host C call per example; exact ties are rare even with the low bits cleared
@given(x=int32, m=st.integers(2**30, 2**31 - 1), s=st.integers(-31, 0))
def test_requantize_exact_half_ties_equal_tflm(requant, x, m, s):
    """Products that land exactly half-way: the 64-bit product's low 31 bits are 2^30 (or x*m+-2^30)."""
    x = x & ~0xFFFF  # many trailing zeros make exact ties in both rounding steps likely
    assert requant(x, m, s) == tflm(x, m, s)


def _layer_graph(layer_fn, h, w, c, seed):
    rng = np.random.default_rng(seed)
    inp = TensorInfo((h, w, c), 0.05, int(rng.integers(-20, 20)))
    layer = layer_fn(rng, inp)
    flat = TensorInfo((layer.output.size,), layer.output.scale, layer.output.zero_point)
    return Graph(inp, [layer, Reshape(flat)]), rng


def _depthwise(k, mult, stride, padding):
    def make(rng, inp):
        h, w, c = inp.shape
        oh, _ = out_size(h, k, stride, padding)
        ow, _ = out_size(w, k, stride, padding)
        out = TensorInfo((oh, ow, c * mult), 0.08, int(rng.integers(-10, 10)))
        return DepthwiseConv2D(rng.integers(-127, 128, size=(1, k, k, c * mult)).astype(np.int8),
                               rng.integers(-5000, 5000, size=c * mult).astype(np.int32),
                               (10.0 ** rng.uniform(-3, -1, size=c * mult)).astype(np.float32), (stride, stride),
                               padding, Activation.for_output("RELU", out), out)
    return make


def _conv(k, oc, stride, padding):
    def make(rng, inp):
        h, w, c = inp.shape
        oh, _ = out_size(h, k, stride, padding)
        ow, _ = out_size(w, k, stride, padding)
        out = TensorInfo((oh, ow, oc), 0.08, int(rng.integers(-10, 10)))
        return Conv2D(rng.integers(-127, 128, size=(oc, k, k, c)).astype(np.int8),
                      rng.integers(-5000, 5000, size=oc).astype(np.int32),
                      (10.0 ** rng.uniform(-3, -1, size=oc)).astype(np.float32), (stride, stride), padding,
                      Activation.for_output("NONE", out), out)
    return make


CASES = [
    ("dw 3x3 m1 c9 SAME s1 (3x3 kernel, blocks of 4 + leftover)", _depthwise(3, 1, 1, "SAME"), (6, 7, 9)),
    ("dw 3x3 m1 c8 SAME s2", _depthwise(3, 1, 2, "SAME"), (7, 6, 8)),
    ("dw 3x3 m1 c5 VALID", _depthwise(3, 1, 1, "VALID"), (5, 5, 5)),
    ("dw 5x5 m1 c4 SAME (generic: padding 2)", _depthwise(5, 1, 1, "SAME"), (6, 6, 4)),
    ("dw 3x3 m4 c3 SAME (multiple-of-4 path)", _depthwise(3, 4, 1, "SAME"), (5, 6, 3)),
    ("dw 2x2 m8 c2 SAME s2", _depthwise(2, 8, 2, "SAME"), (5, 5, 2)),
    ("dw 3x3 m3 c2 VALID (generic)", _depthwise(3, 3, 1, "VALID"), (5, 4, 2)),
    ("conv 1x1 oc7 odd pixels (1x1 path, odd channel and pixel)", _conv(1, 7, 1, "VALID"), (3, 5, 8)),
    ("conv 1x1 oc6 SAME (1x1 path)", _conv(1, 6, 1, "SAME"), (4, 4, 5)),
    ("conv 1x1 oc3 s2 (im2col path)", _conv(1, 3, 2, "SAME"), (5, 4, 3)),
    ("conv 3x3 oc1 SAME odd pixels", _conv(3, 1, 1, "SAME"), (3, 3, 3)),
    ("conv 5x5 oc6 SAME s2", _conv(5, 6, 2, "SAME"), (9, 7, 2)),
]


@pytest.mark.slow
@pytest.mark.parametrize("name,layer_fn,shape", CASES, ids=[c[0] for c in CASES])
def test_cmsis_nn_paths_bit_exact_on_the_virtual_pico(name, layer_fn, shape):
    g, rng = _layer_graph(layer_fn, *shape, seed=len(name))
    assert choose_kernel(g.layers[0], g.input, "cmsis-nn") == "cmsisnn"
    x = rng.integers(-128, 128, size=(2,) + g.input.shape).astype(np.int8)
    got = run_on_rp2040(g, x, kernels="cmsis-nn").outputs.reshape(2, -1)
    assert np.array_equal(got, run(g, x).reshape(2, -1)), name
