"""The same float numbers on every machine: what makes a trained model (and so every accuracy, scale and
cycle count derived from it) depend only on the seed and the code.

The same seed gave other weights on another machine of the same kind, and then other tables. Three things
changed the order or the width of float sums without anyone asking for it, and each alone changes a
LeNet's weights after one epoch (measured: five different weight hashes from one seed):

- the intra-op thread count (torch splits reductions across threads: 1 and 2 threads differ),
- the SIMD kernels torch and oneDNN pick for the processor (AVX-512 and AVX2 machines differ),
- MKL's code path for the processor (its results are reproducible across processors only when asked).

``pin_environment`` runs when powerprune is imported, before torch is: it asks torch for its portable
kernels and MKL for its compatible mode, unless the user set those variables. ``pin_torch`` then turns
off oneDNN and NNPACK (their kernels are chosen by processor and cache size) and keeps torch to one
thread. Set ``POWERPRUNE_FAST_NUMERICS=1`` to leave all of this alone: faster, machine-dependent.
"""

from __future__ import annotations

import os

FAST = "POWERPRUNE_FAST_NUMERICS"
ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


def enabled() -> bool:
    return os.environ.get(FAST, "") in ("", "0")


def pin_environment() -> None:
    """Portable kernel choices for torch and MKL; read when they load, so this must run first."""
    if enabled():
        for name, value in ENVIRONMENT.items():
            os.environ.setdefault(name, value)


def pin_torch() -> None:
    """One intra-op thread and no processor-tuned convolution back ends (called where torch is imported)."""
    if not enabled():
        return
    import torch

    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
