"""Hostile and careless input through the real command line: every case ends with exactly one
line on stderr and a non-zero exit, and leaves existing files untouched.

The CLI cases run as subprocesses (``python -m powerprune`` of this checkout). Starting Python with torch
costs about a second and a half, so a module fixture starts them all at once on a small pool and each
test then asserts on its own case's result. Every model here is tiny and built in the test: nothing
trains.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import flatbuffers
import numpy as np
import pytest
import torch
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from powerprune.cli import main
from powerprune.ir import Activation, Conv2D, FullyConnected, Graph, Pool2D, Reshape, TensorInfo
from powerprune.mcu.uf2 import write_uf2
from powerprune.model import lenet5, save_model
from powerprune.tflite import export_tflite

REPO = Path(__file__).resolve().parents[1]
PRECIOUS = b"precious: must survive every failed command"


# --- tiny inputs built in the test ---------------------------------------------------------------

def tiny_graph(input_hw: int = 8, pool: int = 2) -> Graph:
    """conv 3x3 (4 ch, SAME, ReLU) -> max pool -> reshape -> fully connected 10: every op kind the
    importer reads, in about 2.5 KB of flatbuffer."""
    rng = np.random.default_rng(0)
    side = input_hw // pool
    inp = TensorInfo((input_hw, input_hw, 1), 1 / 255, -128)
    c = TensorInfo((input_hw, input_hw, 4), 0.05, -128)
    p = TensorInfo((side, side, 4), 0.05, -128)
    flat = TensorInfo((side * side * 4,), 0.05, -128)
    out = TensorInfo((10,), 0.1, 3)
    conv = Conv2D(rng.integers(-127, 128, (4, 3, 3, 1), dtype=np.int8), rng.integers(-500, 500, 4).astype(np.int32),
                  np.full(4, 0.01, np.float32), (1, 1), "SAME", Activation.for_output("RELU", c), c)
    mp = Pool2D("MAX", (pool, pool), (pool, pool), "VALID", Activation("NONE", -128, 127), p)
    fc = FullyConnected(rng.integers(-127, 128, (10, flat.size), dtype=np.int8),
                        rng.integers(-500, 500, 10).astype(np.int32), np.array([0.01], np.float32),
                        Activation.for_output("NONE", out), out)
    return Graph(inp, [conv, mp, Reshape(flat), fc], "tiny")


TINY = export_tflite(tiny_graph())


def edited(edit) -> bytes:
    """The tiny model after ``edit(model, subgraph)`` on the flatbuffer object API."""
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(TINY, 0))
    edit(model, model.subgraphs[0])
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _op(i: int):
    return lambda m, s: s.operators[i]


def _set(getter, **values):
    def edit(m, s):
        obj = getter(m, s)
        for k, v in values.items():
            setattr(obj, k, v)
    return edit


def _set_item(getter, attr: str, index: int, value: int):
    """Index lists of the object API are read-only arrays: replace the list."""
    def edit(m, s):
        obj = getter(m, s)
        items = [int(v) for v in getattr(obj, attr)]
        items[index] = value
        setattr(obj, attr, items)
    return edit


def _quant(tensor_of, scale=None, zero_point=None):
    def edit(m, s):
        q = s.tensors[tensor_of(s)].quantization
        if scale is not None:
            q.scale = [scale] * len(q.scale)
        if zero_point is not None:
            q.zeroPoint = [zero_point] * len(q.zeroPoint)
    return edit


def _conv_output(s):
    return s.operators[0].outputs[0]


def _flatten_conv_weights(m, s):
    t = s.tensors[s.operators[0].inputs[1]]
    t.shape = [4, 9, 1]


def _binary_op_off_the_chain(code: int, opt_type: int, options):
    """Issue 17: operator 1 becomes OP(model input, conv output), so the graph is no chain either."""
    def edit(m, s):
        oc = fb.OperatorCodeT()
        oc.builtinCode = oc.deprecatedBuiltinCode = code
        m.operatorCodes.append(oc)
        op = s.operators[1]
        op.opcodeIndex = len(m.operatorCodes) - 1
        op.inputs = [s.inputs[0], s.operators[0].outputs[0]]
        op.builtinOptionsType, op.builtinOptions = opt_type, options()
    return edit


TFLITE_CORRUPTIONS = {
    # name: (edit, what the one line must say)
    "conv_stride_zero": (_set(lambda m, s: s.operators[0].builtinOptions, strideH=0), "stride"),
    "pool_stride_zero": (_set(lambda m, s: s.operators[1].builtinOptions, strideW=0), "stride"),
    "pool_window_zero": (_set(lambda m, s: s.operators[1].builtinOptions, filterHeight=0), "window"),
    "padding_enum_7": (_set(lambda m, s: s.operators[0].builtinOptions, padding=7), "unknown padding 7"),
    "missing_builtin_options": (_set(_op(0), builtinOptionsType=0, builtinOptions=None), "options"),
    "tensor_index_out_of_range": (_set_item(_op(0), "inputs", 1, 999), "tensor 999"),
    "output_index_out_of_range": (_set_item(_op(2), "outputs", 0, 12345), "tensor 12345"),
    "opcode_index_out_of_range": (_set(_op(1), opcodeIndex=77), "opcode index 77"),
    "buffer_index_out_of_range": (lambda m, s: setattr(s.tensors[s.operators[0].inputs[1]], "buffer", 999),
                                  "no data"),
    "operator_without_inputs": (_set(_op(0), inputs=[]), "needs at least 2 input"),
    "conv_weights_3d": (_flatten_conv_weights, "must be 4-D"),
    "output_scale_zero": (_quant(_conv_output, scale=0.0), "scale"),
    "output_scale_inf": (_quant(_conv_output, scale=float("inf")), "scale"),
    "output_scale_negative": (_quant(_conv_output, scale=-0.05), "scale"),
    "output_scale_denormal": (_quant(_conv_output, scale=1e-42), "scale"),
    "zero_point_1000": (_quant(_conv_output, zero_point=1000), "zero point 1000"),
    "weights_zero_point_nonzero": (_quant(lambda s: s.operators[0].inputs[1], zero_point=5), "zero point"),
    "int16_model_input": (lambda m, s: setattr(s.tensors[s.inputs[0]], "type", fb.TensorType.INT16),
                          "model input: tensor 0 'input' is INT16"),
    # an unsupported op in a graph that is no chain is named as the op, not as a wiring problem
    "unsupported_mul_off_the_chain": (
        _binary_op_off_the_chain(fb.BuiltinOperator.MUL, fb.BuiltinOptions.MulOptions, fb.MulOptionsT),
        "operator 1 (MUL): unsupported operator MUL; powerprune supports"),
    # ADD is supported, but not with broadcasting: input 8x8x1 + conv output 8x8x4
    "add_needs_broadcasting": (
        _binary_op_off_the_chain(fb.BuiltinOperator.ADD, fb.BuiltinOptions.AddOptions, fb.AddOptionsT),
        "operator 1 (ADD): input 1 (tensor 0 'input') has shape [1, 8, 8, 1] and input 2 (tensor 1"),
}


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


def npz_file(path: Path, n: int = 16, **override: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), "y_train": np.arange(n) % 10,
              "x_test": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), "y_test": np.arange(n) % 10}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hardening")
    (d / "tiny.tflite").write_bytes(TINY)
    for name, (edit, _) in TFLITE_CORRUPTIONS.items():
        (d / f"{name}.tflite").write_bytes(edited(edit))
    (d / "big_io.tflite").write_bytes(export_tflite(tiny_graph(input_hw=256, pool=32)))
    np.save(d / "x_int8.npy", np.zeros((2, 8, 8, 1), np.int8))
    np.save(d / "x_nan.npy", np.full((2, 8, 8, 1), np.nan, np.float32))
    np.save(d / "x_255.npy", np.full((2, 8, 8, 1), 200.0, np.float32))
    (d / "empty.npy").write_bytes(b"")
    (d / "truncated.npy").write_bytes(npy_bytes(np.zeros((2, 8, 8, 1), np.int8))[:-40])
    huge = npy_bytes(np.zeros((1, 8, 8, 1), np.int8)).replace(b"(1, 8, 8, 1)", b"(1000000000, 8, 8, 1)")
    (d / "huge_header.npy").write_bytes(huge)
    np.savez(d / "archive.npz", x=np.zeros((2, 8, 8, 1), np.int8))
    npz_file(d / "data.npz")
    npz_file(d / "no_y_test.npz", y_test=None)
    npz_file(d / "labels_12.npz", y_train=np.full(16, 12))
    npz_file(d / "labels_nan.npz", y_train=np.full(16, np.nan))
    npz_file(d / "labels_fraction.npz", y_train=np.full(16, 1.5))
    npz_file(d / "images_nan.npz", x_train=np.full((16, 28, 28), np.nan, np.float32))
    (d / "empty.npz").write_bytes(b"")
    (d / "truncated.npz").write_bytes((d / "data.npz").read_bytes()[:300])
    save_model(lenet5(), d / "lenet.pt")
    nan_model = lenet5()
    with torch.no_grad():
        nan_model.fc7.weight[0, 0] = float("nan")
    save_model(nan_model, d / "nan_weights.pt")
    raw = bytearray((d / "lenet.pt").read_bytes())
    weights = torch.load(d / "lenet.pt", weights_only=True)["state_dict"]["fc9.weight"].numpy().tobytes()
    at = bytes(raw).find(weights[:64])
    assert at > 0
    raw[at + 10] ^= 0x01
    (d / "flipped_byte.pt").write_bytes(bytes(raw))
    for name, body in {"rates_string": 'rates = "4"', "rates_nested": "rates = [[4]]", "epochs_float": "epochs = 1.5",
                       "jobs_float": "jobs = 1.5", "seeds_int": "seeds = 3", "run_int": "run = 5",
                       "xip_negative": "xip_miss_cycles = -100000", "lr_nan": "lr = nan"}.items():
        (d / f"{name}.toml").write_text(body + "\n")
    (d / "nan_current.csv").write_text("time_s,current_a,voltage_v,marker\n0,0.02,5,0\n0.001,nan,5,1\n"
                                       "0.002,0.02,5,1\n0.003,0.02,5,0\n")
    (d / "garbage.uf2").write_bytes(write_uf2([(0x20000000, np.random.default_rng(1).integers(
        0, 256, 4096, dtype=np.uint8).tobytes())]))
    for name in ("out.pt", "out.tflite", "out.npy", "out.toml"):
        (d / name).write_bytes(PRECIOUS)
    return d


# --- the cases: (argv with {d} for the work directory, what the one line must contain) -------------

# A few .tflite corruptions as subprocesses; the whole table runs in-process below (each subprocess
# costs an interpreter start with torch, and the module has to stay quick).
SUBPROCESS_TFLITE = ("conv_stride_zero", "padding_enum_7", "missing_builtin_options", "tensor_index_out_of_range",
                     "operator_without_inputs", "int16_model_input", "unsupported_mul_off_the_chain")

TRACEBACKS = {  # class 1: used to end in a Python traceback
    **{f"tflite_{name}": (["inspect", f"{{d}}/{name}.tflite"], TFLITE_CORRUPTIONS[name][1])
       for name in SUBPROCESS_TFLITE},
    "npy_empty": (["infer", "{d}/tiny.tflite", "--inputs", "{d}/empty.npy", "--output", "{d}/out.npy"], "empty.npy"),
    "npy_truncated": (["infer", "{d}/tiny.tflite", "--inputs", "{d}/truncated.npy", "--output", "{d}/out.npy"],
                      "truncated"),
    "npy_header_claims_1e9_rows": (["infer", "{d}/tiny.tflite", "--inputs", "{d}/huge_header.npy",
                                    "--output", "{d}/out.npy"], "truncated or damaged"),
    "npz_given_for_npy": (["infer", "{d}/tiny.tflite", "--inputs", "{d}/archive.npz", "--output", "{d}/out.npy"],
                          "is an .npz archive"),
    "npy_given_for_npz": (["evaluate", "{d}/lenet.pt", "--data", "{d}/x_int8.npy"], "not an .npz archive"),
    "npz_empty": (["evaluate", "{d}/lenet.pt", "--data", "{d}/empty.npz"], "not an .npz archive"),
    "npz_truncated": (["evaluate", "{d}/lenet.pt", "--data", "{d}/truncated.npz"], "truncated.npz"),
    "train_labels_outside_0_9": (["train", "--out", "{d}/new.pt", "--data", "{d}/labels_12.npz", "--epochs", "1"],
                                 "label 12 is out of range"),
    "train_labels_nan": (["train", "--out", "{d}/new.pt", "--data", "{d}/labels_nan.npz"], "NaN"),
    "train_batch_size_zero": (["train", "--out", "{d}/new.pt", "--batch-size", "0"], "--batch-size"),
    "prune_train_limit_zero": (["prune", "{d}/lenet.pt", "--method", "apoz", "--compression", "4",
                                "--out", "{d}/out.pt", "--train-limit", "0"], "--train-limit"),
    "usage_error_not_a_number": (["train", "--out", "{d}/new.pt", "--epochs", "many"], "--epochs"),
    **{f"toml_{name}": (["run", "--config", f"{{d}}/{name}.toml", "--out", "{d}/runs"], msg) for name, msg in {
        "rates_string": 'rates = "4"', "rates_nested": "rates = [[4]]", "epochs_float": "epochs = 1.5",
        "jobs_float": "jobs = 1.5", "seeds_int": "seeds = 3", "run_int": "[run] must be a table"}.items()},
}

RUNAWAYS = {  # class 2: a negative count was a Python slice from the end
    "train_limit_negative": (["train", "--out", "{d}/new.pt", "--train-limit", "-1"], "--train-limit"),
    "test_limit_negative": (["evaluate", "{d}/lenet.pt", "--test-limit", "-9999"], "--test-limit"),
    "measure_images_negative": (["measure", "--port", "/dev/null", "--model", "{d}/tiny.tflite", "--images", "-3"],
                                "--images"),
}

SILENTLY_WRONG = {  # class 3: used to "succeed" with a wrong result
    "tflite_output_scale_zero": (["inspect", "{d}/output_scale_zero.tflite"], "scale 0"),
    "profile_zero_point_1000": (["profile", "{d}/zero_point_1000.tflite"], "zero point 1000"),
    "pt_nan_weights": (["evaluate", "{d}/nan_weights.pt"], "NaN or infinity"),
    "pt_flipped_byte": (["evaluate", "{d}/flipped_byte.pt"], "do not match the hash"),
    "train_batch_size_negative": (["train", "--out", "{d}/new.pt", "--batch-size", "-5"], "--batch-size"),
    "train_limit_zero": (["train", "--out", "{d}/new.pt", "--train-limit", "0"], "--train-limit"),
    "finetune_epochs_negative": (["prune", "{d}/lenet.pt", "--method", "apoz", "--compression", "4",
                                  "--out", "{d}/out.pt", "--finetune-epochs", "-1"], "--finetune-epochs"),
    "energy_budget_with_magnitude": (["prune", "{d}/lenet.pt", "--method", "magnitude", "--compression", "4",
                                      "--energy-budget", "0.5", "--out", "{d}/out.pt", "--train-limit", "16",
                                      "--test-limit", "16"], "for the energy method"),
    "run_seeds_zero": (["run", "--seeds", "0", "--out", "{d}/runs"], "--seeds"),
    "profile_kernels_empty": (["profile", "{d}/tiny.tflite", "--kernels", ""], "unknown kernel set"),
    "xip_miss_cycles_negative": (["profile", "{d}/tiny.tflite", "--xip-miss-cycles", "-100000"],
                                 "--xip-miss-cycles"),
    "toml_xip_miss_cycles_negative": (["run", "--config", "{d}/xip_negative.toml", "--out", "{d}/runs"],
                                      "xip_miss_cycles = -100000"),
    "toml_lr_nan": (["run", "--config", "{d}/lr_nan.toml", "--out", "{d}/runs"], "lr = NaN"),
    "calibrate_nan": (["calibrate", "--measured-mj", "nan", "--cycles", "5e6", "--out", "{d}/out.toml"],
                      "--measured-mj"),
    "calibrate_inf": (["calibrate", "--measured-mj", "2", "--cycles", "inf", "--out", "{d}/out.toml"], "--cycles"),
    "energy_csv_nan_current": (["measure", "--energy-csv", "{d}/nan_current.csv"], "NaN"),
    "infer_nan_inputs": (["infer", "{d}/tiny.tflite", "--inputs", "{d}/x_nan.npy", "--output", "{d}/out.npy"],
                         "NaN"),
    "infer_float_pixels_0_255": (["infer", "{d}/tiny.tflite", "--inputs", "{d}/x_255.npy", "--output",
                                  "{d}/out.npy"], "save pixels 0..255 as uint8"),
    "data_nan_images": (["train", "--out", "{d}/new.pt", "--data", "{d}/images_nan.npz"], "NaN"),
    "data_fractional_labels": (["train", "--out", "{d}/new.pt", "--data", "{d}/labels_fraction.npz"],
                               "fraction"),
}

NOTHING_LOST = {  # class 4: an existing output was replaced, or an input overwritten
    "export_test_limit_zero": (["export", "{d}/lenet.pt", "--out", "{d}/out.tflite", "--test-limit", "0"],
                               "--test-limit"),
    "export_data_without_y_test": (["export", "{d}/lenet.pt", "--out", "{d}/out.tflite", "--data",
                                    "{d}/no_y_test.npz", "--calibration", "8"], "y_test"),
    "infer_output_is_the_model": (["infer", "{d}/out.tflite", "--inputs", "{d}/x_int8.npy", "--output",
                                   "{d}/out.tflite"], "would overwrite the input"),
    "train_out_is_the_data": (["train", "--out", "{d}/out.pt", "--data", "{d}/out.pt"], "would overwrite the input"),
}

PROCESSES = {  # class 5 (and issue 17's deploy refusal): the board side
    "emulate_garbage_uf2": (["emulate", "{d}/garbage.uf2"], "virtual Pico stopped"),
    "deploy_frame_too_big": (["deploy", "{d}/big_io.tflite", "--out", "{d}/pico"], "65535-byte frame"),
}

CASES = {**TRACEBACKS, **RUNAWAYS, **SILENTLY_WRONG, **NOTHING_LOST, **PROCESSES}


@dataclass
class Result:
    code: int
    stderr: str


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m powerprune`` of this checkout, whatever the installed package points at."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "powerprune", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=REPO)


@pytest.fixture(scope="module")
def results(work) -> dict[str, Result]:
    """Every case at once on a small pool: the module stays well under a minute."""
    def one(argv: list[str]) -> Result:
        p = cli(*[a.format(d=work) for a in argv])
        return Result(p.returncode, p.stderr)

    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(one, argv) for name, (argv, _) in CASES.items()}
        return {name: f.result() for name, f in futures.items()}


def assert_one_line_error(result: Result, message: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.code != 0, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("powerprune") and "error:" in lines[0], lines[0]
    assert "Traceback" not in result.stderr and "--debug" not in lines[0], lines[0]  # foreseen, not last resort
    assert message in lines[0], lines[0]


def assert_untouched(work: Path) -> None:
    for name in ("out.pt", "out.tflite", "out.npy", "out.toml"):
        assert (work / name).read_bytes() == PRECIOUS, name
    assert not (work / "new.pt").exists() and not (work / "runs").exists() and not (work / "pico").exists()


@pytest.mark.slow
@pytest.mark.parametrize("case", TRACEBACKS)
def test_input_that_used_to_raise_a_traceback_is_one_line_error(case, results, work):
    assert_one_line_error(results[case], TRACEBACKS[case][1])
    assert_untouched(work)


@pytest.mark.slow
@pytest.mark.parametrize("case", RUNAWAYS)
def test_negative_count_is_refused_instead_of_running_away(case, results, work):
    assert_one_line_error(results[case], RUNAWAYS[case][1])
    assert_untouched(work)


@pytest.mark.slow
@pytest.mark.parametrize("case", SILENTLY_WRONG)
def test_input_that_used_to_give_a_silently_wrong_result_is_one_line_error(case, results, work):
    assert_one_line_error(results[case], SILENTLY_WRONG[case][1])
    assert_untouched(work)


@pytest.mark.slow
@pytest.mark.parametrize("case", NOTHING_LOST)
def test_failed_command_leaves_existing_files_untouched(case, results, work):
    assert_one_line_error(results[case], NOTHING_LOST[case][1])
    assert_untouched(work)


@pytest.mark.slow
@pytest.mark.parametrize("case", PROCESSES)
def test_dead_board_or_unusable_firmware_is_one_line_error(case, results, work):
    if case == "emulate_garbage_uf2" and shutil.which("node") is None:
        pytest.skip("needs node")
    assert_one_line_error(results[case], PROCESSES[case][1])
    assert_untouched(work)


@pytest.mark.slow
def test_debug_flag_shows_the_traceback(work):
    p = cli("--debug", "inspect", str(work / "conv_stride_zero.tflite"))
    assert p.returncode != 0 and "Traceback" in p.stderr and "TFLiteError" in p.stderr


@pytest.mark.slow
def test_valid_tiny_model_still_works_end_to_end(work, tmp_path):
    p = cli("infer", str(work / "tiny.tflite"), "--inputs", str(work / "x_int8.npy"), "--output",
            str(tmp_path / "y.npy"))
    assert p.returncode == 0, p.stderr
    assert np.load(tmp_path / "y.npy").shape == (2, 10)


def run_in_process(argv: list[str]) -> Result:
    """``main`` (what the console script calls) with stderr captured."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return Result(code, err.getvalue())


@pytest.mark.parametrize("name", TFLITE_CORRUPTIONS)
def test_corrupt_tflite_field_is_named_in_one_line(name, work):
    """Stride or window 0, unknown padding, missing options, indices out of range, an operator without
    inputs, 3-D conv weights, scales 0/inf/negative/denormal, zero point 1000, an int16 input, MUL off the
    chain, ADD with broadcasting."""
    assert_one_line_error(run_in_process(["inspect", str(work / f"{name}.tflite")]), TFLITE_CORRUPTIONS[name][1])


@pytest.mark.slow
def test_no_single_bit_flip_of_a_valid_model_raises_a_traceback(tmp_path):
    """300 seeded single-bit flips of the tiny model: each loads (a flipped weight is still a model) or
    is refused with one foreseen line, never the last-resort handler. In-process: 300 interpreter
    starts would take minutes; ``main`` is what the console script calls."""
    rng = np.random.default_rng(12)
    path = tmp_path / "flipped.tflite"
    refused = 0
    for _ in range(300):
        data = bytearray(TINY)
        bit = int(rng.integers(len(data) * 8))
        data[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(bytes(data))
        result = run_in_process(["inspect", str(path)])
        lines = result.stderr.strip().splitlines()
        if result.code != 0:
            refused += 1
            assert len(lines) == 1 and "--debug" not in lines[0], (bit, lines)
    assert refused > 50  # the sweep does hit the structure, not only weight bytes


@pytest.mark.slow
def test_emulate_ends_with_an_error_when_its_emulator_process_dies(tmp_path):
    if shutil.which("node") is None:
        pytest.skip("needs node")
    from powerprune.mcu.deploy import deploy

    deploy(tiny_graph(), tmp_path / "pico")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "powerprune", "emulate", str(tmp_path / "pico" / "firmware.uf2")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert "UART0 at" in proc.stdout.readline()
        node = subprocess.run(["pgrep", "-P", str(proc.pid), "node"], capture_output=True, text=True).stdout.split()
        assert node, "the emulator's Node process was not found"
        os.kill(int(node[0]), signal.SIGKILL)
        _, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "virtual Pico stopped" in lines[0], err
