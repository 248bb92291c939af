"""The int8 IR as a DAG of tensors: ADD against TFLite Micro (host and every kernel set on the virtual
Pico), residual graphs end to end, the arena planner's liveness, and MLPerf Tiny's ResNet-8."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given

from powerprune.cli import main
from powerprune.ir import (
    Activation,
    Add,
    Conv2D,
    FullyConnected,
    Graph,
    IRError,
    Reshape,
    TensorInfo,
    add_requantization,
)
from powerprune.mcu import rqtable, staging, streams
from powerprune.mcu.arena import plan_arena
from powerprune.mcu.codegen import KERNEL_SETS, OUR_SETS, generate, layer_kernels
from powerprune.mcu.profile import profile, run_on_rp2040
from powerprune.mcu.streams import add_tables
from powerprune.oracle import tflm_run
from powerprune.reference import run
from powerprune.tflite import export_tflite, import_tflite, load_tflite

from .strategies import NO_CLAMP, TIES, add_graph, budget, random_add, random_dag, rows

FIXTURES = Path(__file__).parent / "fixtures" / "real_models"
RESNET8 = FIXTURES / "pretrainedResnet_quant.tflite"
BIG_ARENA = 1 << 20  # TFLM's default arena (10x the model) is too small for weightless models


def flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(len(a), -1)


# --- ADD against TFLM: its operands set exactly, at any quantization ----------------------------------

def operands(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One input row whose ADD operands are the int8 arrays ``u`` and ``v`` (H, W, C)."""
    return np.concatenate([u, v], axis=-1).astype(np.int8)[None]


TIE_ZERO_POINTS = ((0, 0, 0), (3, -5, 1), (-128, 127, -128), (17, 17, -40))


def exhaustive_operands() -> np.ndarray:
    """Every (u, v) int8 pair once: a 256 x 256 image with u down the rows and v across."""
    u = np.arange(-128, 128)
    grid = np.stack(np.meshgrid(u, u, indexing="ij"), axis=-1)
    return operands(grid[..., :1], grid[..., 1:])


@pytest.mark.parametrize("name", TIES)
def test_add_matches_tflm_on_every_operand_pair_at_constructed_ties(name):
    sa, sb, so = (float(np.float32(s)) for s in TIES[name])
    x = exhaustive_operands()
    for (za, zb, zo) in TIE_ZERO_POINTS:
        for act in ("NONE", "RELU", "RELU6"):
            g = add_graph((256, 256, 1), TensorInfo((256, 256, 1), sa, za), TensorInfo((256, 256, 1), sb, zb),
                          TensorInfo((256, 256, 1), so, zo), act)
            ours, theirs = run(g, x), tflm_run(export_tflite(g), x, arena_size=BIG_ARENA)
            assert np.array_equal(ours, theirs), (name, za, zb, zo, act, int((ours != theirs).sum()))


def test_the_constructed_ties_are_ties():
    """The configurations above do what they claim (so the test above cannot pass vacuously)."""
    def rq(name: str):
        a, b, out = (TensorInfo((1,), float(np.float32(s)), 0) for s in TIES[name])
        return add_requantization(a, b, out)

    assert rq("input_multiplier_ties").input_multipliers == (1 << 30, (1 << 30) + (1 << 10))
    assert rq("input_multiplier_ties").input_shifts == (0, -1)
    assert rq("input_ties_swapped").input_multipliers == ((1 << 30) + (1 << 10), 1 << 30)
    assert rq("tiny_ratio_flushes_to_zero").input_multipliers[1] == 0
    half = rq("equal_scales_half_steps")  # 2^-20: an odd u + v is half an output step
    assert (half.output_multiplier, half.output_shift) == (1 << 30, -19)
    top = rq("largest_output_multiplier")
    assert top.output_shift == 0 and top.output_multiplier > 0.999 * 2**31


def test_add_scales_tflm_would_refuse_are_an_ir_error():
    """TFLM's Prepare stops on an output multiplier >= 1 (output scale <= max input scale / 2^19)."""
    with pytest.raises(IRError, match=r"layer 2 \(ADD\): output scale .* too small"):
        add_graph((1, 1, 1), TensorInfo((1, 1, 1), 0.5, 0), TensorInfo((1, 1, 1), 0.25, 0),
                  TensorInfo((1, 1, 1), 0.5 / 2**19, 0), "NONE")


@budget(150)  # the ADD's quantization corners need more than 100
@given(case=random_add())
def test_random_adds_bit_exact_with_tflm(case):
    g, x = case
    assert np.array_equal(run(g, x), tflm_run(export_tflite(g), x, arena_size=BIG_ARENA))


@pytest.mark.slow
@pytest.mark.parametrize("kernels", KERNEL_SETS)
@budget(3)  # each example builds firmware and runs it on the virtual Pico, per kernel set
@given(case=random_add())
def test_random_adds_bit_exact_on_the_virtual_pico(kernels, case):
    g, x = case
    assert np.array_equal(flat(run_on_rp2040(g, x, kernels=kernels).outputs), flat(run(g, x)))


@pytest.mark.slow
def test_constructed_ties_on_the_virtual_pico():
    """Every constructed tie on both C kernels (the stock one of the baselines, the table-driven one of
    ours), on 64 x 64 operand pairs that include all odd and even values near zero and the int8
    extremes."""
    u = np.r_[-128:-96, -16:16, 96:128][:64]
    grid = np.stack(np.meshgrid(u, np.roll(u, 7), indexing="ij"), axis=-1)
    x = operands(grid[..., :1], grid[..., 1:])
    for name, scales_ in TIES.items():
        sa, sb, so = (float(np.float32(s)) for s in scales_)
        g = add_graph((64, 64, 1), TensorInfo((64, 64, 1), sa, 3), TensorInfo((64, 64, 1), sb, -5),
                      TensorInfo((64, 64, 1), so, 1), "NONE")
        theirs = tflm_run(export_tflite(g), x, arena_size=BIG_ARENA)
        assert np.array_equal(run(g, x), theirs), name
        for kernels in ("tflm-ref", "dense"):
            assert np.array_equal(flat(run_on_rp2040(g, x, kernels=kernels).outputs), flat(theirs)), (name, kernels)


@pytest.mark.parametrize("name", TIES)
def test_add_tables_equal_the_arithmetic_on_every_operand_pair(name):
    """The fast ADD's tables (streams.add_tables) against TFLM's arithmetic (``AddRequant``, which
    test_add_matches_tflm_on_every_operand_pair_at_constructed_ties holds to TFLM) on all 65,536
    operand pairs, at every constructed tie, zero point set and activation, evaluated the way
    pp_add_dense does. A threshold table exists for each of them, so the kernel's fast path is the one
    tested."""
    sa, sb, so = (float(np.float32(s)) for s in TIES[name])
    u = np.arange(256, dtype=np.uint8)
    a, b = (g.ravel() for g in np.meshgrid(u, u, indexing="ij"))
    for za, zb, zo in TIE_ZERO_POINTS:
        for act in ("NONE", "RELU", "RELU6"):
            out = TensorInfo((1,), so, zo)
            clamp = Activation.for_output(act, out)
            rq = add_requantization(TensorInfo((1,), sa, za), TensorInfo((1,), sb, zb), out)
            terms, table = add_tables(rq, clamp.min, clamp.max)
            assert table is not None and terms.dtype == np.int64 and np.abs(terms).max() < 2**31
            x = (terms[0][a] + terms[1][b]) % 2**32                    # uint32, as the kernel adds
            x = np.where(x > table.w, np.where(x >= 2**31, 0, table.w), x)
            y0 = ((x >> table.p) * table.m % 2**32) >> 24
            fast = table.o_min + y0 + (x >= table.thresholds[y0])
            exact = rq.output(rq.scaled_input(0, a.view(np.int8)) + rq.scaled_input(1, b.view(np.int8)),
                              clamp.min, clamp.max)
            assert np.array_equal(fast, exact), (za, zb, zo, act)


@pytest.mark.slow
def test_the_fast_add_without_a_threshold_table_rounds_by_arithmetic(monkeypatch):
    """When no threshold table fits, pp_add_dense rounds the sum with TFLM's arithmetic: forced here,
    on the ties of a half output step."""
    monkeypatch.setattr(rqtable, "build", lambda *args: None)
    sa, sb, so = (float(np.float32(s)) for s in TIES["equal_scales_half_steps"])
    g = add_graph((16, 16, 1), TensorInfo((16, 16, 1), sa, 3), TensorInfo((16, 16, 1), sb, -5),
                  TensorInfo((16, 16, 1), so, 1), "RELU")
    assert "pp_add_dense(&layer2" in generate(g, "dense").model_c and "layer2_t[" not in generate(g, "dense").model_c
    x = operands(*(np.random.default_rng(3).integers(-128, 128, (2, 16, 16, 1))))
    assert np.array_equal(flat(run_on_rp2040(g, x, kernels="dense").outputs), flat(run(g, x)))


def test_the_baselines_run_add_on_the_stock_kernel_ours_on_the_tables():
    g = add_graph((2, 2, 1), *(TensorInfo((2, 2, 1), 0.1, 0) for _ in range(3)), "NONE")
    for kernels in KERNEL_SETS:
        impl = "dense" if kernels in OUR_SETS else "stock"
        assert layer_kernels(g, kernels)[2] == impl
        assert f"pp_add_{impl}(&layer2, (pp_arena + " in generate(g, kernels).model_c


# --- a residual network made here: exported, run by TFLM, host and the Pico -----------------------

def residual_graph(seed: int = 0, h: int = 8, w: int = 8, c: int = 4, density: float = 0.5) -> Graph:
    """conv 3x3 (ReLU) -> conv 3x3 -> ADD with the skip (ReLU) -> conv 3x3 -> ADD with the first
    block's output -> reshape -> fully connected: two residual blocks on h x w x c, weights at 50%
    density by default so the sparse kernels have something to skip."""
    rng = np.random.default_rng(seed)

    def t(scale: float, zp: int, shape=(h, w, c)) -> TensorInfo:
        return TensorInfo(shape, float(np.float32(scale)), zp)

    def conv(cin: int, out: TensorInfo, act: str) -> Conv2D:
        wq = (rng.integers(-127, 128, (c, 3, 3, cin)) * (rng.random((c, 3, 3, cin)) < density)).astype(np.int8)
        return Conv2D(wq, rng.integers(-2000, 2000, c).astype(np.int32),
                      (10.0 ** rng.uniform(-3, -2, c)).astype(np.float32), (1, 1), "SAME",
                      Activation.for_output(act, out), out)

    inp = t(1 / 128, -1, (h, w, 3))
    t1, t2, t3, t4, t5 = t(0.05, -128), t(0.08, 4), t(0.07, -128), t(0.06, -9), t(0.09, -20)
    f = TensorInfo((h * w * c,), t5.scale, t5.zero_point)
    out = t(0.2, 5, (10,))
    fc = FullyConnected(rng.integers(-127, 128, (10, f.size)).astype(np.int8),
                        rng.integers(-500, 500, 10).astype(np.int32), np.array([0.002], np.float32),
                        Activation.for_output("NONE", out), out)
    layers = [conv(3, t1, "RELU"), conv(c, t2, "NONE"), Add(Activation.for_output("RELU", t3), t3),
              conv(c, t4, "NONE"), Add(Activation.for_output("NONE", t5), t5), Reshape(f), fc]
    #        tensor: 1             2                    3 = 1 + 2                           4
    #                5 = 3 + 4     6 (view of 5)        7 = output
    return Graph(inp, layers, "residual", reads=[(0,), (1,), (1, 2), (3,), (4, 3), (5,), (6,)])


def test_residual_graph_round_trips_and_matches_tflm():
    g = residual_graph()
    data = export_tflite(g)
    again = import_tflite(data, name=g.name)
    assert again.reads == g.reads and not again.is_chain
    assert export_tflite(again) == data
    x = rows(g, 200, seed=3)
    assert np.array_equal(run(g, x), tflm_run(data, x))


@pytest.mark.slow
@pytest.mark.parametrize("kernels", KERNEL_SETS)
def test_residual_graph_bit_exact_on_the_virtual_pico(kernels):
    g = residual_graph()
    x = rows(g, 3, seed=4)
    assert np.array_equal(flat(run_on_rp2040(g, x, kernels=kernels).outputs), flat(tflm_run(export_tflite(g), x)))


@pytest.mark.slow
@pytest.mark.parametrize(("kernels", "generated"), [("dense", True), ("sparse", True), ("sparse", False),
                                                    ("auto", True)])
def test_layers_left_in_flash_are_fetched_once_not_per_pixel(kernels, generated, monkeypatch):
    """Nothing staged (budget 0): 32 -> 32 3x3 convolutions whose dense streams (37 KB), generated code
    (~60 KB) or sparse entries (~33 KB) are larger than the 16 KB XIP cache run in blocks of channels,
    each over all 36 pixels, and their data come from flash about once (before, once per pixel: ~36x
    the misses). The outputs equal the host's, which equals TFLM here."""
    monkeypatch.setattr(staging, "STAGING_BUDGET", 0)
    if not generated:
        monkeypatch.setattr(streams, "GENERATED_CODE_MAX", 0)
    g = residual_graph(seed=5, h=6, w=6, c=32, density=0.9)
    x = rows(g, 2, seed=6)
    assert np.array_equal(run(g, x), tflm_run(export_tflite(g), x))
    impls = layer_kernels(g, kernels)
    assert impls[1] in ("dense", "sparse") and impls[2] == "dense"  # the big conv, the fast ADD
    assert not generate(g, kernels).staged
    data = sum(staging.kernel_data_bytes(layer, inp, impl)
               for (_, layer, inp), impl in zip(g.steps(), impls, strict=True))
    p = profile(g, x, kernels)
    assert p.bit_exact
    assert p.xip_misses / len(x) < 1.5 * data / 8  # 8-byte lines; kernels and their code add a little


# --- the arena planner ----------------------------------------------------------------------------

def live_overlaps(g: Graph) -> list[str]:
    """Pairs of tensors alive at the same time whose arena bytes overlap, from the plan and the
    graph alone (a reshape is a view of its input and may share its bytes)."""
    offsets, arena = plan_arena(g)
    n = len(g.layers)
    root = list(range(1, n + 1))  # tensor t = layer t - 1's output; root: the tensor it is a view of
    for i, layer in enumerate(g.layers):
        if isinstance(layer, Reshape) and g.reads[i][0] > 0:
            root[i] = root[g.reads[i][0] - 1]
    last = g.last_reads()
    bad = []
    for p in range(1, n + 1):
        for q in range(p + 1, n + 1):
            if root[p - 1] == root[q - 1] or offsets[p - 1] is None or offsets[q - 1] is None:
                continue
            if not (q - 1 <= last[p]):  # p is dead before q is written
                continue
            (a0, a1), (b0, b1) = ((offsets[t - 1], offsets[t - 1] + g.tensor(t).size) for t in (p, q))
            if a0 < b1 and b0 < a1:
                bad.append(f"tensors {p} and {q}")
            assert max(a1, b1) <= arena
    return bad


def skip_over_three_convs() -> Graph:
    """input -> conv -> conv -> conv -> conv -> ADD(first conv's output, last conv's output). A
    ping-pong plan would put the third conv's output on top of the first one's, which the ADD still
    reads."""
    rng = np.random.default_rng(1)
    s = TensorInfo((6, 6, 3), 0.05, -3)

    def conv(out: TensorInfo) -> Conv2D:
        return Conv2D(rng.integers(-127, 128, (3, 3, 3, 3)).astype(np.int8), rng.integers(-99, 99, 3).astype(np.int32),
                      np.full(3, 0.01, np.float32), (1, 1), "SAME", NO_CLAMP, out)

    layers = [conv(s), conv(s), conv(s), conv(s), Add(NO_CLAMP, TensorInfo(s.shape, 0.1, 0))]
    return Graph(s, layers, "skip", reads=[(0,), (1,), (2,), (3,), (1, 4)])


@pytest.mark.slow
def test_a_tensor_read_later_is_never_overwritten():
    g = skip_over_three_convs()
    offsets, arena = plan_arena(g)
    skip = range(offsets[0], offsets[0] + 108)  # tensor 1, alive until the ADD (layer 4)
    for i in (1, 2, 3):
        assert not set(skip) & set(range(offsets[i], offsets[i] + 108)), (i, offsets)
    assert arena == 3 * 108  # the skip plus the ping-pong pair, and no more
    assert live_overlaps(g) == []
    x = rows(g, 2, seed=5)
    theirs = tflm_run(export_tflite(g), x)
    assert np.array_equal(run(g, x), theirs)
    assert np.array_equal(flat(run_on_rp2040(g, x, kernels="tflm-ref").outputs), flat(theirs))


# Plans of chain models recorded with the planner before graphs became DAGs (commit 878b2a1):
CHAIN_PLANS = {
    "../keras_tfmot_lenet_75.tflite": ([0, 4704, 0, 5480, 5480, 0, 5796, None], 5880),
    "hello_world_int8.tflite": ([0, 16, None], 32),
    "ad01_int8.tflite": ([0, 128, 0, 128, 0, 128, 0, 128, 0, None], 256),
}


@pytest.mark.parametrize("name", CHAIN_PLANS)
def test_chains_keep_the_plan_they_had(name):
    g = load_tflite(FIXTURES / name)
    assert g.is_chain
    assert plan_arena(g) == CHAIN_PLANS[name]
    assert live_overlaps(g) == []


@budget(200)  # the wirings are many; each example is host-only
@given(g=random_dag())
def test_random_dags_plan_safely_and_match_tflm(g):
    assert live_overlaps(g) == []
    _, arena = plan_arena(g)
    assert arena <= sum((t.size + 3) & ~3 for t in (g.tensor(i) for i in range(1, len(g.layers))))
    x = rows(g, 2, seed=0)
    assert np.array_equal(run(g, x), tflm_run(export_tflite(g), x, arena_size=BIG_ARENA))


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["tflm-ref", "auto"])
@budget(4)  # each example builds firmware and runs it on the virtual Pico, per kernel set
@given(g=random_dag())
def test_random_dags_bit_exact_on_the_virtual_pico(kernels, g):
    x = rows(g, 2, seed=1)
    assert np.array_equal(flat(run_on_rp2040(g, x, kernels=kernels).outputs), flat(run(g, x)))


# --- the IR's gate ---------------------------------------------------------------------------------

def test_the_wiring_is_checked_with_the_layer_named():
    t = TensorInfo((2, 2, 1), 0.1, 0)
    add = Add(NO_CLAMP, t)
    cases = {
        "reads tensor 2, but only tensors 0..1": [(0,), (0, 2)],
        r"layer 1 \(ADD\): reads 1 tensor\(s\) \[1\], it takes 2": [(0,), (1,)],
        r"tensor 1 \(the output of layer 0 \(RESHAPE\)\) is never read": [(0,), (0, 0)],
        r"reads lists 1 layers' inputs for 2 layers": [(0,)],
    }
    for message, reads in cases.items():
        with pytest.raises(IRError, match=message):
            Graph(t, [Reshape(t), add], reads=reads)
    with pytest.raises(IRError, match=r"shapes must be equal \(broadcasting is not supported\)"):
        Graph(t, [Reshape(TensorInfo((4,), 0.1, 0)), add], reads=[(0,), (0, 1)])
    g = Graph(t, [Reshape(t), add], reads=[(0,), (0, 1)])
    assert g.readers(0) == [0, 1] and g.inputs_of(1) == (t, t) and g.last_reads() == [1, 1, 2]
    assert [i for i, _, _ in g.steps()] == [0, 1] and not g.is_chain


# --- MLPerf Tiny's ResNet-8 -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet8():
    data = RESNET8.read_bytes()
    return data, import_tflite(data, name="resnet8")


@pytest.mark.slow
def test_resnet8_imports_as_a_dag_and_matches_tflm(resnet8):
    data, g = resnet8
    assert [la.op for la in g.layers].count("ADD") == 3 and g.layers[-1].op == "SOFTMAX"
    assert g.reads[3] == (1, 3) and g.reads[6] == (4,)  # the first skip; the strided 1x1 shortcut conv
    x = rows(g, 100, seed=0)
    assert np.array_equal(run(g, x), tflm_run(data, x))


@pytest.mark.slow
@pytest.mark.parametrize("kernels", ["tflm-ref", "auto"])
def test_resnet8_bit_exact_on_the_virtual_pico(resnet8, kernels):
    data, g = resnet8
    x = rows(g, 2, seed=1)
    assert np.array_equal(flat(run_on_rp2040(g, x, kernels=kernels).outputs), flat(tflm_run(data, x)))


@pytest.mark.slow
def test_inspect_shows_add_on_the_stock_kernel_of_the_baselines_and_ours(resnet8, tmp_path, capsys):
    path = tmp_path / "resnet8.tflite"
    path.write_bytes(resnet8[0])
    assert main(["inspect", str(path)]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if re.match(r"\s*\d+\s+ADD ", ln)]
    per_set = "/".join("dense" if k in OUR_SETS else "stock" for k in KERNEL_SETS)
    assert len(lines) == 3 and all(ln.endswith(per_set) or f"{per_set}  <-" in ln for ln in lines)
