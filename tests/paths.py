"""Where the inputs shipped with the repository live, for the tests that read them."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The bring-your-own-model example: a PyTorch model definition and a small second dataset (8x8 digits).
DIGITS_EXAMPLE = REPO / "examples" / "digits"
DIGITS = DIGITS_EXAMPLE / "digits.npz"
