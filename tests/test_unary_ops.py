"""SOFTMAX, LOGISTIC, MEAN, PAD, QUANTIZE and DEQUANTIZE: host reference == TFLM == every kernel set.

Hypothesis draws single-op models (shapes, scales, zero points, beta), our exporter writes them and TFLM's
own interpreter runs them. Elementwise int8 ops see all 256 input codes, so every rounding case their
scales produce is met. Hard cases are built on purpose: softmax rows of equal values up to the 511 TFLM
allows (the largest output shift it accepts, and sums that are exact powers of two, where the
reciprocal's input is 0); exact half-way requantizations (scale ratios that are powers of two, and
means over a power-of-two count); float inputs at exactly k + 1/2 quantization steps and beyond the
int32 range. Two chains of every op run on the virtual Pico on every kernel set.
"""

from __future__ import annotations

import json
import subprocess
import sys

import flatbuffers
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from powerprune.fixedpoint import logistic_input_params, softmax_input_params
from powerprune.ir import (
    Activation,
    Conv2D,
    Dequantize,
    Graph,
    IRError,
    Logistic,
    Mean,
    Pad,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
    mean_multiplier,
)
from powerprune.mcu.codegen import KERNEL_SETS, choose_kernel
from powerprune.mcu.profile import run_on_rp2040
from powerprune.oracle import tflm_run
from powerprune.reference import SoftmaxAbort, run
from powerprune.tflite import TFLiteError, export_tflite, import_tflite

from .strategies import budget, dims, mean_case, op_scales, requantize_case, zero_points

SOFTMAX_OUT = (1 / 256, -128)
ALL_CODES = np.arange(-128, 128, dtype=np.int8)
PROPERTY = budget(60)  # each example exports a model and runs TFLM on it: fewer than 100 keep the file quick


def agree_with_tflm(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Host output; asserts TFLM gives the same values (and dtype), and that the model survives an
    import/export round trip unchanged."""
    ours = run(graph, x)
    model = export_tflite(graph)
    theirs = tflm_run(model, x)
    assert ours.dtype == theirs.dtype
    differ = (ours.reshape(len(x), -1) != theirs.reshape(len(x), -1)).any(axis=1)
    assert not differ.any(), f"{differ.sum()} of {len(x)} rows differ from TFLM"
    assert export_tflite(import_tflite(model, name=graph.name)) == model
    return ours


# --- SOFTMAX ---------------------------------------------------------------------------------------

@PROPERTY
@given(depth=st.integers(1, 40), outer=st.lists(dims, max_size=2), scale=op_scales, zp=zero_points,
       beta=st.sampled_from([1.0, 0.5, 2.0, 0.3]), seed=st.integers(0, 2**32 - 1))
def test_softmax_matches_tflm(depth, outer, scale, zp, beta, seed):
    shape = (*outer, depth)
    graph = Graph(TensorInfo(shape, scale, zp), [Softmax(beta, TensorInfo(shape, *SOFTMAX_OUT))])
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, (6, *shape)).astype(np.int8)
    x[0] = np.int8(rng.integers(-128, 128))                 # every value ties for the maximum
    # the cut-off: the smallest difference that still counts and the first that does not (their exps
    # are below the output's resolution, so this row checks that nothing breaks there)
    _, _, diff_min = softmax_input_params(beta, scale)
    row = x[1].reshape(-1, depth)
    row[:, 0] = 127
    if depth > 1 and 127 + diff_min >= -128:
        row[:, 1] = 127 + diff_min
    if depth > 2 and 127 + diff_min - 1 >= -128:
        row[:, 2] = 127 + diff_min - 1
    agree_with_tflm(graph, x)


@pytest.mark.parametrize("depth", [1, 2, 3, 64, 255, 256, 257, 500, 511])
def test_softmax_rows_of_equal_values_up_to_the_largest_shift_tflm_accepts(depth):
    """k equal maxima sum to k x 2^19 in Q12.19: a power of two gives the reciprocal the input 0, and
    k = 257 .. 511 makes TFLM's final rounding shift 31, the largest it allows."""
    graph = Graph(TensorInfo((depth,), 0.05, 0), [Softmax(1.0, TensorInfo((depth,), *SOFTMAX_OUT))])
    x = np.full((3, depth), 7, np.int8)
    x[1, ::2] = 6                          # two levels: half the row one step below the maximum
    x[2, : depth // 2] = -128
    agree_with_tflm(graph, x)


def test_softmax_of_the_real_models_shape_with_every_difference():
    """One row per difference 0 .. -255 to a maximum of 127: each output code the kernel can reach."""
    shape = (2,)
    graph = Graph(TensorInfo(shape, 0.14469251, 14), [Softmax(1.0, TensorInfo(shape, *SOFTMAX_OUT))])
    x = np.stack([np.full(256, 127, np.int8), ALL_CODES[::-1]], axis=1)
    out = agree_with_tflm(graph, x)
    assert len(np.unique(out[:, 1])) > 30


@pytest.mark.slow
def test_softmax_row_where_tflm_aborts_is_refused_not_guessed(tmp_path):
    """600 equal values: TFLM's int8 softmax fails a TFLITE_CHECK (the process aborts); the host
    reference raises instead of inventing an output."""
    graph = Graph(TensorInfo((600,), 0.1, 0), [Softmax(1.0, TensorInfo((600,), *SOFTMAX_OUT))])
    x = np.zeros((1, 600), np.int8)
    with pytest.raises(SoftmaxAbort, match=r"layer 0 \(SOFTMAX\): .* 512 or more"):
        run(graph, x)
    (tmp_path / "m.tflite").write_bytes(export_tflite(graph))
    code = ("import numpy as np, sys; from powerprune.oracle import tflm_run; "
            "tflm_run(open(sys.argv[1], 'rb').read(), np.zeros((1, 600), np.int8)); print('no abort')")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.tflite")], capture_output=True, text=True)
    assert proc.returncode != 0 and "no abort" not in proc.stdout
    run(graph, np.arange(600).astype(np.int8)[None])  # distinct values: the sum stays small, no error


# --- LOGISTIC --------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [2.0**-28, 2.0**-27, 1e-4, 0.02, 1 / 16, 0.1, 1.0, 8.0, 100.0])
@pytest.mark.parametrize("zp", [-128, -3, 0, 77])
def test_logistic_matches_tflm_on_every_code(scale, zp):
    """Scale 2^-28 is the smallest TFLM can rescale; at 100 the saturation radius is 0 (every input
    saturates, and 0 goes to -128)."""
    graph = Graph(TensorInfo((256,), scale, zp), [Logistic(TensorInfo((256,), *SOFTMAX_OUT))])
    agree_with_tflm(graph, np.stack([ALL_CODES, ALL_CODES[::-1]]))


@PROPERTY
@given(scale=st.floats(-4, 1.5).map(lambda e: float(np.float32(10.0**e))), zp=zero_points)
def test_logistic_matches_tflm_for_any_scale(scale, zp):
    graph = Graph(TensorInfo((256,), scale, zp), [Logistic(TensorInfo((256,), *SOFTMAX_OUT))])
    agree_with_tflm(graph, ALL_CODES[None])


# --- MEAN ------------------------------------------------------------------------------------------

@given(graph=mean_case(), seed=st.integers(0, 2**32 - 1))
def test_mean_matches_tflm(graph, seed):
    x = np.random.default_rng(seed).integers(-128, 128, (8, *graph.input.shape)).astype(np.int8)
    x[0] = 127
    x[1] = -128
    agree_with_tflm(graph, x)


def test_mean_with_a_capped_fold_and_half_way_sums():
    """input / output scale 2^-24 caps the 1/n fold at 31 + shift = 8 (n = 512); a 2 x 2 mean of
    one quantization puts sums of 2 mod 4 exactly half way."""
    inp = TensorInfo((16, 32, 2), 2.0**-20, 5)
    capped = Graph(inp, [Mean(True, TensorInfo((1, 1, 2), 2.0**4, -3))])
    assert mean_multiplier(inp, capped.layers[0].output)[1] == -31
    rng = np.random.default_rng(3)
    agree_with_tflm(capped, rng.integers(-128, 128, (20, 16, 32, 2)).astype(np.int8))
    halves = Graph(TensorInfo((2, 2, 1), 0.1, 0), [Mean(False, TensorInfo((1,), 0.1, 0))])
    x = np.array([[a, a, a + 1, a + 1] for a in range(-128, 127)], np.int8).reshape(-1, 2, 2, 1)
    out = agree_with_tflm(halves, x)
    assert np.array_equal(out[:, 0], np.where(x.sum(axis=(1, 2, 3)) > 0, np.arange(-128, 127) + 1,
                                              np.arange(-128, 127)))  # half away from zero


# --- PAD -------------------------------------------------------------------------------------------

@PROPERTY
@given(shape=st.lists(dims, min_size=1, max_size=3), pads=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)),
                                                                    min_size=3, max_size=3),
       scale=op_scales, zp=zero_points, seed=st.integers(0, 2**32 - 1))
def test_pad_matches_tflm(shape, pads, scale, zp, seed):
    paddings = tuple(pads[:len(shape)])
    out = tuple(n + a + b for n, (a, b) in zip(shape, paddings, strict=True))
    graph = Graph(TensorInfo(tuple(shape), scale, zp), [Pad(paddings, TensorInfo(out, scale, zp))])
    agree_with_tflm(graph, np.random.default_rng(seed).integers(-128, 128, (3, *shape)).astype(np.int8))


# --- QUANTIZE and DEQUANTIZE -------------------------------------------------------------------------

@PROPERTY
@given(graph=requantize_case())
def test_int8_requantize_matches_tflm_on_every_code(graph):
    agree_with_tflm(graph, np.stack([ALL_CODES, ALL_CODES[::-1]]))


@PROPERTY
@given(exponent=st.integers(-8, 2), random_scale=op_scales, pow2=st.booleans(), zp=zero_points,
       seed=st.integers(0, 2**32 - 1))
def test_float_quantize_and_dequantize_match_tflm(exponent, random_scale, pow2, zp, seed):
    """float32 in, float32 out: QUANTIZE rounds x / scale half away from zero (exact .5 steps when the
    scale is a power of two), DEQUANTIZE multiplies back."""
    scale = 2.0**exponent if pow2 else random_scale
    rng = np.random.default_rng(seed)
    steps = np.concatenate([np.arange(-140, 140) + 0.5, rng.normal(0, 60, 120)])
    x = (steps * np.float32(scale)).astype(np.float32).reshape(-1, 40)
    graph = Graph(TensorInfo.float32((40,)), [Quantize(TensorInfo((40,), scale, zp)),
                                             Dequantize(TensorInfo.float32((40,)))])
    out = agree_with_tflm(graph, x)
    assert out.dtype == np.float32
    agree_with_tflm(Graph(graph.input, graph.layers[:1]), x)                  # int8 out


def test_float_quantize_beyond_int32_and_nan_do_what_tflm_does():
    """TFLM casts round(x / scale) to int32; out of range that is undefined in C++ and INT32_MIN on the
    x86 host, which the zero point then wraps: -128 for a zero point >= 0, 127 below. We match it."""
    x = np.array([[3e9, -3e9, np.inf, -np.inf, np.nan, 1.1e9, 0.26, -0.26]], np.float32)
    for zp in (3, -3):
        graph = Graph(TensorInfo.float32((8,)), [Quantize(TensorInfo((8,), 0.5, zp))])
        out = agree_with_tflm(graph, x)[0]
        assert (out[:6] == (-128 if zp >= 0 else 127)).all()


def test_dequantize_matches_tflm_on_every_code():
    for scale, zp in ((0.1, 3), (1 / 256, -128), (3.7e-3, 100)):
        graph = Graph(TensorInfo((256,), scale, zp), [Dequantize(TensorInfo.float32((256,)))])
        agree_with_tflm(graph, ALL_CODES[None])


# --- every kernel set on the virtual Pico ----------------------------------------------------------

def float_chain() -> Graph:
    """float32 in -> QUANTIZE -> requantize -> PAD -> LOGISTIC -> MEAN (keep dims) -> RESHAPE -> SOFTMAX
    -> DEQUANTIZE: float32 out."""
    q1 = TensorInfo((4, 5, 3), 2.0**-4, 3)           # a power of two: k + 1/2 steps are exact ties
    q2 = TensorInfo((4, 5, 3), 2.0**-3, -9)          # ratio 1/2: every odd code is a half-way tie
    padded = TensorInfo((5, 7, 4), 2.0**-3, -9)
    sig = TensorInfo((5, 7, 4), *SOFTMAX_OUT)
    mean = TensorInfo((1, 1, 4), 1 / 512, -100)
    return Graph(TensorInfo.float32((4, 5, 3)), [
        Quantize(q1), Quantize(q2), Pad(((1, 0), (0, 2), (0, 1)), padded), Logistic(sig), Mean(True, mean),
        Reshape(TensorInfo((4,), mean.scale, mean.zero_point)), Softmax(1.0, TensorInfo((4,), *SOFTMAX_OUT)),
        Dequantize(TensorInfo.float32((4,)))], name="float_chain")


def int8_chain() -> Graph:
    """int8 in -> PAD -> CONV_2D (whose kernel differs per set) -> MEAN -> LOGISTIC -> QUANTIZE -> SOFTMAX."""
    rng = np.random.default_rng(7)
    inp = TensorInfo((6, 6, 3), 0.05, 4)
    padded = TensorInfo((8, 8, 3), 0.05, 4)
    conv = TensorInfo((6, 6, 8), 0.2, -20)
    conv_layer = Conv2D(rng.integers(-127, 128, (8, 3, 3, 3)).astype(np.int8),
                        rng.integers(-3000, 3000, 8).astype(np.int32), np.full(8, 0.004, np.float32), (1, 1),
                        "VALID", Activation.for_output("RELU", conv), conv)
    mean = TensorInfo((8,), 0.1, 0)
    return Graph(inp, [Pad(((1, 1), (1, 1), (0, 0)), padded), conv_layer, Mean(False, mean),
                       Logistic(TensorInfo((8,), *SOFTMAX_OUT)), Quantize(TensorInfo((8,), 1 / 16, 0)),
                       Softmax(1.0, TensorInfo((8,), *SOFTMAX_OUT))], name="int8_chain")


@pytest.mark.slow
def test_chains_of_every_op_are_bit_exact_on_every_kernel_set():
    rng = np.random.default_rng(11)
    f = float_chain()
    xf = (rng.integers(-130, 130, (6, 4, 5, 3)) + 0.5).astype(np.float32) * np.float32(2.0**-4)
    xf[0] = rng.normal(0, 3, (4, 5, 3)).astype(np.float32)
    i = int8_chain()
    xi = rng.integers(-128, 128, (6, 6, 6, 3)).astype(np.int8)
    for graph, x in ((f, xf), (i, xi)):
        ours = agree_with_tflm(graph, x)
        for kernels in KERNEL_SETS:
            pico = run_on_rp2040(graph, x, kernels=kernels).outputs.reshape(ours.shape)
            assert pico.dtype == ours.dtype
            assert np.array_equal(pico, ours), f"{graph.name} on {kernels}: {(pico != ours).sum()} values differ"


@pytest.mark.slow
def test_the_largest_softmax_shift_on_the_pico():
    """511 equal values (rounding shift 31) and two-level rows; the stock kernel is the same C on every
    set, so one set runs it."""
    graph = Graph(TensorInfo((511,), 0.05, 0), [Softmax(1.0, TensorInfo((511,), *SOFTMAX_OUT))])
    x = np.full((3, 511), 7, np.int8)
    x[1, ::2] = 6
    x[2, :255] = -128
    ours = agree_with_tflm(graph, x)
    assert np.array_equal(run_on_rp2040(graph, x, kernels="tflm-ref").outputs.reshape(ours.shape), ours)


def test_every_kernel_set_uses_the_one_stock_kernel():
    for _, layer, inp in float_chain().steps():
        if not isinstance(layer, Reshape):
            assert {choose_kernel(layer, inp, k) for k in KERNEL_SETS} == {"stock"}


# --- the .tflite boundary and the IR refuse what TFLM would refuse ------------------------------------

def edited(graph: Graph, edit) -> bytes:
    """``graph`` exported, then changed by ``edit(model)`` on the flatbuffer's object API."""
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(export_tflite(graph), 0))
    edit(model)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tensor_named(model, name: str):
    return next(t for t in model.subgraphs[0].tensors if t.name in (name, name.encode()))


def test_import_names_operator_and_tensor_of_what_tflm_refuses():
    softmax = Graph(TensorInfo((10,), 0.1, 0), [Softmax(1.0, TensorInfo((10,), *SOFTMAX_OUT))])

    def output_scale(m):
        tensor_named(m, "layer0/output").quantization.scale = [0.1]
    with pytest.raises(TFLiteError, match=r"operator 0 \(SOFTMAX\): output \(tensor 1 'layer0/output'\) scale 0.1"):
        import_tflite(edited(softmax, output_scale))

    logistic = Graph(TensorInfo((10,), 0.1, 0), [Logistic(TensorInfo((10,), *SOFTMAX_OUT))])

    def tiny_input(m):
        tensor_named(m, "input").quantization.scale = [1e-9]
    with pytest.raises(TFLiteError, match=r"operator 0 \(LOGISTIC\): input \(tensor 0 'input'\) scale 1e-09"):
        import_tflite(edited(logistic, tiny_input))

    mean = Graph(TensorInfo((3, 3, 2), 0.1, 0), [Mean(False, TensorInfo((2,), 0.1, 0))])

    def channel_axis(m):
        m.buffers[tensor_named(m, "layer0/axes").buffer].data = np.array([1, 3], "<i4").view(np.uint8)
    with pytest.raises(TFLiteError, match=r"operator 0 \(MEAN\): axes \(tensor \d+ 'layer0/axes'\) are \[1, 3\]"):
        import_tflite(edited(mean, channel_axis))

    pad = Graph(TensorInfo((3, 3, 2), 0.1, 0), [Pad(((1, 1), (0, 0), (0, 0)), TensorInfo((5, 3, 2), 0.1, 0))])

    def batch_padding(m):
        m.buffers[tensor_named(m, "layer0/paddings").buffer].data = np.array(
            [1, 0, 1, 1, 0, 0, 0, 0], "<i4").view(np.uint8)
    with pytest.raises(TFLiteError, match=r"operator 0 \(PAD\): paddings \(tensor \d+ 'layer0/paddings'\) pad the "):
        import_tflite(edited(pad, batch_padding))

    def float_output(m):  # a float32 tensor a PAD writes
        tensor_named(m, "layer0/output").type = fb.TensorType.FLOAT32
    with pytest.raises(TFLiteError, match=r"operator 0 \(PAD\): output .* is FLOAT32"):
        import_tflite(edited(pad, float_output))


def test_ir_keeps_float_at_the_boundary_and_checks_tflm_constraints():
    f = TensorInfo.float32((4,))
    q = TensorInfo((4,), 0.1, 0)
    with pytest.raises(IRError, match="must feed a QUANTIZE"):
        Graph(f, [Softmax(1.0, TensorInfo((4,), *SOFTMAX_OUT))])
    with pytest.raises(IRError, match="DEQUANTIZE must be the last layer"):
        Graph(q, [Dequantize(f), Quantize(q)])
    with pytest.raises(IRError, match="only DEQUANTIZE writes float32"):
        Graph(q, [Quantize(f)])
    with pytest.raises(IRError, match="scale 1/256"):
        Graph(q, [Softmax(1.0, TensorInfo((4,), 0.1, -128))])
    with pytest.raises(IRError, match="at most 4095"):
        Graph(TensorInfo((5000,), 0.1, 0), [Softmax(1.0, TensorInfo((5000,), *SOFTMAX_OUT))])
    with pytest.raises(IRError, match="not above 2\\^-26"):
        Graph(TensorInfo((4,), 1e-9, 0), [Softmax(1.0, TensorInfo((4,), *SOFTMAX_OUT))])
    with pytest.raises(IRError, match="copies int8 values unchanged"):
        Graph(TensorInfo((3,), 0.1, 0), [Pad(((1, 0),), TensorInfo((4,), 0.2, 0))])
    with pytest.raises(IRError, match="NHWC"):
        Graph(q, [Mean(True, TensorInfo((1, 1, 4), 0.1, 0))])
    assert logistic_input_params(2.0**-28)[1] == 0  # the smallest scale validate admits


# --- command line -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_cli_runs_a_float_model_and_inspect_names_the_stock_kernel(tmp_path, capsys):
    from powerprune.cli import main

    graph = float_chain()
    (tmp_path / "f.tflite").write_bytes(export_tflite(graph))
    x = np.clip(np.random.default_rng(0).normal(0, 2, (5, 4, 5, 3)), -7, 7).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    for on, kernels in (("host", "tflm-ref"), ("rp2040", "auto")):
        assert main(["infer", str(tmp_path / "f.tflite"), "--inputs", str(tmp_path / "x.npy"), "--output",
                     str(tmp_path / f"{on}.npy"), "--on", on, "--kernels", kernels]) == 0
    host, pico = np.load(tmp_path / "host.npy"), np.load(tmp_path / "rp2040.npy")
    assert host.dtype == np.float32 and np.array_equal(host, pico)
    assert np.array_equal(host, tflm_run(export_tflite(graph), x).reshape(5, -1))
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "f.tflite")]) == 0
    out = capsys.readouterr().out
    assert "layer 6 (SOFTMAX): one stock kernel" in out and "model input is float32" in out
    assert main(["inspect", str(tmp_path / "f.tflite"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["kernel"] for r in rows] == ["stock"] * 5 + [None, "stock", "stock"]
    np.save(tmp_path / "q.npy", np.zeros((1, 4, 5, 3), np.int8))
    assert main(["infer", str(tmp_path / "f.tflite"), "--inputs", str(tmp_path / "q.npy"), "--output",
                 str(tmp_path / "y.npy")]) == 2
    assert "takes float32 inputs" in capsys.readouterr().err


@pytest.mark.slow
def test_a_float_model_over_the_serial_protocol_of_a_virtual_board(tmp_path, capsys):
    """deploy + measure: float32 rows go out as 4 bytes per value, float32 outputs come back and match
    the host reference bit for bit."""
    from powerprune.cli import main
    from powerprune.mcu.deploy import deploy
    from powerprune.mcu.virtual_board import VirtualBoard

    graph = float_chain()
    (tmp_path / "f.tflite").write_bytes(export_tflite(graph))
    deploy(graph, tmp_path / "out", kernels="dense")
    with VirtualBoard(tmp_path / "out" / "firmware.uf2") as board:
        assert main(["measure", "--port", board.port, "--model", str(tmp_path / "f.tflite"), "--images", "3",
                     "--json"]) == 0
    report = json.loads(capsys.readouterr().out.splitlines()[-1])["board"]
    assert report["images"] == 3 and report["bit_exact"]
