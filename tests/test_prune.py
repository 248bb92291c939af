
import pytest
import torch
from torch import nn

from powerprune.mcu.costmodel import auto_cycles
from powerprune.metrics import model_stats, widths
from powerprune.model import lenet5
from powerprune.prune import PruneError, prune
from powerprune.prune.apoz import current_widths, plan_channels
from powerprune.prune.energy import model_cycles
from powerprune.prune.schedule import PolynomialDecay
from powerprune.seqnet import from_torch, widths_param_count
from powerprune.train import Recipe

RATES = (2, 4, 8, 16, 32, 64)


def test_dense_lenet_has_the_papers_size():
    s = model_stats(lenet5())
    assert s.params == 61706 and s.macs == 416520


@pytest.mark.slow
@pytest.mark.parametrize("rate", RATES)
def test_magnitude_hits_every_rate_and_zeros_stay_zero(trained, train_small, quick_finetune, rate):
    res = prune(trained, "magnitude", rate, train_small, finetune=quick_finetune, progress=False)
    assert abs(res.compression / rate - 1) <= 0.01
    # fine-tuning ran with the masks, so every masked weight is still exactly zero
    for name, mask in res.model.masks.items():
        w = getattr(res.model, name).weight
        assert torch.all(w[mask == 0] == 0)
        assert int(mask.sum()) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("rate", RATES)
def test_apoz_hits_every_rate_with_a_smaller_network(trained, train_small, quick_finetune, rate):
    res = prune(trained, "apoz", rate, train_small, finetune=quick_finetune, progress=False)
    assert abs(res.compression / rate - 1) <= 0.01
    m = res.model
    assert all(a <= b for a, b in zip(widths(m), widths(trained), strict=True))
    assert sum(widths(m)) < sum(widths(trained)) and not m.masks  # physically smaller, not masked
    assert model_stats(m).params == widths_param_count(trained, current_widths(m))  # what the planner counted
    out = m(torch.zeros(3, 1, 28, 28))
    assert out.shape == (3, 10)


@pytest.mark.slow
@pytest.mark.parametrize("rate", [4, 64])
def test_oneshot_magnitude_reaches_the_rate(trained, train_small, test_small, quick_finetune, rate):
    res = prune(trained, "magnitude", rate, train_small, test_small.take(200), finetune=quick_finetune,
                schedule="oneshot", progress=False)
    assert abs(res.compression / rate - 1) <= 0.01
    assert res.accuracy_before_finetune is not None  # one-shot can be evaluated before fine-tuning


@pytest.mark.slow
def test_layer_scope_gives_every_layer_the_same_density(trained, train_small, quick_finetune):
    res = prune(trained, "magnitude", 4, train_small, finetune=quick_finetune, scope="layer", progress=False)
    dens = [float(m.mean()) for m in res.model.masks.values()]
    assert max(dens) - min(dens) < 0.02


@pytest.mark.slow
def test_bad_requests_are_refused(trained, train_small):
    with pytest.raises(PruneError, match=">= 1"):
        prune(trained, "magnitude", 0.5, train_small)
    with pytest.raises(PruneError, match="unknown pruning method"):
        prune(trained, "random", 4, train_small)
    with pytest.raises(PruneError, match="highest reachable"):
        prune(trained, "magnitude", 1000, train_small)
    with pytest.raises(PruneError, match="APoZ cannot reach"):
        prune(trained, "apoz", 5000, train_small)


def test_exhaustive_width_plan_lands_every_paper_rate_in_the_window():
    net = lenet5()
    for rate in RATES:
        w = plan_channels(net, 61706 / rate, 0.01)
        assert w is not None
        p = widths_param_count(net, w)
        assert abs((61706 / p) / rate - 1) <= 0.01


class PaperLeNet(nn.Module):
    """The module LeNet-5 used to be, before it became a SeqNet spec."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = torch.flatten(self.pool(torch.relu(self.conv2(x))), 1)
        return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))


def test_lenet5_is_the_papers_module_with_the_same_initial_weights():
    torch.manual_seed(0)
    paper = PaperLeNet()
    torch.manual_seed(0)
    net = lenet5()
    assert net.spec == from_torch(paper, (1, 28, 28)).spec
    for a, b in zip(paper.parameters(), net.parameters(), strict=True):  # same init order: same results
        assert torch.equal(a, b)


def test_polynomial_schedule_is_monotone_and_ends_at_target():
    s = PolynomialDecay(0.0, 0.9, begin=0, end=100, frequency=10)
    vals = [s.sparsity(t) for t in range(0, 120)]
    assert vals[0] == 0.0 and vals[-1] == 0.9
    assert all(b >= a for a, b in zip(vals, vals[1:], strict=False))
    assert s.due(100) and s.due(10) and not s.due(11)


@pytest.mark.slow
@pytest.mark.parametrize("rate", [4, 16])
def test_hybrid_removes_channels_then_adds_sparsity(trained, train_small, quick_finetune, rate):
    res = prune(trained, "hybrid", rate, train_small, finetune=quick_finetune, progress=False)
    assert abs(res.compression / rate - 1) <= 0.01
    m = res.model
    assert sum(widths(m)) < sum(widths(trained))                   # structured part
    assert model_stats(m).nonzero_params < model_stats(m).params   # unstructured part on top
    for name, mask in m.masks.items():
        assert torch.all(getattr(m, name).weight[mask == 0] == 0)


@pytest.mark.slow
def test_energy_method_is_cheaper_than_magnitude_at_the_same_compression(trained, train_small, quick_finetune):
    energy = prune(trained, "energy", 4, train_small, finetune=quick_finetune, cycles=auto_cycles, progress=False)
    magnitude = prune(trained, "magnitude", 4, train_small, finetune=quick_finetune, progress=False)
    assert abs(energy.compression / 4 - 1) <= 0.01
    cost = {k: sum(model_cycles(r.model, auto_cycles).values()) for k, r in (("e", energy), ("m", magnitude))}
    assert cost["e"] < 0.9 * cost["m"]
    steps = [h for h in energy.info.history if "action" in h]
    assert steps and {h["action"] for h in steps} <= {"channels", "weights"}
    for name, mask in energy.model.masks.items():  # fine-tuning kept the pruned weights at zero
        assert torch.all(getattr(energy.model, name).weight[mask == 0] == 0)


@pytest.mark.slow
def test_energy_budget_and_accuracy_budget(trained, train_small, quick_finetune):
    start = sum(model_cycles(trained, auto_cycles).values())
    res = prune(trained, "energy", None, train_small, finetune=quick_finetune, energy_budget=0.4, cycles=auto_cycles,
                progress=False)
    assert sum(model_cycles(res.model, auto_cycles).values()) <= 0.4 * start
    assert res.info.energy_budget == 0.4 and res.compression > 1
    res = prune(trained, "energy", None, train_small, finetune=quick_finetune, accuracy_budget=0.05,
                cycles=auto_cycles, progress=False)
    assert sum(model_cycles(res.model, auto_cycles).values()) < start
    with pytest.raises(PruneError, match="one budget"):
        prune(trained, "energy", 4, train_small, energy_budget=0.5)
    with pytest.raises(PruneError, match="fraction"):
        prune(trained, "energy", None, train_small, energy_budget=2.0, cycles=auto_cycles)
    with pytest.raises(PruneError, match="cost model"):
        prune(trained, "energy", None, train_small, energy_budget=0.5)
    with pytest.raises(PruneError, match="needs a compression"):
        prune(trained, "magnitude", None, train_small)


@pytest.mark.slow
def test_structured_pruning_needs_a_relu_to_read(digits):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 10))
    with pytest.raises(PruneError, match="no layer whose channels"):
        prune(model, "apoz", 2, digits[0], progress=False)
    with pytest.raises(PruneError, match="ran out of actions"):  # weights alone cannot cut per-output cost
        prune(model, "energy", None, digits[0], energy_budget=0.05, finetune=Recipe(epochs=1), cycles=auto_cycles,
              progress=False)
