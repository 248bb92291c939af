"""UNIDIRECTIONAL_SEQUENCE_LSTM on the host: bit-exact with TFLM's integer LSTM, in both state modes.

TFLM keeps the LSTM's hidden and cell state in variable tensors that persist from one Invoke to the
next until the interpreter is reset. The reference runs every row as one independent sequence (reset
first, the default) or as consecutive inferences of one device (``stream``); the oracle resets TFLM
before every row, or once. The two real LSTM models are compared on 500 rows in both modes; small
LSTMs drawn by hypothesis (shapes, steps, scales, zero points, cell scale and clip) are written by our
exporter and run by TFLM. Hard cases are built on purpose: a cell state driven into int16 saturation
and into the clip, and power-of-two scales that make every gate rescale an exact shift, so that
half-way accumulators (rounding ties) occur. The variants TFLM's kernel or the IR does not run are
refused in one line naming the feature.
"""

from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from powerprune.cli import main
from powerprune.fixedpoint import sigmoid_table_uint16
from powerprune.ir import Activation, FullyConnected, Graph, IRError, Reshape, TensorInfo, UnidirectionalSequenceLSTM
from powerprune.ops.unidirectional_sequence_lstm import lstm_parameters, run_stateful
from powerprune.oracle import tflm_run
from powerprune.reference import Stream, run
from powerprune.tflite import TFLiteError, export_tflite, import_tflite, load_tflite

MODELS = Path(__file__).parent / "fixtures" / "real_models"
ARENA = 1 << 20
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _rows(graph: Graph, n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, (n, *graph.input.shape)).astype(np.int8)


def _differing(ours: np.ndarray, theirs: np.ndarray) -> int:
    return int((ours.reshape(len(ours), -1) != theirs.reshape(len(theirs), -1)).any(axis=1).sum())


def test_the_sigmoid_table_is_the_one_compiled_into_tflm():
    """The int16 sigmoid and tanh interpolate a tuned table that no formula reproduces (44 of its 256 entries
    are one above a plain rounding); ours is read from the tflite-micro wheel's binary, and is that tuned
    table, not the rounding."""
    import math

    table = sigmoid_table_uint16()
    rounded = np.array([min(65535, round(65536 / (1 + math.exp(-i / 24)))) for i in range(256)])
    assert table.shape == (256,) and table[0] == 32768 and table[-1] == 65535 and np.all(np.diff(table) >= 0)
    assert 0 < int(np.count_nonzero(table != rounded)) < 256 // 4


# --- the real models ---------------------------------------------------------------------------------

@pytest.mark.slow  # 500 rows through TFLM's interpreter per model and mode: ~20 s
@pytest.mark.parametrize("stream", [False, True], ids=["reset", "stream"])
@pytest.mark.parametrize("name", ["trained_lstm_int8", "micro_speech_lstm"])
def test_the_real_lstm_models_match_tflm_row_for_row(name, stream):
    """500 seeded rows each (streaming runs them one after another: about 25 s for micro_speech_lstm's
    49 steps of 80 units)."""
    path = MODELS / f"{name}.tflite"
    graph = load_tflite(path)
    x = _rows(graph, 500)
    ours = run(graph, x, stream=stream)
    assert _differing(ours, tflm_run(path.read_bytes(), x, stream=stream)) == 0


@pytest.mark.parametrize("name", ["trained_lstm_int8", "micro_speech_lstm"])
def test_our_export_of_a_real_lstm_round_trips_and_tflm_runs_it(name):
    graph = load_tflite(MODELS / f"{name}.tflite")
    data = export_tflite(graph)
    assert export_tflite(import_tflite(data, name=name)) == data
    x = _rows(graph, 10, seed=1)
    for stream in (False, True):
        assert _differing(run(graph, x, stream=stream), tflm_run(data, x, stream=stream)) == 0


def test_carrying_the_state_across_rows_changes_the_outputs_after_the_first():
    """The two modes are different computations (else the tests above could not tell them apart):
    the first row starts from the reset state in both, later ones do not."""
    graph = load_tflite(MODELS / "trained_lstm_int8.tflite")
    x = _rows(graph, 100)
    independent, streamed = run(graph, x), run(graph, x, stream=True)
    np.testing.assert_array_equal(independent[0], streamed[0])
    assert _differing(independent, streamed) > 20


def test_a_stream_continues_across_calls_and_reset_starts_over():
    graph = load_tflite(MODELS / "trained_lstm_int8.tflite")
    x = _rows(graph, 12)
    device = Stream(graph)
    parts = np.concatenate([device.run(x[:5]), device.run(x[5:])])
    np.testing.assert_array_equal(parts, run(graph, x, stream=True))
    device.reset()
    np.testing.assert_array_equal(device.run(x[:3]), run(graph, x[:3], stream=True))


@pytest.mark.parametrize("name", ["trained_lstm_int8", "micro_speech_lstm"])
def test_inspect_and_infer_on_host_work_and_the_pico_side_refuses_in_one_line(name, tmp_path, capsys):
    path = MODELS / f"{name}.tflite"
    graph = load_tflite(path)
    assert main(["inspect", str(path)]) == 0
    shown = capsys.readouterr().out
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in shown and "none (every set)" in shown
    assert "layer 0 (UNIDIRECTIONAL_SEQUENCE_LSTM): no C kernel yet" in shown
    x = _rows(graph, 8, seed=3)
    np.save(tmp_path / "x.npy", x)
    for stream in (False, True):
        out = tmp_path / f"y{stream}.npy"
        assert main(["infer", str(path), "--inputs", str(tmp_path / "x.npy"), "--output", str(out)]
                    + (["--stream"] if stream else [])) == 0
        assert _differing(np.load(out), tflm_run(path.read_bytes(), x, stream=stream)) == 0
    capsys.readouterr()
    for command in (["infer", str(path), "--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "z.npy"),
                     "--on", "rp2040"], ["profile", str(path)]):
        assert main(command) != 0
        error = capsys.readouterr().err.strip()
        assert "no C kernel for UNIDIRECTIONAL_SEQUENCE_LSTM yet" in error and "\n" not in error


# --- small LSTMs drawn by hypothesis, against TFLM ---------------------------------------------------


def _lstm_graph(rng: np.random.Generator, steps: int, features: int, units: int, in_q: tuple[float, int],
                hidden_q: tuple[float, int], weight_scales: np.ndarray, cell_power: int, cell_clip: float,
                bias_range: int, time_major: bool = False) -> Graph:
    layer = UnidirectionalSequenceLSTM(
        rng.integers(-127, 128, (4, units, features)).astype(np.int8),
        rng.integers(-127, 128, (4, units, units)).astype(np.int8),
        rng.integers(-bias_range, bias_range + 1, (4, units)).astype(np.int32),
        weight_scales[:4].astype(np.float32), weight_scales[4:].astype(np.float32), 2.0**cell_power, cell_clip,
        TensorInfo((steps, units), *hidden_q), time_major)
    return Graph(TensorInfo((steps, features), *in_q), [layer])


def _agree_with_tflm(graph: Graph, x: np.ndarray) -> None:
    data = export_tflite(graph)
    assert export_tflite(import_tflite(data)) == data
    for stream in (False, True):
        ours = run(graph, x, stream=stream)
        assert _differing(ours, tflm_run(data, x, arena_size=ARENA, stream=stream)) == 0, f"stream={stream}"


POW2 = st.integers(-10, -4).map(lambda e: 2.0**e)
SCALE = st.floats(1e-3, 0.1)


@PROPERTY
@given(steps=st.integers(1, 6), features=st.integers(1, 8), units=st.integers(1, 8),
       in_q=st.tuples(st.one_of(SCALE, POW2), st.integers(-128, 127)),
       hidden_q=st.tuples(st.one_of(SCALE, POW2), st.integers(-128, 127)),
       scales=st.lists(st.one_of(SCALE, POW2), min_size=8, max_size=8),
       cell_power=st.integers(-15, -8), cell_clip=st.sampled_from([0.0, 0.25, 1.0, 3.0, 10.0]),
       bias_range=st.sampled_from([0, 1000, 100_000, 2_000_000]), time_major=st.booleans(),
       seed=st.integers(0, 2**32 - 1))
def test_small_lstms_match_tflm_in_both_state_modes(steps, features, units, in_q, hidden_q, scales, cell_power,
                                                    cell_clip, bias_range, time_major, seed):
    rng = np.random.default_rng(seed)
    graph = _lstm_graph(rng, steps, features, units, in_q, hidden_q, np.array(scales), cell_power, cell_clip,
                        bias_range, time_major)
    x = rng.integers(-128, 128, (12, steps, features)).astype(np.int8)
    x[0], x[1] = -128, 127  # the extremes of every input
    _agree_with_tflm(graph, x)


def test_a_cell_state_driven_into_saturation_and_into_the_clip_matches_tflm():
    """A cell gate and input gate pinned near +1 add about 1 per step: with scale 2^-15 the int16 cell
    saturates at 32767 on the first steps (no clip), with a clip of 0.5 it stops at 16384."""
    rng = np.random.default_rng(5)
    for clip, bound in ((0.0, 32767), (0.5, 16384)):
        graph = _lstm_graph(rng, 6, 3, 4, (0.02, 0), (2.0**-7, 0), np.full(8, 0.01), -15, clip, 0)
        layer = graph.layers[0]
        layer.bias[:] = 2_000_000  # every gate's pre-activation saturates high
        x = rng.integers(-128, 128, (8, 6, 3)).astype(np.int8)
        _, (_, cell) = run_stateful(layer, [x], (graph.input,),
                                    [np.zeros((8, 4), np.int8), np.zeros((8, 4), np.int16)])
        assert (cell == bound).all()
        _agree_with_tflm(graph, x)


def test_rounding_ties_in_the_gate_rescale_match_tflm():
    """Input scale x weight scale = 2^-14 makes the input FC's rescale to Q3.12 an exact division by
    4 (a rounding shift): accumulators that are 2 mod 4 are exact ties. The data must contain them."""
    rng = np.random.default_rng(9)
    graph = _lstm_graph(rng, 5, 6, 5, (2.0**-7, 3), (2.0**-7, -2), np.full(8, 2.0**-7), -11, 0.0, 50)
    layer = graph.layers[0]
    x = rng.integers(-128, 128, (40, 5, 6)).astype(np.int8)
    p = lstm_parameters(layer, graph.input)
    assert p.input_fc[0] == (1 << 30, -1)  # 2^-2 as (q31 significand, shift)
    acc = (x.astype(np.int64) + p.input_offset) @ layer.input_weights[0].T.astype(np.int64) + layer.bias[0]
    assert (acc % 4 == 2).sum() > 50
    _agree_with_tflm(graph, x)


def test_an_lstm_feeding_a_classifier_matches_tflm():
    """The shape of the real models: LSTM, RESHAPE to one vector, FULLY_CONNECTED."""
    rng = np.random.default_rng(2)
    graph = _lstm_graph(rng, 4, 3, 6, (0.03, -5), (2.0**-7, 1), np.full(8, 0.02), -12, 10.0, 3000)
    out = TensorInfo((3,), 0.1, 4)
    fc = FullyConnected(rng.integers(-127, 128, (3, 24)).astype(np.int8), np.zeros(3, np.int32),
                        np.array([0.01], np.float32), Activation.for_output("NONE", out), out)
    graph = Graph(graph.input, [graph.layers[0], Reshape(TensorInfo((24,), 2.0**-7, 1)), fc])
    _agree_with_tflm(graph, rng.integers(-128, 128, (10, 4, 3)).astype(np.int8))


def test_a_time_major_lstm_is_written_time_major_and_read_back_as_it_was():
    graph = _lstm_graph(np.random.default_rng(7), 5, 3, 4, (0.05, 2), (2.0**-7, -3), np.full(8, 0.02), -12, 10.0,
                        2000, time_major=True)
    data = export_tflite(graph)
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    op = model.subgraphs[0].operators[0]
    shapes = [list(model.subgraphs[0].tensors[t].shape) for t in (op.inputs[0], op.outputs[0])]
    assert op.builtinOptions.timeMajor and shapes == [[5, 1, 3], [5, 1, 4]]
    back = import_tflite(data)
    assert back.layers[0].time_major and back.input.shape == (5, 3) and back.output.shape == (5, 4)
    _agree_with_tflm(graph, np.random.default_rng(8).integers(-128, 128, (10, 5, 3)).astype(np.int8))


# --- refusals ----------------------------------------------------------------------------------------


def _edited(edit) -> bytes:
    """Our export of a small LSTM with ``edit(model, operator)`` applied to its flatbuffer."""
    graph = _lstm_graph(np.random.default_rng(0), 3, 2, 2, (0.05, 0), (2.0**-7, 0), np.full(8, 0.01), -12, 0.0, 10)
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(export_tflite(graph), 0))
    edit(model, model.subgraphs[0].operators[0])
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _set_input(k: int, source: int):
    def edit(model, op):
        op.inputs = [int(t) for t in op.inputs]
        op.inputs[k] = -1 if source < 0 else op.inputs[source]
    return edit


def _options(**changes):
    def edit(model, op):
        for key, value in changes.items():
            setattr(op.builtinOptions, key, value)
    return edit


@pytest.mark.parametrize(("edit", "feature"), [
    (_set_input(1, -1), "CIFG"),
    (_set_input(9, 12), "peephole"),
    (_set_input(16, 5), "projection"),
    (_set_input(20, 12), "layer normalization"),
    (_options(asymmetricQuantizeInputs=True), "hybrid"),
    (_options(fusedActivationFunction=fb.ActivationFunctionType.RELU), "cell activation RELU"),
], ids=["cifg", "peephole", "projection", "layer-norm", "hybrid", "relu"])
def test_each_unsupported_lstm_variant_is_refused_naming_the_feature(edit, feature):
    with pytest.raises(TFLiteError) as err:
        import_tflite(_edited(edit))
    message = str(err.value)
    assert message.startswith("operator 0 (UNIDIRECTIONAL_SEQUENCE_LSTM): ") and feature in message
    assert "\n" not in message


def test_a_graph_with_control_flow_such_as_a_gru_loop_is_refused_in_one_line():
    """The converter writes a GRU (TFLM has no GRU op) or an unfused RNN as a WHILE loop over subgraphs."""
    def second_subgraph(model, op):
        model.subgraphs.append(model.subgraphs[0])
    with pytest.raises(TFLiteError, match="^only single-subgraph models are supported.*GRU"):
        import_tflite(_edited(second_subgraph))


def test_a_cell_scale_that_is_not_a_power_of_two_is_refused():
    graph = _lstm_graph(np.random.default_rng(0), 2, 2, 2, (0.05, 0), (2.0**-7, 0), np.full(8, 0.01), -12, 0.0, 10)
    layer = graph.layers[0]
    layer.cell_scale = 3e-4
    with pytest.raises(IRError, match=r"layer 0 \(UNIDIRECTIONAL_SEQUENCE_LSTM\): cell state scale 0.0003 is not "
                                      "a power of two"):
        Graph(graph.input, [layer])


def test_int16_tensors_between_layers_are_refused_in_one_line():
    with pytest.raises(IRError, match="int16 tensors between layers are not supported yet"):
        Graph(TensorInfo((3, 2), 2.0**-12, 0, "int16"), [])
