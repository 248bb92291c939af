"""SVDF on the host: bit-exact with TFLM's integer kernel, with an int8 or an int16 activation state, in
both state modes (each inference one time step; the memory of the last steps is TFLM's variable tensor).

Hypothesis draws single-SVDF models (features, units, rank, memory, state dtype, scales, zero points)
that our exporter writes and TFLM runs, row by row with a reset before each and as one stream. Built
on purpose: an int8 state whose zero point pushes the new activation past the int8 range, where the
TFLM this project runs wraps around (it adds the zero point after the clamp).
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from powerprune.ir import SVDF, Graph, IRError, TensorInfo
from powerprune.ops.svdf import run_stateful
from powerprune.oracle import tflm_run
from powerprune.reference import run
from powerprune.tflite import TFLiteError, export_tflite, import_tflite, load_tflite

KEYWORD = Path(__file__).parent / "fixtures" / "real_models" / "keyword_scrambled_8bit.tflite"
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ARENA = 1 << 20


def _svdf(rng: np.random.Generator, features: int, units: int, rank: int, memory: int, state: TensorInfo,
          feature_scale: float, time_scale: float, out: TensorInfo, in_q: tuple[float, int]) -> Graph:
    filters = units * rank
    if state.dtype == "int8":
        time = rng.integers(-127, 128, (filters, memory)).astype(np.int8)
    else:
        time = rng.integers(-32767, 32768, (filters, memory)).astype(np.int16)
    layer = SVDF(rng.integers(-127, 128, (filters, features)).astype(np.int8), time,
                 rng.integers(-3000, 3000, units).astype(np.int32), feature_scale, time_scale, rank, "RELU",
                 TensorInfo((filters * memory,), state.scale, state.zero_point, state.dtype), out)
    return Graph(TensorInfo((features,), *in_q), [layer])


def _agree_with_tflm(graph: Graph, x: np.ndarray) -> None:
    data = export_tflite(graph)
    assert export_tflite(import_tflite(data)) == data
    for stream in (False, True):
        ours = run(graph, x, stream=stream)
        theirs = tflm_run(data, x, arena_size=ARENA, stream=stream)
        assert (ours.reshape(len(x), -1) == theirs.reshape(len(x), -1)).all(), f"stream={stream}"


@PROPERTY
@given(features=st.integers(1, 10), units=st.integers(1, 6), rank=st.integers(1, 3), memory=st.integers(1, 8),
       int16_state=st.booleans(), state_scale=st.floats(0.01, 1.0), state_power=st.integers(-14, -8),
       state_zero=st.integers(-128, 127), feature_scale=st.floats(1e-3, 0.05), time_scale=st.floats(1e-3, 0.05),
       out_q=st.tuples(st.floats(0.01, 1.0), st.integers(-128, 127)),
       in_q=st.tuples(st.floats(0.01, 0.1), st.integers(-128, 127)), seed=st.integers(0, 2**32 - 1))
def test_small_svdfs_match_tflm_in_both_state_modes(features, units, rank, memory, int16_state, state_scale,
                                                    state_power, state_zero, feature_scale, time_scale, out_q,
                                                    in_q, seed):
    rng = np.random.default_rng(seed)
    if int16_state:  # int16 tensors are symmetric; a finer time scale keeps the output in range
        state, time_scale = TensorInfo((1,), 2.0**state_power, 0, "int16"), time_scale / 256
    else:
        state = TensorInfo((1,), state_scale, state_zero, "int8")
    graph = _svdf(rng, features, units, rank, memory, state, feature_scale, time_scale, TensorInfo((units,), *out_q),
                  in_q)
    x = rng.integers(-128, 128, (2 * memory + 4, features)).astype(np.int8)
    _agree_with_tflm(graph, x)


def test_an_int8_state_whose_zero_point_overflows_the_new_activation_wraps_as_tflm_does():
    """State zero point 100 and activations near the top of the range: clamp, then + 100, then int8."""
    rng = np.random.default_rng(4)
    graph = _svdf(rng, 4, 2, 1, 3, TensorInfo((1,), 0.01, 100, "int8"), 0.05, 0.01, TensorInfo((2,), 0.5, 0),
                  (0.1, 0))
    layer = graph.layers[0]
    layer.weights_feature[:] = 127
    x = np.full((6, 4), 127, np.int8)
    state = run_stateful(layer, [x[:1]], (graph.input,), [np.full((1, 6), 100, np.int8)])[1][0]
    assert state[0, -1] < 0  # 127 + 100 wrapped
    _agree_with_tflm(graph, x)


def test_a_rank_that_does_not_divide_the_filters_is_refused():
    rng = np.random.default_rng(0)
    graph = _svdf(rng, 3, 2, 2, 2, TensorInfo((1,), 0.1, 0, "int8"), 0.01, 0.01, TensorInfo((2,), 0.1, 0), (0.1, 0))
    layer = graph.layers[0]
    layer.rank = 3
    with pytest.raises(IRError, match=r"^layer 0 \(SVDF\): rank 3 must be >= 1 and divide the 4 filters"):
        Graph(graph.input, [layer])


def _keyword_interior() -> bytes:
    """keyword_scrambled_8bit without its int16 ends (the first QUANTIZE, the last SOFTMAX and QUANTIZE):
    its 7 SVDF with int8 state and 5 FULLY_CONNECTED, int8 in and out, as the file has them."""
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(KEYWORD.read_bytes(), 0))
    sub = model.subgraphs[0]
    inner = sub.operators[1:-2]
    sub.operators, sub.inputs, sub.outputs = inner, [int(inner[0].inputs[0])], [int(inner[-1].outputs[0])]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@pytest.mark.parametrize("stream", [False, True])
def test_the_svdf_stack_of_keyword_scrambled_matches_tflm_on_500_rows(stream):
    """The real file's SVDF fields (int8 state with zero point -50, rank 1, memory 8) read by the importer.
    Its scrambled weights saturate the first SVDF on random rows, so the state barely shows there;
    the drawn models above are what exercise it."""
    data = _keyword_interior()
    graph = import_tflite(data)
    assert [layer.op for layer in graph.layers].count("SVDF") == 7
    x = np.random.default_rng(0).integers(-128, 128, (500, *graph.input.shape)).astype(np.int8)
    ours, theirs = run(graph, x, stream=stream), tflm_run(data, x, stream=stream)
    assert (ours.reshape(500, -1) == theirs.reshape(500, -1)).all()


def test_the_whole_keyword_model_is_refused_at_its_int16_input_in_one_line():
    with pytest.raises(TFLiteError, match="^model input: tensor 52 is INT16; powerprune runs full-integer int8"):
        load_tflite(KEYWORD)
