"""Issue 16, the paper's system as it was measured: its network on the command line and in `run` with
its recipe, the zero-skipping runtime (`tflm-skip`), float32 end to end, and the bundled paper-exact
config with the paper's published measurements beside ours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from powerprune.board import load_board
from powerprune.cli import main
from powerprune.ir import (
    Activation,
    Add,
    Conv2D,
    Dequantize,
    FullyConnected,
    Graph,
    IRError,
    Logistic,
    Pool2D,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
)
from powerprune.mcu.codegen import ADAPTED_KERNELS, FLOAT_KERNEL_SETS, KERNEL_SETS, CodegenError, choose_kernel
from powerprune.mcu.emulator import EmulatorRun, Inference
from powerprune.mcu.profile import check_outputs, profile, run_on_rp2040, ulp_distance
from powerprune.metrics import model_stats
from powerprune.model import load_model, paper_cnn
from powerprune.oracle import tflm_run
from powerprune.quantize import float32_graph, quantize_images
from powerprune.reference import run
from powerprune.report import write_outputs
from powerprune.report.analysis import paper_measurements, paper_side_by_side
from powerprune.seqnet import ConversionError
from powerprune.sweep import ConfigError, Row, SweepConfig, load_config, train_key
from powerprune.tflite import export_tflite, import_tflite
from powerprune.train import DEFAULT_TRAINING, PAPER_TRAINING, Recipe, recipe_for

from .strategies import budget, float_values, random_float_graph, random_graph

SMALL = ["--train-limit", "300", "--test-limit", "100"]


# --- 1. --arch paper --------------------------------------------------------------------------------

def test_train_arch_paper_gives_the_papers_network_with_its_recipe(tmp_path, capsys):
    assert main(["train", "--arch", "paper", "--out", str(tmp_path / "p.pt"), "--epochs", "1", *SMALL]) == 0
    model, info = load_model(tmp_path / "p.pt")
    assert model_stats(model).params == 110742
    assert info.history[0]["recipe"]["optimizer"] == "rmsprop" and info.history[0]["recipe"]["lr"] == 1e-3
    assert "110,742 parameters" in capsys.readouterr().out
    # an option overrides one part of the recipe, the rest stays the network's
    assert main(["train", "--arch", "paper", "--optimizer", "adam", "--out", str(tmp_path / "a.pt"), "--epochs", "1",
                 *SMALL]) == 0
    assert load_model(tmp_path / "a.pt")[1].history[0]["recipe"] == {**vars(PAPER_TRAINING), "optimizer": "adam",
                                                                     "epochs": 1}


def test_arch_and_model_def_exclude_each_other(tmp_path, capsys):
    assert main(["train", "--arch", "paper", "--model-def", "x.py:f", "--out", str(tmp_path / "x.pt")]) == 2
    assert "--arch" in capsys.readouterr().err
    assert recipe_for("lenet") == DEFAULT_TRAINING and recipe_for("paper") == PAPER_TRAINING
    with pytest.raises(ValueError, match="unknown architecture"):
        recipe_for("vgg")


def test_the_run_optimizer_joins_the_keys_only_when_it_is_not_adam():
    cfg = SweepConfig()
    assert cfg.optimizer == "adam"
    recipe = Recipe(epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size, seed=0, optimizer=cfg.optimizer)
    assert train_key(cfg, recipe) == "train-04c3ef923825ef91"  # as tests/test_paper_arch.py pins it
    rms = load_config(None, optimizer="rmsprop")
    assert train_key(rms, Recipe(epochs=rms.epochs, lr=rms.lr, batch_size=rms.batch_size, seed=0,
                                 optimizer=rms.optimizer)) != train_key(cfg, recipe)
    with pytest.raises(ConfigError, match="unknown optimizer"):
        load_config(None, optimizer="sgd")


# --- 2. tflm-skip, int8 -------------------------------------------------------------------------------

def _dense_conv_fc(density: float, seed: int = 0) -> Graph:
    """A conv + pool + FC int8 model whose weights are nonzero with probability ``density``."""
    rng = np.random.default_rng(seed)

    def w(shape):
        q = rng.integers(1, 128, size=shape) * rng.choice([-1, 1], size=shape)
        return (q * (rng.random(shape) < density)).astype(np.int8)

    inp = TensorInfo((12, 12, 2), 0.02, -3)
    conv_out = TensorInfo((10, 10, 8), 0.05, -20)
    pool_out = TensorInfo((5, 5, 8), 0.05, -20)
    fc_out = TensorInfo((10,), 0.1, 4)
    return Graph(inp, [
        Conv2D(w((8, 3, 3, 2)), rng.integers(-999, 999, 8).astype(np.int32), np.full(8, 0.01, np.float32), (1, 1),
               "VALID", Activation.for_output("RELU", conv_out), conv_out),
        Pool2D("AVERAGE", (2, 2), (2, 2), "VALID", Activation.for_output("NONE", pool_out), pool_out),
        Reshape(TensorInfo((200,), 0.05, -20)),
        FullyConnected(w((10, 200)), rng.integers(-999, 999, 10).astype(np.int32), np.array([0.003], np.float32),
                       Activation.for_output("NONE", fc_out), fc_out)])


def test_tflm_skip_gives_weighted_layers_the_skipping_loops_and_pools_the_stock_ones():
    g = _dense_conv_fc(0.5)
    impls = [choose_kernel(layer, inp, ADAPTED_KERNELS) for _, layer, inp in g.steps()]
    assert impls == ["tflmskip", "tflmref", "tflmref", "tflmskip"]
    assert ADAPTED_KERNELS in KERNEL_SETS and ADAPTED_KERNELS not in SweepConfig().kernels  # default run as before


@budget(8)  # each example builds firmware and runs it on the virtual Pico
@given(g=random_graph(), seed=st.integers(0, 1000))
def test_tflm_skip_int8_is_bit_exact_with_tflm(g, seed):
    """Random conv/depthwise/pool/FC layers at weight density 1, 0.5 or 0.1, against TFLM's interpreter."""
    x = np.random.default_rng(seed).integers(-128, 128, size=(2,) + g.input.shape).astype(np.int8)
    got = run_on_rp2040(g, x, kernels=ADAPTED_KERNELS).outputs.reshape(2, -1)
    assert np.array_equal(got, tflm_run(export_tflite(g), x).reshape(2, -1))


def test_tflm_skip_int8_saves_little_and_costs_on_dense_layers():
    """In int8 the M0+ multiplies in one cycle, so skipping a zero weight saves an input load and a
    multiply-accumulate but costs a compare and branch on every weight, and the stock loops spend most
    of their time outside the multiply (offsets per access, bounds checks, 64-bit requantization). So
    the adapted runtime is slower than the stock one on dense and half-zero layers (a 50 %-sparse LeNet:
    18.9 M cycles against 18.3 M) and only a little faster on very sparse ones. The paper's large
    savings come from float32, where the skipped multiply and add are soft-float calls."""
    x = np.random.default_rng(0).integers(-128, 128, size=(1, 12, 12, 2)).astype(np.int8)
    layers = {}
    for density in (1.0, 0.5, 0.1):
        g = _dense_conv_fc(density)
        for k in ("tflm-ref", ADAPTED_KERNELS):
            p = profile(g, x, k, "sram")
            assert p.bit_exact
            layers[density, k] = np.array(p.cycles_per_layer)[[0, 3]]  # the conv and the FC layer
    ratio = {d: layers[d, ADAPTED_KERNELS] / layers[d, "tflm-ref"] for d in (1.0, 0.5, 0.1)}
    assert (ratio[1.0] > 1).all() and (ratio[0.5] > 1).all()
    assert ratio[0.1][0] < 1 and ratio[0.1][1] < 0.93
    assert np.allclose(layers[1.0, "tflm-ref"], layers[0.1, "tflm-ref"], rtol=2e-3)  # the stock loops ignore zeros


# --- 3. float32 end to end ----------------------------------------------------------------------------

def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def _float_inputs(g: Graph, magnitude: str, seed: int, n: int = 3) -> np.ndarray:
    """Inputs of the graph's magnitude with exact zeros and negative zeros among them."""
    rng = np.random.default_rng(seed)
    x = float_values(rng, (n, *g.input.shape), magnitude, density=0.8)
    return np.where(rng.random(x.shape) < 0.1, np.float32(-0.0), x).astype(np.float32)


@budget(150)  # three magnitudes times every float32 op need more than 100
@given(case=random_float_graph(), seed=st.integers(0, 1000))
def test_random_float_graphs_bit_exact_with_tflm(case, seed):
    """The host reference against TFLM's own float kernels, every bit (softmax included: both call the
    host's expf)."""
    g, magnitude = case
    x = _float_inputs(g, magnitude, seed, n=4)
    assert _bits_equal(run(g, x), tflm_run(export_tflite(g), x))


@pytest.mark.parametrize("kernels", FLOAT_KERNEL_SETS)
@budget(5)  # each example builds soft-float firmware and runs it on the virtual Pico, per set
@given(case=random_float_graph(), seed=st.integers(0, 1000))
def test_random_float_graphs_on_the_virtual_pico_equal_tflm(kernels, case, seed):
    """Soft-float kernels on the M0+ against TFLM: bit for bit, up to a final softmax's last bit."""
    g, magnitude = case
    x = _float_inputs(g, magnitude, seed, n=2)
    assert _bits_equal(run(g, x), tflm_run(export_tflite(g), x))  # what the Pico is compared with is TFLM
    p = profile(g, x, kernels)
    assert p.bit_exact
    if not isinstance(g.layers[-1], Softmax):
        assert p.output_max_ulp == 0


def test_float_sums_follow_tflms_order():
    """1e8 + 1 rounds back to 1e8 in float32: summed in TFLM's order, (((1e8 + 1) - 1e8) + 1) is 1;
    a pairwise or blocked sum (what a BLAS matmul does) gives 2. The reference must give TFLM's 1."""
    fc_out = TensorInfo.float32((1,))
    g = Graph(TensorInfo.float32((4,)), [FullyConnected(np.ones((1, 4), np.float32), np.zeros(1, np.float32),
                                                        np.zeros(0, np.float32), Activation.for_output("NONE", fc_out),
                                                        fc_out)])
    x = np.array([[1e8, 1, -1e8, 1]], np.float32)
    assert run(g, x)[0, 0] == 1.0 == tflm_run(export_tflite(g), x)[0, 0]
    assert np.float32(x[0, 0] + x[0, 2]) + np.float32(x[0, 1] + x[0, 3]) == 2.0


def test_a_final_softmax_is_exact_up_to_newlibs_expf_and_the_check_can_fail():
    """newlib's expf (the Pico) rounds some arguments one bit apart from the host's (TFLM's), and the sum
    and divisions carry that into the outputs. Everything else of the softmax is checked bit for bit:
    its input, and its output recomputed on the host from newlib's own exponentials."""
    logits_t = TensorInfo.float32((10,))
    g = Graph(TensorInfo.float32((10,)), [Reshape(logits_t), Softmax(1.0, logits_t)])
    x = np.random.default_rng(1).normal(0, 4, size=(30, 10)).astype(np.float32)
    host = run(g, x)
    assert _bits_equal(host, tflm_run(export_tflite(g), x))
    p = profile(g, x, "tflm-ref")
    assert p.bit_exact and p.expf_max_ulp == 1 and p.output_max_ulp >= 1

    pico = run_on_rp2040(g, x, "tflm-ref")
    assert check_outputs(g, x, pico).bit_exact

    def edited(output=None, probe=None) -> EmulatorRun:
        return EmulatorRun([Inference(r.cycles, r.layer_cycles, r.instructions,
                                      r.output if output is None else output[i],
                                      r.xip_hits, r.xip_misses, r.probes if probe is None else [probe[i].tobytes()])
                            for i, r in enumerate(pico.inferences)])

    assert not check_outputs(g, x, edited(output=host)).bit_exact   # TFLM's own exponentials are not what ran
    flipped = (x.view(np.uint32) ^ np.uint32(1)).view(np.float32)
    assert not check_outputs(g, x, edited(probe=flipped)).bit_exact  # a logit one bit off
    nudged = pico.outputs.copy()
    nudged[0, 0] = np.nextafter(nudged[0, 0], np.float32(1))
    assert not check_outputs(g, x, edited(output=nudged)).bit_exact  # an output one bit off
    assert ulp_distance(np.float32([1.0, -0.0, -1.0]), np.float32([np.nextafter(1, 2, dtype=np.float32), 0.0,
                                                                   np.nextafter(-1, -2, dtype=np.float32)])).tolist() \
        == [1, 0, 1]


@pytest.fixture(scope="module")
def paper_float_4x():
    """The paper's network in float32 with 3 of 4 weights zeroed (its magnitude pruning at 4x, here a
    random mask: the kernels only see where the zeros are), ending in its SOFTMAX."""
    torch.manual_seed(0)
    net = paper_cnn()
    with torch.no_grad():
        for name, w in net.named_parameters():
            if name.endswith("weight"):
                w.mul_((torch.rand_like(w) < 0.25).float())
    return float32_graph(net, softmax=True)


def test_float_paper_network_exports_and_equals_tflm_on_1000_test_images(paper_float_4x, test_small):
    g = paper_float_4x
    data = export_tflite(g)
    again = import_tflite(data)
    assert export_tflite(again) == data and again.dtype == "float32" and isinstance(again.layers[-1], Softmax)
    x = quantize_images(g, test_small.images)
    assert x.dtype == np.float32 and len(x) == 1000
    assert _bits_equal(run(again, x), tflm_run(data, x))


def test_float_paper_network_on_the_virtual_pico_and_what_skipping_saves(paper_float_4x, test_small):
    g = paper_float_4x
    x = quantize_images(g, test_small.images[:1])
    p = {k: profile(g, x, k) for k in FLOAT_KERNEL_SETS}
    assert all(v.bit_exact for v in p.values())
    # a multiply-accumulate is two soft-float calls: skipping three quarters of them saves most of the time
    assert p[ADAPTED_KERNELS].cycles[0] < 0.5 * p["tflm-ref"].cycles[0]
    assert p["tflm-ref"].flash_bytes > 4 * 110742  # float32 weights: the file is not smaller for zeros


def test_one_gate_for_int8_graphs_with_float_boundaries_and_float32_graphs():
    """Graph.dtype tells the two kinds of graph apart (float32: every tensor is float32) and validate
    checks each: float32 crosses an int8 graph's boundary only through QUANTIZE / DEQUANTIZE, a float32
    graph has neither and no ADD; one Softmax class runs in the dtype of its tensors."""
    f, q, sm8 = TensorInfo.float32((4,)), TensorInfo((4,), 0.1, 3), TensorInfo((4,), 1 / 256, -128)
    boundary = Graph(f, [Quantize(q), Softmax(1.0, sm8), Dequantize(f)])
    floats = Graph(f, [Softmax(0.5, f)])
    assert (boundary.dtype, floats.dtype, Graph(q, []).dtype, Graph(f, []).dtype) == (
        "int8", "float32", "int8", "float32")
    x = np.array([[0.5, -1.0, 2.0, 0.0], [3.0, 3.0, -0.0, 1e-3]], np.float32)
    for g in (boundary, floats):  # the same layer class, TFLM's integer or float kernel
        assert _bits_equal(run(g, x), tflm_run(export_tflite(g), x))
        assert import_tflite(export_tflite(g)).dtype == g.dtype
    with pytest.raises(IRError, match="must feed a QUANTIZE .* or every tensor must be float32"):
        Graph(f, [Softmax(1.0, sm8)])
    with pytest.raises(IRError, match="only DEQUANTIZE writes float32 in an int8 model"):
        Graph(q, [Softmax(1.0, f)])
    with pytest.raises(IRError, match=r"layer 0 \(LOGISTIC\): LOGISTIC has no float32 kernel"):
        Graph(f, [Logistic(f)])
    with pytest.raises(IRError, match=r"layer 1 \(ADD\): ADD has no float32 kernel"):
        Graph(f, [Softmax(1.0, f), Add(Activation.for_output("NONE", f), f)], reads=[(0,), (0, 1)])
    with pytest.raises(IRError, match="a float32 tensor has no quantization"):
        Graph(TensorInfo((4,), 0.1, 0, "float32"), [Softmax(1.0, f)])
    fc = FullyConnected(np.ones((4, 4), np.int8), np.zeros(4, np.int32), np.ones(1, np.float32),
                        Activation.for_output("NONE", f), f)
    with pytest.raises(IRError, match="float32 weights and bias and no weight scales"):
        Graph(f, [fc])

    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return torch.relu(self.conv(x) + x)

    with pytest.raises(ConversionError, match="a float32 graph has no ADD"):  # float32 graphs are chains
        float32_graph(Residual(), (1, 4, 4))
    with pytest.raises(CodegenError, match="'dense' has no float32 kernels"):
        choose_kernel(floats.layers[0], f, "dense")
    assert {choose_kernel(layer, inp, k) for _, layer, inp in boundary.steps() for k in KERNEL_SETS} == {"stock"}


# --- 4. the paper-exact config and the paper's measurements beside ours --------------------------------

def test_paper_exact_is_bundled_and_says_what_the_paper_ran():
    cfg = load_config("paper-exact")
    assert (cfg.arch, cfg.dtype, cfg.optimizer, cfg.lr, cfg.batch_size) == ("paper", "float32", "rmsprop", 1e-3, 64)
    assert cfg.kernels == ("tflm-ref", ADAPTED_KERNELS) and set(cfg.methods) == {"magnitude", "apoz"}
    assert [float(r) for r in cfg.rates] == [2, 3, 4, 8, 16, 24, 32, 48, 64]
    assert (cfg.magnitude_schedule, cfg.magnitude_scope) == ("gradual", "layer")  # what tfmot does
    with pytest.raises(ConfigError, match="float32 run profiles only"):
        load_config(None, dtype="float32", methods=("magnitude",))
    with pytest.raises(ConfigError, match="energy method"):
        load_config(None, dtype="float32", kernels=("tflm-ref",))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config("paper-exactly")


def test_the_papers_measurements_are_loaded_as_published():
    rows = paper_measurements()
    assert len(rows) == 30 and {(r["paper_method"], r["runtime"]) for r in rows} == {
        ("unstructured", "stock"), ("unstructured", "adapted"), ("structured", "stock")}
    stock = next(r for r in rows if (r["paper_method"], r["runtime"], r["rate"]) == ("unstructured", "stock", 1.0))
    assert stock["latency_ms"] == pytest.approx(1291.583) and stock["energy_mj"] == pytest.approx(148.599)
    assert stock["kernels"] == "tflm-ref" and stock["method"] == "magnitude"


def _paper_row(method: str, rate: float, kernels: str, cycles: float, acc: float) -> Row:
    board = load_board("pico")
    return Row(seed=0, method=method, rate=rate, kernels=kernels, compression=rate, params=110742,
               nonzero_params=round(110742 / rate), macs=598104, nonzero_macs=round(598104 / rate), widths=(12, 32),
               float_accuracy=acc, int8_accuracy=acc, cycles=cycles, cycles_per_layer=(cycles,), layer_ops=("CONV_2D",),
               flash_bytes=1000, sram_bytes=100, xip_misses=0.0, bit_exact=True, tflite="m.tflite", elf="m.elf",
               latency_ms=board.latency_ms(cycles), energy_mj=board.energy_mj(cycles, 0.0), energy_delta_pct=0.0,
               accuracy_delta_pp=0.0)


def test_a_paper_run_reports_the_measured_table_and_ratios_beside_ours(tmp_path):
    board = load_board("pico")
    rows = [_paper_row("dense", 1.0, "tflm-ref", 150e6, 0.90), _paper_row("dense", 1.0, ADAPTED_KERNELS, 152e6, 0.90),
            _paper_row("magnitude", 4.0, "tflm-ref", 150e6, 0.88),
            _paper_row("magnitude", 4.0, ADAPTED_KERNELS, 60e6, 0.88), _paper_row("apoz", 4.0, "tflm-ref", 40e6, 0.86)]
    res = write_outputs(rows, tmp_path, board, title="paper run", config=load_config("paper-exact"))
    md = (tmp_path / "report.md").read_text()
    assert "## The paper's measurements beside ours (its network, float32)" in md and "| float32 acc |" in md
    side = {(r["paper_method"], r["runtime"], r["rate"]): r for r in paper_side_by_side(res["aggregate"])}
    adapted4 = side[("unstructured", "adapted", 4.0)]
    assert adapted4["latency_ratio"] == pytest.approx(board.latency_ms(60e6) / 745.093)
    assert adapted4["our_delta_pct"] == pytest.approx(100 * (60 / 152 - 1))
    assert adapted4["paper_delta_pct"] == pytest.approx(-37.93, abs=0.01)
    assert f"| {adapted4['latency_ratio']:.2f} |" in md
    assert side[("structured", "stock", 8.0)]["ours"] is None  # not in this run: n/a, not a made-up number
    for name in ("paper_energy.png", "paper_accuracy.png"):
        assert (tmp_path / name).stat().st_size > 10_000 and name in md
    lenet = write_outputs(rows, tmp_path / "lenet", board, config=SweepConfig())
    assert "measurements beside ours" not in (tmp_path / "lenet" / "report.md").read_text() and lenet
