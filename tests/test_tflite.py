"""The .tflite codec (powerprune.tflite): an import of an export is the same graph and exports the same
bytes; a damaged file or an operator powerprune does not run is named in the error."""

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

from powerprune.quantize import quantize_images
from powerprune.reference import run
from powerprune.tflite import TFLiteError, export_tflite, import_tflite

pytestmark = pytest.mark.slow  # both read LeNet graphs that were trained, pruned and fine-tuned


def test_import_roundtrip_is_identical(lenet_graphs, test_small):
    g = lenet_graphs["apoz-4"]
    again = import_tflite(export_tflite(g), name=g.name)
    x = quantize_images(g, test_small.images[:50])
    assert np.array_equal(run(g, x), run(again, x))
    assert export_tflite(again) == export_tflite(g)


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
