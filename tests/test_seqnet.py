"""PyTorch models read into SeqNets (seqnet.from_torch): a user's own model (the shipped digits example)
through pruning and int8 down to TFLM, a functional forward, and what cannot be expressed, refused by name."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from powerprune.api import int8_accuracy
from powerprune.data import from_torch_dataset
from powerprune.mcu.costmodel import auto_cycles
from powerprune.oracle import tflm_run
from powerprune.prune import prune
from powerprune.quantize import quantize, quantize_images
from powerprune.reference import run
from powerprune.seqnet import ConversionError, SeqNet, from_torch
from powerprune.tflite import export_tflite
from powerprune.train import Recipe, accuracy


@pytest.mark.slow
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
