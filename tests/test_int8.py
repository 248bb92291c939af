"""int8 IR, quantization, host reference and .tflite codec against TFLite Micro's own interpreter."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from powerprune.api import int8_accuracy
from powerprune.oracle import tflm_run
from powerprune.prune import prune
from powerprune.quantize import quantize, quantize_images
from powerprune.reference import run
from powerprune.tflite import TFLiteError, export_tflite, import_tflite

from .strategies import budget, random_graph


@pytest.fixture(scope="module")
def lenet_graphs(trained, train_small, quick_finetune):
    graphs = {"dense": quantize(trained, train_small.take(200))}
    for method, rate in (("magnitude", 4), ("magnitude", 16), ("apoz", 4), ("apoz", 16)):
        m = prune(trained, method, rate, train_small, finetune=quick_finetune, progress=False).model
        graphs[f"{method}-{rate}"] = quantize(m, train_small.take(200))
    return graphs


def test_lenet_bit_exact_with_tflm_on_1000_images(lenet_graphs, test_small):
    x = quantize_images(lenet_graphs["dense"], test_small.images)
    for name, g in lenet_graphs.items():
        ours = run(g, x)
        theirs = tflm_run(export_tflite(g), x)
        assert theirs.shape == ours.shape
        assert np.array_equal(ours, theirs), f"{name}: {(ours != theirs).sum()} mismatching bytes"


def test_pruned_zeros_survive_quantization(lenet_graphs):
    g = lenet_graphs["magnitude-16"]
    t = g.totals()
    assert t["params"] / t["nonzeros"] == pytest.approx(16, rel=0.02)
    assert lenet_graphs["apoz-4"].totals()["params"] < lenet_graphs["dense"].totals()["params"] / 3.9


def test_import_roundtrip_is_identical(lenet_graphs, test_small):
    g = lenet_graphs["apoz-4"]
    again = import_tflite(export_tflite(g), name=g.name)
    x = quantize_images(g, test_small.images[:50])
    assert np.array_equal(run(g, x), run(again, x))
    assert export_tflite(again) == export_tflite(g)


def test_int8_accuracy_close_to_float(trained, train_small, test_small):
    from powerprune.train import accuracy

    g = quantize(trained, train_small.take(300))
    assert abs(int8_accuracy(g, test_small) - accuracy(trained, test_small)) < 0.03


def test_corrupt_and_unsupported_tflite_are_named(lenet_graphs):
    with pytest.raises(TFLiteError, match="TFL3"):
        import_tflite(b"garbage bytes here")
    data = bytearray(export_tflite(lenet_graphs["dense"]))
    with pytest.raises(TFLiteError):
        import_tflite(bytes(data[:200]))
    # turn the last operator into ELU, which powerprune does not run: the error names the op and its index
    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(bytes(data), 0))
    code = fb.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.ELU
    model.operatorCodes.append(code)
    last = model.subgraphs[0].operators[-1]
    last.opcodeIndex = len(model.operatorCodes) - 1
    last.builtinOptionsType, last.builtinOptions = fb.BuiltinOptions.NONE, None
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(TFLiteError, match=r"operator 7 \(ELU\): unsupported operator ELU"):
        import_tflite(bytes(b.Output()))


# --- property-based: random small graphs, every op and quantization corner, against TFLM -------------

@budget(150)  # every op and quantization corner needs more than 100
@given(g=random_graph(), seed=st.integers(0, 1000))
def test_random_graphs_bit_exact_with_tflm(g, seed):
    x = np.random.default_rng(seed).integers(-128, 128, size=(4,) + g.input.shape).astype(np.int8)
    ours = run(g, x).reshape(4, -1)
    theirs = tflm_run(export_tflite(g), x).reshape(4, -1)
    assert np.array_equal(ours, theirs), (ours, theirs)
