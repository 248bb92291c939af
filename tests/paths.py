"""Where the inputs shipped with the repository live, for the tests that read them, and how a test runs
this checkout in a new interpreter."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The bring-your-own-model example: a PyTorch model definition and a small second dataset (8x8 digits).
DIGITS_EXAMPLE = REPO / "examples" / "digits"
DIGITS = DIGITS_EXAMPLE / "digits.npz"


def fresh_python(code: str) -> subprocess.CompletedProcess:
    """``code`` in a new interpreter of this checkout, where nothing this test session imported is loaded yet."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
