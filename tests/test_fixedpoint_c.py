"""The C requantization (kernels/pp_fixedpoint.h) against the numpy one, compiled for the host.

The kernel sets use a 64-bit-multiply-free pp_srdhm_fast on the Cortex-M0+; this checks it against
TFLM's rule on edge cases and random operands, through a tiny shared library built with the host cc.
"""


import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from powerprune.fixedpoint import multiply_by_quantized_multiplier, saturating_rounding_doubling_high_mul

from .host_c import int32_library

int32 = st.integers(-(2**31), 2**31 - 1)


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    source = ('#include "pp_fixedpoint.h"\n'
              "int32_t srdhm_fast(int32_t a, int32_t b) { return pp_srdhm_fast(a, b); }\n"
              "int32_t requant_fast(int32_t x, int32_t m, int32_t s) { return pp_requantize_fast(x, m, s); }\n"
              "int32_t requant(int32_t x, int32_t m, int32_t s) { return pp_requantize(x, m, s); }\n")
    return int32_library(tmp_path_factory.mktemp("fp"), source, {"srdhm_fast": 2, "requant_fast": 3, "requant": 3})


EDGES = [0, 1, -1, 2**31 - 1, -(2**31), -(2**31) + 1, 2**30, -(2**30), 65535, -65536, 32767, -32768]


def test_edges(lib):
    for a in EDGES:
        for b in EDGES:
            assert lib.srdhm_fast(a, b) == int(saturating_rounding_doubling_high_mul(np.array(a), np.array(b)))


@settings(max_examples=3000, deadline=None)
@given(a=int32, b=int32)
def test_srdhm_fast_matches_tflm(lib, a, b):
    assert lib.srdhm_fast(a, b) == int(saturating_rounding_doubling_high_mul(np.array(a), np.array(b)))


@settings(max_examples=3000, deadline=None)
@given(x=int32, m=st.integers(2**30, 2**31 - 1), s=st.integers(-31, 30))
def test_requantize_matches_numpy(lib, x, m, s):
    want = int(multiply_by_quantized_multiplier(np.array(x), np.array(m), np.array(s)))
    assert lib.requant(x, m, s) == want
    assert lib.requant_fast(x, m, s) == want
