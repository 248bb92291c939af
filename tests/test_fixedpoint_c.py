"""The C fixed-point helpers (kernels/pp_fixedpoint.h) against the numpy ones, compiled for the host.

The kernel sets use a 64-bit-multiply-free pp_srdhm_fast on the Cortex-M0+; this checks it against
TFLM's rule on edge cases and random operands, through a tiny shared library built with the host cc.
The stock SOFTMAX and LOGISTIC kernels use the C twins of fixedpoint.py's gemmlowp functions (exp on
negative values, 1 / (1 + x), logistic); those are compared over their whole input domains.
"""


import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerprune.fixedpoint import (
    count_leading_zeros32,
    exp_on_negative_values,
    logistic_q,
    multiply_by_quantized_multiplier,
    one_over_one_plus_x_for_x_in_0_1,
    rounding_half_sum,
    saturating_rounding_doubling_high_mul,
)

from .host_c import int32_library
from .strategies import budget, int32


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    source = ('#include "pp_fixedpoint.h"\n'
              "int32_t srdhm_fast(int32_t a, int32_t b) { return pp_srdhm_fast(a, b); }\n"
              "int32_t requant_fast(int32_t x, int32_t m, int32_t s) { return pp_requantize_fast(x, m, s); }\n"
              "int32_t requant(int32_t x, int32_t m, int32_t s) { return pp_requantize(x, m, s); }\n"
              "int32_t exp_neg(int32_t a, int32_t bits) { return pp_exp_on_negative_values(a, bits); }\n"
              "int32_t recip(int32_t a) { return pp_one_over_one_plus_x(a); }\n"
              "int32_t logistic(int32_t a, int32_t bits) { return pp_logistic_q(a, bits); }\n"
              "int32_t half_sum(int32_t a, int32_t b) { return pp_rounding_half_sum(a, b); }\n"
              "int32_t clz(int32_t a) { return pp_clz32((uint32_t)a); }\n")
    return int32_library(tmp_path_factory.mktemp("fp"), source, {
        "srdhm_fast": 2, "requant_fast": 3, "requant": 3, "exp_neg": 2, "recip": 1, "logistic": 2, "half_sum": 2,
        "clz": 1})


EDGES = [0, 1, -1, 2**31 - 1, -(2**31), -(2**31) + 1, 2**30, -(2**30), 65535, -65536, 32767, -32768]


def test_edges(lib):
    for a in EDGES:
        for b in EDGES:
            assert lib.srdhm_fast(a, b) == int(saturating_rounding_doubling_high_mul(np.array(a), np.array(b)))


@pytest.mark.slow
@budget(3000)  # a host C call per example: cheap, and the int32 domain is wide
@given(a=int32, b=int32)
def test_srdhm_fast_matches_tflm(lib, a, b):
    assert lib.srdhm_fast(a, b) == int(saturating_rounding_doubling_high_mul(np.array(a), np.array(b)))


@pytest.mark.slow
@budget(3000)  # a host C call per example: cheap, and the int32 domain is wide
@given(x=int32, m=st.integers(2**30, 2**31 - 1), s=st.integers(-31, 30))
def test_requantize_matches_numpy(lib, x, m, s):
    want = int(multiply_by_quantized_multiplier(np.array(x), np.array(m), np.array(s)))
    assert lib.requant(x, m, s) == want
    assert lib.requant_fast(x, m, s) == want


@budget(1000)  # a host C call per example: cheap
@given(a=st.integers(-(2**31), 0), bits=st.sampled_from([4, 5]))
def test_exp_on_negative_values_matches_numpy(lib, a, bits):
    """Q5.26 is softmax's input format, Q4.27 logistic's."""
    assert lib.exp_neg(a, bits) == int(exp_on_negative_values(np.array(a), bits))


@budget(1000)  # a host C call per example: cheap
@given(a=st.integers(0, 2**31 - 1))
def test_one_over_one_plus_x_matches_numpy(lib, a):
    assert lib.recip(a) == int(one_over_one_plus_x_for_x_in_0_1(np.array(a)))


@pytest.mark.slow
@budget(1000)  # a host C call per example: cheap
@given(a=int32)
def test_logistic_matches_numpy(lib, a):
    assert lib.logistic(a, 4) == int(logistic_q(np.array(a), 4))


@budget(1000)  # a host C call per example: cheap
@given(a=int32, b=int32)
def test_small_helpers_match_numpy(lib, a, b):
    assert lib.half_sum(a, b) == int(rounding_half_sum(np.array(a), np.array(b)))
    assert lib.clz(a) == int(count_leading_zeros32(np.array(a)))


def test_fixed_point_functions_at_their_edges(lib):
    for a in (0, -1, 1, -(2**31), 2**31 - 1, -(2**26), -(2**24), -(2**24) - 1, -(31 << 26)):
        for bits in (4, 5):
            if a <= 0:
                assert lib.exp_neg(a, bits) == int(exp_on_negative_values(np.array(a), bits))
            assert lib.logistic(a, bits) == int(logistic_q(np.array(a), bits))
        if a >= 0:
            assert lib.recip(a) == int(one_over_one_plus_x_for_x_in_0_1(np.array(a)))
    assert lib.clz(0) == 32 and lib.clz(-1) == 0 and lib.clz(1) == 31
    # the numbers mean what they say: exp(0) saturates; exp(-1) and 1 / (1 + 1/2) are close
    assert lib.exp_neg(0, 5) == 2**31 - 1
    assert abs(lib.exp_neg(-(1 << 26), 5) / 2**31 - np.exp(-1)) < 1e-6  # a polynomial: about 1e-7 off
    assert abs(lib.recip(1 << 30) / 2**31 - 2 / 3) < 1e-6
