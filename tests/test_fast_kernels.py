"""The hand-scheduled kernels (kernels/dense.c, kernels/pp_m0.h), the generated sparse convolutions
(mcu/sparsegen.py) and the table requantization (mcu/rqtable.py) at the shapes that reach their tails
and special cases: channel counts that leave partial groups, odd window rows, rows longer than an
immediate offset reaches, FC sizes that are not multiples of the 8-row or 8-input passes, SAME and
VALID padding, strides, per-tensor and per-channel scales, both requantizations, staged or not.
Everything is compared bit for bit with the host reference, which test_int8 holds to TFLM."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerprune.fixedpoint import quantize_multiplier
from powerprune.ir import Activation, Conv2D, Graph, TensorInfo
from powerprune.mcu import codegen, rqtable, staging, streams
from powerprune.mcu.profile import run_on_rp2040
from powerprune.reference import run

from .strategies import budget, conv_fc_graph


@budget(300)  # numpy only, cheap; the table edges are many
@given(log_scale=st.floats(-7, 0.7), offset=st.integers(-128, 127), lo=st.integers(-128, 127),
       width=st.integers(0, 255), bound_bits=st.integers(4, 29), seed=st.integers(0, 2**32 - 1))
def test_table_requantization_equals_tflm_arithmetic(log_scale, offset, lo, width, bound_bits, seed):
    """rqtable's clamp, multiply and one threshold give TFLM's output for every accumulator tried:
    random ones, the step edges and the domain ends; no table only where one is not expected."""
    m, shift = quantize_multiplier(10.0**log_scale)
    hi, bound = min(127, lo + width), 2**bound_bits
    table = rqtable.build(m, shift, offset, lo, hi, bound)
    if table is None:
        assert shift > 0  # only effective scales >= 1 (steeper than one level per accumulator step)
        return
    edges = table.xs + table.thresholds[:-1].astype(np.int64)
    rng = np.random.default_rng(seed)
    acc = np.concatenate([rng.integers(-bound, bound + 1, 2000), edges - 1, edges, edges + 1, [-bound, bound]])
    acc = np.clip(acc, -bound, bound)
    assert np.array_equal(rqtable.apply(table, acc), rqtable.outputs(acc, m, shift, offset, lo, hi))


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["dense", "sparse"])
@budget(12)  # each example builds firmware and runs it on the virtual Pico
@given(g=conv_fc_graph(), staged=st.booleans(), tables=st.booleans(), generated=st.booleans(),
       seed=st.integers(0, 1000))
def test_fast_kernels_bit_exact_on_the_virtual_pico(kernels, g, staged, tables, generated, seed):
    """Both requantizations, data staged in SRAM or read from flash, sparse convolutions generated or
    data-driven: the virtual Pico's outputs equal the host reference's."""
    x = np.random.default_rng(seed).integers(-128, 128, size=(2,) + g.input.shape).astype(np.int8)
    got = pico_outputs_on_paths(g, x, kernels, staged=staged, tables=tables, generated=generated)
    assert np.array_equal(got, run(g, x).reshape(2, -1))


def pico_outputs_on_paths(g, x, kernels: str, *, staged: bool, tables: bool, generated: bool = True) -> np.ndarray:
    """The virtual Pico's outputs (one row per input) with the fast kernels' other paths forced where
    asked: nothing staged in SRAM, no requantization tables, no generated sparse code."""
    with pytest.MonkeyPatch.context() as mp:
        if not staged:
            mp.setattr(staging, "STAGING_BUDGET", 0)
        if not tables:
            mp.setattr(rqtable, "TABLE_MAX_BYTES", 0)
        if not generated:
            mp.setattr(streams, "GENERATED_CODE_MAX", 0)
        return run_on_rp2040(g, x, kernels=kernels).outputs.reshape(len(x), -1)


def test_paths_are_reached():
    """The generated code's special cases exist: negative, power-of-two and unit weights, offsets past
    LDRB's reach, channels past 31, staging; tables where they fit and arithmetic where they do not."""
    rng = np.random.default_rng(0)
    inp = TensorInfo((9, 12, 7), 0.02, -3)
    out = TensorInfo((9, 12, 35), 0.05, 4)
    w = rng.choice(np.array([-128, -3, -1, 1, 2, 5, 127], np.int8), size=(35, 5, 5, 7))
    conv = Conv2D(w, np.zeros(35, np.int32), np.full(35, 0.001, np.float32), (1, 1), "SAME",
                  Activation("NONE", -128, 127), out)
    asm = codegen.generate(Graph(inp, [conv]), "sparse").model_c
    assert "pp_sgen_layer0" in asm and "negs r1, r0" in asm and "lsls r2, r1, #7" in asm  # -128 via -x
    assert "subs r5, r5, r" in asm and "negs r2, r2" in asm  # negative weights without a negated input
    assert "adds r4, #27" in asm and "adds r3, #" in asm and ".section .data.layer0_code" in asm  # staged
    assert "adcs r3, r2" not in asm  # 35 tables of 256 levels exceed TABLE_MAX_BYTES: arithmetic
    few = Conv2D(w[:6], np.zeros(6, np.int32), np.full(6, 0.001, np.float32), (1, 1), "SAME",
                 Activation("NONE", -128, 127), TensorInfo((9, 12, 6), 0.05, 4))
    assert "adcs r3, r2" in codegen.generate(Graph(inp, [few]), "sparse").model_c
    assert "layer0_t" in codegen.generate(Graph(inp, [few]), "dense").model_c


def test_no_literal_pool_lands_between_a_conditional_branch_and_its_label():
    """A pool there pushed `beq` past its 256-byte reach ("branch out of range"; hypothesis found a
    many-channel 1x1 sparse conv that did it)."""
    from powerprune.mcu.sparsegen import _with_literal_pools

    lines = [f"ldr r{i % 4}, ={i}" for i in range(400)]  # 2 bytes each: a pool falls due at the beq
    branchy = lines[:399] + ["cmp r0, #1", "beq 4f"] + [f"adds r1, #{i % 8}" for i in range(8)] + ["4:"] + lines
    out = _with_literal_pools(branchy)
    beq, label = out.index("beq 4f"), out.index("4:")
    assert ".ltorg" in out and ".ltorg" not in out[beq:label]
