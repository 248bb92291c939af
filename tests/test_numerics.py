"""The same seed trains the same weights on every machine of a kind: thread counts and the processor's
SIMD width once changed them (a LeNet's weights after one epoch hashed five different ways)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains in subprocesses

REPO = Path(__file__).resolve().parent.parent
TRAIN = """
import hashlib
import powerprune
from powerprune.data import load_fashion_mnist
from powerprune.model import lenet5
from powerprune.train import Recipe, fit, seed_everything
seed_everything(0)
model = lenet5()
fit(model, load_fashion_mnist("train", 600), Recipe(epochs=1, batch_size=64), progress=False)
print(hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in model.parameters())).hexdigest())
"""
# what another machine of the same kind may differ in: more threads, a processor without AVX-512
ANOTHER_MACHINE = {"OMP_NUM_THREADS": "2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def weights_hash(**env: str) -> str:
    ours = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "POWERPRUNE_FAST_NUMERICS")
    clean = {k: v for k, v in os.environ.items() if k not in ours}
    run = subprocess.run([sys.executable, "-c", TRAIN], capture_output=True, text=True, check=True, timeout=300,
                         env={**clean, "PYTHONPATH": str(REPO), **env}, cwd=REPO)
    return run.stdout.strip()


def test_training_gives_the_same_weights_whatever_the_threads_and_simd_width():
    assert weights_hash() == weights_hash(**ANOTHER_MACHINE)


def test_the_machine_differences_are_real_without_the_pinning():
    """Without powerprune's pinning the same two runs differ: the check above can fail."""
    if "avx512f" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("this processor has no AVX-512, so the simulated machine is this one")
    fast = {"POWERPRUNE_FAST_NUMERICS": "1"}
    assert weights_hash(**fast) != weights_hash(**fast, **ANOTHER_MACHINE)
