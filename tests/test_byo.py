"""Bring your own model and data: any chain of supported PyTorch layers, the shipped digits dataset."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from powerprune.api import int8_accuracy
from powerprune.cli import main
from powerprune.cli.model import model_factory
from powerprune.data import DatasetError, from_torch_dataset, load_npz
from powerprune.mcu.costmodel import auto_cycles
from powerprune.model import load_model, save_model
from powerprune.oracle import tflm_run
from powerprune.prune import PruneError, prune
from powerprune.quantize import quantize, quantize_images
from powerprune.reference import run
from powerprune.seqnet import ConversionError, SeqNet, from_torch
from powerprune.tflite import export_tflite
from powerprune.train import Recipe, accuracy, fit, seed_everything

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits"
DIGITS = EXAMPLE / "digits.npz"


@pytest.fixture(scope="module")
def digits():
    return load_npz(DIGITS, "train"), load_npz(DIGITS, "test")


@pytest.fixture(scope="module")
def digits_model(digits):
    seed_everything(0)
    model = model_factory(f"{EXAMPLE / 'model.py'}:make_model")()
    fit(model, digits[0], Recipe(epochs=8, lr=3e-3, batch_size=32), progress=False)
    return model


def test_the_shipped_digits_fixture_is_a_real_second_dataset(digits):
    train, test = digits
    assert train.images.shape == (1437, 8, 8, 1) and test.images.shape == (360, 8, 8, 1)
    assert set(np.unique(train.labels)) == set(range(10)) and train.images.max() == 255


def test_own_model_converts_trains_prunes_and_stays_bit_exact_with_tflm(digits, digits_model):
    train, test = digits
    net = from_torch(digits_model, (1, 8, 8))
    assert net.layer_names == ("conv0", "conv2", "conv5", "fc8", "fc10")
    x = torch.from_numpy(test.as_float()[:20])
    assert torch.allclose(net(x), digits_model(x), atol=1e-6)
    assert accuracy(digits_model, test) > 0.8
    for method in ("magnitude", "apoz", "hybrid", "energy"):
        res = prune(digits_model, method, 4, train, test, finetune=Recipe(epochs=2, lr=1e-3, batch_size=32),
                    cycles=auto_cycles, progress=False)
        assert isinstance(res.model, SeqNet) and abs(res.compression / 4 - 1) <= 0.01
        widths = [getattr(res.model, n).weight.shape[0] for n in res.model.layer_names]
        if method in ("apoz", "hybrid"):  # channels removed; the depthwise conv follows conv0's channels
            assert widths[0] == widths[1] < 16 and widths[-1] == 10
        graph = quantize(res.model, train.take(300), name=f"digits-{method}")
        assert [la.op for la in graph.layers][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
        q = quantize_images(graph, test.images)
        assert np.array_equal(run(graph, q).reshape(len(q), -1), tflm_run(export_tflite(graph), q).reshape(len(q), -1))
        assert int8_accuracy(graph, test) > 0.7


def test_structured_pruning_needs_a_relu_to_read(digits):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    with pytest.raises(PruneError, match="no layer whose channels"):
        prune(model, "apoz", 2, digits[0], progress=False)
    with pytest.raises(PruneError, match="ran out of actions"):  # weights alone cannot cut per-output cost
        prune(model, "energy", None, digits[0], energy_budget=0.05, finetune=Recipe(epochs=1), cycles=auto_cycles,
              progress=False)


def test_seqnet_model_file_roundtrip(tmp_path, digits, digits_model):
    res = prune(digits_model, "magnitude", 2, digits[0], finetune=Recipe(epochs=1, batch_size=64), progress=False)
    save_model(res.model, tmp_path / "d.pt", res.info)
    model, info = load_model(tmp_path / "d.pt")  # weights_only: a spec, never pickled code
    assert isinstance(model, SeqNet) and info.reference_params == res.info.reference_params
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model(x), res.model(x)) and set(model.masks) == set(res.model.masks)


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(1, 4, 3, padding=1)

    def forward(self, x):
        return self.a(x) + x


@pytest.mark.parametrize("model, message", [
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4)), "BatchNorm2d is supported only right after"),
    (nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.BatchNorm1d(4)), "BatchNorm1d is not supported"),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.Sigmoid()), "Sigmoid is not supported"),
    (_Residual(), "same shape"),
    (nn.Sequential(nn.Conv2d(4, 8, 3, groups=2)), "grouped convolution"),
    (nn.Sequential(nn.Conv2d(1, 4, 3, dilation=2)), "undilated"),
])
def test_unsupported_models_are_refused_by_name(model, message):
    with pytest.raises(ConversionError, match=message):
        from_torch(model, (1, 8, 8))


@pytest.mark.parametrize("conv, side", [(nn.Conv2d(1, 2, 3, padding=2), 10),
                                        # PyTorch pads stride-2 convs before, TFLite's SAME after: not equal
                                        (nn.Conv2d(1, 2, 3, stride=2, padding=1), 4)])
def test_padding_tflite_cannot_express_is_refused(digits, conv, side):
    model = nn.Sequential(conv, nn.Flatten(), nn.Linear(2 * side * side, 10))
    with pytest.raises(ConversionError, match="neither TFLite SAME nor VALID"):
        quantize(model, digits[0].take(10))


def test_functional_forward_and_torch_datasets(digits):
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(1, 3, 3, padding=1)
            self.f = nn.Linear(3 * 4 * 4, 10)

        def forward(self, x):
            x = F.avg_pool2d(F.relu6(self.c(x)), 2)
            return self.f(torch.flatten(x, 1))

    train = digits[0].take(64)
    ds = torch.utils.data.TensorDataset(torch.from_numpy(train.as_float()), torch.from_numpy(train.labels))
    wrapped = from_torch_dataset(ds)
    assert np.array_equal(wrapped.images, train.images) and np.array_equal(wrapped.labels, train.labels)
    graph = quantize(Tiny(), wrapped)
    assert [la.op for la in graph.layers] == ["CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert graph.layers[0].padding == "SAME" and graph.layers[0].activation.kind == "RELU6"
    q = quantize_images(graph, train.images)
    assert np.array_equal(run(graph, q).reshape(len(q), -1), tflm_run(export_tflite(graph), q).reshape(len(q), -1))


def test_bad_dataset_files(tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(3))
    with pytest.raises(DatasetError, match="x_train, y_train"):
        load_npz(tmp_path / "x.npz")
    (tmp_path / "y.npz").write_bytes(b"junk")
    with pytest.raises(DatasetError, match="not a readable"):
        load_npz(tmp_path / "y.npz")


def test_cli_with_own_model_and_data_down_to_the_virtual_pico(tmp_path, capsys):
    data = ["--data", str(DIGITS)]
    m, p, t = tmp_path / "d.pt", tmp_path / "d4.pt", tmp_path / "d4.tflite"
    assert main(["train", "--model-def", f"{EXAMPLE / 'model.py'}:make_model", *data, "--epochs", "3",
                 "--out", str(m)]) == 0
    assert main(["prune", str(m), "--method", "energy", "--energy-budget", "0.6", *data,
                 "--finetune-epochs", "1", "--out", str(p)]) == 0
    assert main(["export", str(p), *data, "--out", str(t)]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(p), *data, "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["method"] == "energy" and ev["compression"] > 1
    assert len(ev["widths"]) == 4 and ev["widths"][0] == ev["widths"][1] <= 16  # depthwise follows conv0
    assert main(["inspect", str(t), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["input"] == [8, 8, 1]
    assert main(["profile", str(t), "--kernels", "auto", "--images", "1", *data, "--json"]) == 0
    prof = json.loads(capsys.readouterr().out)["kernels"]["auto"]
    assert prof["bit_exact"] and prof["cycles_mean"] > 0
    bad = tmp_path / "x.pt"
    assert main(["prune", str(m), "--method", "apoz", "--compression", "100000", *data, "--out", str(bad)]) == 2
    assert "cannot reach compression" in capsys.readouterr().err and not bad.exists()
