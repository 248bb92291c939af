"""Requantization by threshold table: TFLM's arithmetic, bit-exact, in ~26 Cortex-M0+ cycles instead of 48.

For one output channel, acc -> clamp(MultiplyByQuantizedMultiplier(acc) + offset, act_min, act_max) is
a non-decreasing step function of the accumulator (as long as the left shift cannot wrap), with at
most 256 steps. Let t_v be the smallest accumulator whose output is >= v. Then for x = acc - xs
clamped to [0, w] (xs: the last accumulator of the lowest output, w: where the highest begins)

    y0 = (((x >> p) * m) >> 24)          is the output level or one below it, and
    out = o_min + y0 + (x >= T[y0])      with T[j] = t_{o_min + j + 1} - xs, T[V] = 0xffffffff.

m and p are chosen here so that y0 is never more than one level low and never high: a constraint
at the first and last accumulator of every level (y0 is monotone), intersected; exactness is
therefore by construction, and the tests compare every kernel with the host reference and TFLM.
The table costs 4 bytes per output level per channel; codegen uses it where that fits
(``TABLE_MAX_BYTES``) and falls back to the 48-cycle arithmetic (kernels/pp_m0.h) elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint import multiply_by_quantized_multiplier

TABLE_MAX_BYTES = 24 * 1024   # per layer
NEVER = 0xFFFFFFFF


@dataclass(frozen=True)
class RqTable:
    xs: int                   # accumulators <= xs give o_min
    w: int                    # accumulators >= xs + w give the highest output
    m: int
    p: int
    o_min: int
    thresholds: np.ndarray    # uint32, V + 1 entries


def outputs(acc: np.ndarray, multiplier: int, shift: int, offset: int, lo: int, hi: int) -> np.ndarray:
    """The exact int8 output TFLM computes for each accumulator of one channel."""
    y = multiply_by_quantized_multiplier(np.asarray(acc, np.int64), np.int64(multiplier), np.int64(shift))
    return np.clip(y + offset, lo, hi)


def _first_reaching(levels: np.ndarray, f, lo: int, hi: int) -> np.ndarray:
    """For each level, the smallest accumulator in [lo, hi] with f(acc) >= level (f non-decreasing,
    f(hi) >= every level): a vectorized binary search."""
    a = np.full(levels.shape, lo, np.int64)
    b = np.full(levels.shape, hi, np.int64)
    while np.any(a < b):
        mid = (a + b) // 2
        ok = f(mid) >= levels
        b = np.where(ok, mid, b)
        a = np.where(ok, a, mid + 1)
    return a


def build(multiplier: int, shift: int, offset: int, lo: int, hi: int, bound: int) -> RqTable | None:
    """The table for accumulators in [-bound, bound]; None if the left shift could wrap (then the
    function is not monotone) or no (m, p) keeps y0 within one level."""
    if bound << max(shift, 0) >= 2**31:
        return None

    def f(acc):
        return outputs(acc, multiplier, shift, offset, lo, hi)

    o_min, o_max = int(f(-bound)), int(f(bound))
    if o_max == o_min:
        return RqTable(-bound, 0, 0, 0, o_min, np.array([NEVER], np.uint32))
    t = _first_reaching(np.arange(o_min + 1, o_max + 1), f, -bound, bound)  # t[j] = t_{o_min + j + 1}
    v = o_max - o_min
    # The origin xs may sit below the last accumulator of the lowest output: the lowest output is a
    # clamp, not a regular step, so its end is off the grid of the others, and y0 has no offset term.
    # Moving the origin down by delta (a shift of about k levels) puts the other steps back on a grid
    # that y0 can follow from x = 0.
    slope = v / max(int(t[-1] - t[0]), 1)
    for k in (0, 0.5, 1, 1.5, 2, 3):
        xs = int(t[0]) - 1 - int(k / slope)
        if xs < -(2**30) - 1:
            break
        found = _fit(t - xs, v)
        if found is not None:
            m, p = found
            return RqTable(xs, int(t[-1] - xs), m, p, o_min, np.concatenate([t - xs, [NEVER]]).astype(np.uint32))
    return None


def _fit(thresholds: np.ndarray, v: int) -> tuple[int, int] | None:
    """(m, p) with y0 = ((x >> p) * m) >> 24 in {level - 1, level} for every x in [0, w]."""
    w = int(thresholds[-1])
    # level j covers x in [start_j, end_j] (empty levels have start > end and constrain nothing)
    start = np.concatenate([[0], thresholds])
    end = np.concatenate([thresholds - 1, [w]])
    used = start <= end
    j = np.arange(v + 1)[used]
    for p in range(32):
        s, e = start[used] >> p, end[used] >> p
        need = j >= 2
        if np.any(need & (s == 0)):
            continue  # y0 would be 0 where the level is >= 2
        lower = np.where(need, -((-(j - 1) << 24) // np.maximum(s, 1)), 0)
        upper = np.where(e > 0, (((j + 1) << 24) - 1) // np.maximum(e, 1), 2**32 - 1)
        m_lo, m_hi = int(lower.max()), int(min(upper.min(), 2**32 - 1))
        if m_lo <= m_hi:
            assert (w >> p) * m_lo < 2**32
            return m_lo, p
    return None


def apply(table: RqTable, acc: np.ndarray) -> np.ndarray:
    """What the kernels compute from the table (for tests)."""
    x = np.clip(np.asarray(acc, np.int64) - table.xs, 0, table.w)
    y0 = ((x >> table.p) * table.m) >> 24
    return table.o_min + y0 + (x >= table.thresholds[y0].astype(np.int64))
