"""float32 end to end: graphs whose every tensor is float32, their host reference bit for bit against
TFLM's float kernels, soft-float kernels on the virtual Pico, a final softmax up to newlib's expf, the
paper's network in float32, and the one gate that tells int8 and float32 graphs apart."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from powerprune.ir import (
    Activation,
    Add,
    Dequantize,
    FullyConnected,
    Graph,
    IRError,
    Logistic,
    Quantize,
    Reshape,
    Softmax,
    TensorInfo,
)
from powerprune.mcu.codegen import ADAPTED_KERNELS, FLOAT_KERNEL_SETS, KERNEL_SETS, CodegenError, choose_kernel
from powerprune.mcu.emulator import EmulatorRun, Inference
from powerprune.mcu.profile import check_outputs, profile, run_on_rp2040, ulp_distance
from powerprune.model import paper_cnn
from powerprune.oracle import tflm_run
from powerprune.quantize import float32_graph, quantize_images
from powerprune.reference import run
from powerprune.seqnet import ConversionError
from powerprune.tflite import export_tflite, import_tflite

from .strategies import budget, float_values, random_float_graph


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


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_float_paper_network_exports_and_equals_tflm_on_1000_test_images(paper_float_4x, test_small):
    g = paper_float_4x
    data = export_tflite(g)
    again = import_tflite(data)
    assert export_tflite(again) == data and again.dtype == "float32" and isinstance(again.layers[-1], Softmax)
    x = quantize_images(g, test_small.images)
    assert x.dtype == np.float32 and len(x) == 1000
    assert _bits_equal(run(again, x), tflm_run(data, x))


@pytest.mark.slow
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
