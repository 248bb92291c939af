"""Residual networks on the float side: a PyTorch ResNet-8 (MLPerf Tiny's image classifier) read by
torch.fx into a SeqNet DAG, batch norms folded, channels that meet at an add pruned as one group."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from powerprune.data import from_arrays
from powerprune.mcu.costmodel import auto_cycles
from powerprune.mcu.profile import profile
from powerprune.metrics import model_stats
from powerprune.model import lenet5, load_model, paper_cnn, save_model
from powerprune.oracle import tflm_run
from powerprune.prune import PruneResult, prune
from powerprune.prune.apoz import current_widths
from powerprune.prune.energy import model_cycles
from powerprune.quantize import quantize, quantize_images
from powerprune.reference import run
from powerprune.seqnet import ConversionError, SeqNet, channel_groups, from_torch, rebuild_seqnet, widths_param_count
from powerprune.tflite import export_tflite, import_tflite
from powerprune.train import Recipe, fit, seed_everything

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "resnet8"
SHAPE = (3, 32, 32)
QUICK = Recipe(epochs=1, lr=1e-3, batch_size=32)
# the coupled groups of ResNet-8, by the SeqNet names of their layers (stem + block 1's second conv; block
# 2's and block 3's second conv + their strided 1x1 skip), and the single-layer groups between them
COUPLED = {"conv0": ("conv0", "conv4"), "conv10": ("conv10", "conv11"), "conv17": ("conv17", "conv18")}
GROUPS = ("conv0", "conv2", "conv8", "conv10", "conv15", "conv17")


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"resnet8_{name}", EXAMPLE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


resnet8_module, resnet8_data = _load("model"), _load("data")


def resnet8_params(stem: int, b1: int, b2a: int, b2: int, b3a: int, b3: int, classes: int = 10) -> int:
    """Parameters (weights + biases) of ResNet-8 with these widths, written out layer by layer:
    stem and block 1 share ``stem`` channels, ``b2a``/``b3a`` are the first convs of blocks 2 and 3,
    ``b2``/``b3`` the channels their second convs and skips add up."""
    def conv(cin: int, cout: int, k: int) -> int:
        return cout * (cin * k * k + 1)

    return (conv(3, stem, 3) + conv(stem, b1, 3) + conv(b1, stem, 3)
            + conv(stem, b2a, 3) + conv(b2a, b2, 3) + conv(stem, b2, 1)
            + conv(b2, b3a, 3) + conv(b3a, b3, 3) + conv(b2, b3, 1)
            + b3 * classes + classes)


@pytest.fixture(scope="module")
def resnet_data():
    d = resnet8_data.make_dataset(256, 64, seed=0)
    return from_arrays(d["x_train"], d["y_train"]), from_arrays(d["x_test"], d["y_test"])


@pytest.fixture(scope="module")
def resnet(resnet_data) -> SeqNet:
    """Briefly trained with its batch norms (as a user would; about 90% on the synthetic test images),
    then read into a SeqNet."""
    seed_everything(0)
    module = resnet8_module.make_model()
    fit(module, resnet_data[0], Recipe(epochs=2, lr=3e-3, batch_size=16), progress=False)
    return from_torch(module, SHAPE)


@pytest.fixture(scope="module")
def apoz_models(resnet, resnet_data) -> dict[int, PruneResult]:
    return {rate: prune(resnet, "apoz", rate, resnet_data[0], finetune=QUICK, apoz_images=128, progress=False)
            for rate in (2, 4)}


def _randomize_batchnorms(module: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                for t, lo, hi in ((m.running_mean, -1, 1), (m.running_var, 0.3, 3), (m.weight, 0.5, 1.5),
                                  (m.bias, -0.5, 0.5)):
                    t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)


def test_resnet8_reads_into_a_dag_with_folded_batchnorms_and_the_mlperf_size():
    torch.manual_seed(0)
    module = resnet8_module.make_model()
    _randomize_batchnorms(module)
    module.train()  # conversion must neither depend on nor change the mode
    net = from_torch(module, SHAPE)
    assert module.training
    kinds = [e["type"] for e in net.spec]
    assert kinds.count("conv") == 9 and kinds.count("add") == 3 and kinds.count("pad") == 2
    assert kinds[-3:] == ["avgpool", "flatten", "linear"] and net.spec[-3]["kernel"] == [8, 8]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert not net.is_chain and net.spec[net.names.index("add5")]["inputs"] == [1, 4]
    # 78,666 in the Keras reference less its 960 batch-norm parameters, 12.5 M MACs
    stats = model_stats(net)
    assert stats.params == 77706 == resnet8_params(16, 16, 32, 32, 64, 64) and stats.macs == 12501632
    x = torch.rand(4, *SHAPE)
    module.eval()
    assert torch.allclose(net(x), module(x), atol=1e-5)
    # chains are described as before: no entry names what it reads
    for chain in (lenet5(), paper_cnn()):
        assert chain.is_chain and not any("inputs" in e for e in chain.spec)


@pytest.mark.slow
def test_residual_seqnet_file_roundtrip(tmp_path, resnet):
    save_model(resnet, tmp_path / "r.pt")
    model, _ = load_model(tmp_path / "r.pt")  # weights_only: the DAG is in the spec, no code pickled
    x = torch.rand(2, *SHAPE)
    assert model.spec == resnet.spec and torch.equal(model(x), resnet(x))


class _Net(nn.Module):
    """A two-branch network whose join is chosen per test."""

    def __init__(self, join):
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 1, 1)
        self.join = join

    def forward(self, x):
        return self.join(self, x)


def _shared(self, x):
    return self.a(x) + self.a(x)


def _unused(self, x):
    self.b(x)
    return self.a(x)


@pytest.mark.parametrize("join, message", [
    (lambda s, x: s.a(x) + 1.0, "adding a constant"),
    (lambda s, x: s.a(x) + s.b(x), "same shape"),  # torch would broadcast; TFLite's int8 ADD here does not
    (lambda s, x: s.a(x) + x, "node .add.: The size of tensor a"),
    (lambda s, x: torch.cat([s.a(x), s.b(x)], 1), "function cat is not supported"),
    (lambda s, x: s.a(x) * s.b(x), "function mul is not supported"),
    (lambda s, x: torch.add(s.a(x), s.b(x), alpha=2), "alpha"),
    (lambda s, x: nn.functional.adaptive_avg_pool2d(s.a(x), 2), "only to output size 1"),
    (lambda s, x: s.a(x).mean(1), "only over the spatial axes"),
    (lambda s, x: (s.a(x), s.b(x)), "must return one tensor"),
    (_shared, "called twice"),
    (_unused, "never used"),
])
def test_unsupported_residual_constructs_are_refused_by_name(join, message):
    with pytest.raises(ConversionError, match=message):
        from_torch(_Net(join), SHAPE)


def test_functional_residual_forms_read_alike():
    """x + y, torch.add, x.add(y), in-place += and x.mean((2, 3)) all become the same SeqNet."""
    class Res(nn.Module):
        def __init__(self, form):
            super().__init__()
            self.a, self.b, self.fc = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1), nn.Linear(4, 2)
            self.form = form

        def forward(self, x):
            y = self.form(self.a(x), self.b(x))
            return self.fc(torch.relu(y).mean((2, 3)))

    def in_place(a, b):
        a += b
        return a

    forms = [lambda a, b: a + b, torch.add, lambda a, b: a.add(b), in_place]
    specs = []
    for form in forms:
        torch.manual_seed(0)
        model = Res(form)
        net = from_torch(model, SHAPE)
        x = torch.rand(2, *SHAPE)
        assert torch.allclose(net(x), model(x), atol=1e-6)
        specs.append(net.spec)
    assert all(s == specs[0] for s in specs)
    assert [e["type"] for e in specs[0]] == ["conv", "conv", "add", "relu", "avgpool", "flatten", "linear"]


@pytest.mark.slow
def test_channels_meeting_at_an_add_form_one_group(resnet):
    groups = channel_groups(resnet)
    assert tuple(groups) == GROUPS
    for name, producers in COUPLED.items():
        assert groups[name].producers == producers
    assert groups["conv0"].taps == ("relu1", "relu6")  # APoZ averages the stem's ReLU and block 1's
    assert all(len(groups[n].producers) == 1 for n in ("conv2", "conv8", "conv15"))
    # the classifier's outputs are the classes: never a group
    assert all("fc23" not in g.producers for g in groups.values())


def _zero_removed(net: SeqNet, keep: dict[str, np.ndarray], depthwise: dict[str, str]) -> SeqNet:
    """A copy of ``net`` whose removed channels are exactly zero in every producer of their group and
    in the depthwise convs that follow it (``depthwise``: layer -> group; their bias would revive a
    zeroed channel): on the kept channels it computes what the rebuilt network computes."""
    zeroed = SeqNet(net.spec, net.input_shape)
    zeroed.load_state_dict(net.state_dict())
    groups = channel_groups(net)
    with torch.no_grad():
        for name, kept in keep.items():
            drop = np.setdiff1d(np.arange(getattr(net, name).weight.shape[0]), kept)
            for p in groups[name].producers + tuple(d for d, g in depthwise.items() if g == name):
                getattr(zeroed, p).weight[drop] = 0
                getattr(zeroed, p).bias[drop] = 0
    return zeroed


def _assert_equal_on_kept_channels(net: SeqNet, small: SeqNet, keep: dict[str, np.ndarray],
                                   depthwise: dict[str, str] | None = None) -> None:
    """The rebuilt network computes what the original computes with the removed channels zeroed: the
    output, and every intermediate tensor on the channels it kept (groups told apart by their widths,
    which the callers choose distinct)."""
    x = torch.rand(3, *net.input_shape)
    full_out, small_out = {}, {}
    with torch.no_grad():
        y_full, y_small = _zero_removed(net, keep, depthwise or {})(x, full_out), small(x, small_out)
    assert torch.allclose(y_small, y_full, atol=1e-5)
    by_width = {(getattr(net, n).weight.shape[0], len(k)): torch.as_tensor(k) for n, k in keep.items()}
    for name in net.names:
        full, part = full_out[name], small_out[name]
        kept = by_width.get((full.shape[1], part.shape[1]), slice(None))
        for (c, w), k in by_width.items():  # a flatten: each kept channel's pixels, NCHW order
            hw = full.shape[1] // c
            if full.dim() == 2 and hw > 1 and full.shape[1] == c * hw and part.shape[1] == w * hw:
                kept = (k[:, None] * hw + torch.arange(hw)[None, :]).flatten()
        assert torch.allclose(part, full[:, kept], atol=1e-5), name


@pytest.mark.slow
def test_rebuilt_residual_network_equals_the_original_on_kept_channels(resnet):
    rng = np.random.default_rng(0)
    widths = {"conv0": 11, "conv2": 9, "conv8": 20, "conv10": 22, "conv15": 40, "conv17": 37}  # all distinct
    keep = {n: np.sort(rng.choice(getattr(resnet, n).weight.shape[0], w, replace=False)) for n, w in widths.items()}
    small = rebuild_seqnet(resnet, keep)
    # every producer of a group has the group's width; consumers were sliced to match
    assert current_widths(small) == widths
    for name, producers in COUPLED.items():
        assert {getattr(small, p).weight.shape[0] for p in producers} == {widths[name]}
    assert model_stats(small).params == widths_param_count(resnet, widths) == resnet8_params(11, 9, 20, 22, 40, 37)
    _assert_equal_on_kept_channels(resnet, small, keep)
    with pytest.raises(ValueError, match="coupled by an add"):
        rebuild_seqnet(resnet, {"conv0": keep["conv0"], "conv4": keep["conv0"]})


class InvertedResidual(nn.Module):
    """A MobileNetV2-style block: the depthwise conv inside follows the expansion's channels, the add
    couples the stem with the projection, and no ReLU follows the add."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.expand, self.dw = nn.Conv2d(8, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=16)
        self.project, self.fc = nn.Conv2d(16, 8, 1), nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.stem(x)), 8)
        y = self.project(torch.relu(self.dw(torch.relu(self.expand(x)))))
        return self.fc(torch.flatten(x + y, 1))


def test_depthwise_convs_and_flattens_inside_a_group_follow_its_channels():
    torch.manual_seed(0)
    net = from_torch(InvertedResidual(), SHAPE)
    groups = channel_groups(net)
    assert {n: g.producers for n, g in groups.items()} == {"conv0": ("conv0", "conv7"), "conv3": ("conv3",)}
    assert groups["conv0"].taps == ("relu1",)
    keep = {"conv0": np.array([0, 2, 3, 6, 7]), "conv3": np.array([1, 2, 4, 5, 8, 9, 10, 11, 13, 14, 15])}
    small = rebuild_seqnet(net, keep)
    dw = small.spec[net.names.index("conv5")]
    assert dw["in"] == dw["out"] == dw["groups"] == 11 and small.spec[-1]["in"] == 5 * 16
    assert model_stats(small).params == widths_param_count(net, {"conv0": 5, "conv3": 11})
    _assert_equal_on_kept_channels(net, small, keep, depthwise={"conv5": "conv3"})


@pytest.mark.slow
@pytest.mark.parametrize("rate", [2, 4])
def test_apoz_prunes_resnet8_with_one_decision_per_group(apoz_models, rate):
    res = apoz_models[rate]
    m = res.model
    assert abs(res.compression / rate - 1) <= 0.01
    w = current_widths(m)
    for name, producers in COUPLED.items():
        assert {getattr(m, p).weight.shape[0] for p in producers} == {w[name]}
    assert model_stats(m).params == resnet8_params(*(w[n] for n in GROUPS))
    assert m(torch.rand(2, *SHAPE)).shape == (2, 10)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["magnitude", "hybrid", "energy"])
def test_other_methods_prune_resnet8(resnet, resnet_data, method):
    # fine-tuning on half the images, and the energy search scores every candidate on held-out
    # images: a fifth of 100 keeps it quick
    kw = {"energy_budget": 0.85, "cycles": auto_cycles} if method == "energy" else {}
    train = resnet_data[0].take(100 if method == "energy" else 128)
    res = prune(resnet, method, None if method == "energy" else 4, train, finetune=QUICK, apoz_images=128,
                progress=False, **kw)
    m = res.model
    if method == "energy":
        assert sum(model_cycles(m, auto_cycles).values()) <= 0.85 * sum(model_cycles(resnet, auto_cycles).values())
    else:
        assert abs(res.compression / 4 - 1) <= 0.01
    for name, mask in m.masks.items():  # unstructured zeros stayed zeros through fine-tuning
        assert torch.all(getattr(m, name).weight[mask == 0] == 0)
    w = current_widths(m)
    for name, producers in COUPLED.items():
        assert {getattr(m, p).weight.shape[0] for p in producers} == {w[name]}
    if method == "magnitude":
        assert w == current_widths(resnet) and m.masks


@pytest.mark.slow
@pytest.mark.parametrize("rate", [2, 4])
def test_pruned_resnet8_exports_to_int8_runs_bit_exact_in_tflm_and_on_the_virtual_pico(apoz_models, resnet_data,
                                                                                         rate):
    """The end of the float side: the pruned DAG becomes an int8 DAG (three ADDs with their ReLU fused,
    the stride-2 convs SAME, ending in FULLY_CONNECTED), TFLite Micro computes exactly what our host
    reference does, and the virtual Pico too."""
    train, test = resnet_data
    graph = quantize(apoz_models[rate].model, train.take(32), name=f"resnet8-apoz{rate}")
    ops = [la.op for la in graph.layers]
    assert ops.count("ADD") == 3 and ops[-3:] == ["AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert ops.count("CONV_2D") == 9 and not graph.is_chain
    assert all(la.activation.kind == "RELU" for la in graph.layers if la.op == "ADD")
    assert [la.padding for la in graph.layers if la.op == "CONV_2D" and la.stride == (2, 2)] == ["SAME", "VALID"] * 2
    assert graph.totals()["params"] == model_stats(apoz_models[rate].model).params
    q = quantize_images(graph, test.images[:16])  # seeded synthetic test images
    tfl = export_tflite(graph)
    host = run(graph, q)
    assert np.array_equal(host.reshape(16, -1), tflm_run(tfl, q).reshape(16, -1))
    assert np.array_equal(run(import_tflite(tfl), q), host)
    # the int8 model classifies like the float one it came from
    float_logits = apoz_models[rate].model(torch.from_numpy(test.as_float()[:16]))
    assert (host.reshape(16, -1).argmax(1) == float_logits.argmax(1).numpy()).mean() >= 0.75
    prof = profile(graph, q[:1], kernels="auto")
    assert prof.bit_exact and prof.cycles[0] > 0
    adds = [c for c, op in zip(prof.cycles_per_layer, ops, strict=True) if op == "ADD"]
    assert len(adds) == 3 and min(adds) > 0
