"""Files and data that the code never writes get one line naming the field, not torch's text: a model file
from before content hashes (trusted whole otherwise), a layer spec with an impossible window, and
images of another size than the model takes."""

import numpy as np
import pytest
import torch

from powerprune.data import Dataset, DatasetError
from powerprune.model import ModelFileError, lenet5, load_model, save_model
from powerprune.train import Recipe, accuracy, fit


def _without_hash(tmp_path, edit) -> str:
    """A LeNet file as written before hashes existed, with ``edit`` applied to its payload."""
    path = tmp_path / "m.pt"
    save_model(lenet5(), path)
    payload = torch.load(path, weights_only=True)
    del payload["sha256"]
    edit(payload)
    torch.save(payload, path)
    return str(path)


@pytest.mark.parametrize(("field", "value"), [("reference_params", -5), ("reference_weights", 0),
                                              ("compression_requested", float("nan")), ("energy_budget", 2.0),
                                              ("history", "none")])
def test_a_hashless_file_with_an_impossible_info_field_names_it(tmp_path, field, value):
    path = _without_hash(tmp_path, lambda p: p["info"].__setitem__(field, value))
    with pytest.raises(ModelFileError, match=rf"info\.{field} is .*; it must be") as err:
        load_model(path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("kernel", [0, 0], r"model spec entry 0 \(conv\): kernel is \[0, 0\]; it must be 2 whole number\(s\) >= 1"),
    ("stride", [1], r"stride is \[1\]"),
    ("out", -6, r"out is -6"),
    ("padding", [2, -1], r"padding is \[2, -1\]; it must be 2 whole number\(s\) >= 0"),
])
def test_a_spec_entry_with_an_impossible_field_names_the_entry_and_field(tmp_path, key, value, message):
    path = _without_hash(tmp_path, lambda p: p["seqnet"]["layers"][0].__setitem__(key, value))
    with pytest.raises(ModelFileError, match=message) as err:
        load_model(path)
    assert "\n" not in str(err.value)


def test_an_unknown_layer_type_is_named(tmp_path):
    path = _without_hash(tmp_path, lambda p: p["seqnet"]["layers"][1].__setitem__("type", "gelu"))
    with pytest.raises(ModelFileError, match=r"entry 1: unknown layer type 'gelu'"):
        load_model(path)


def test_images_of_another_size_than_the_model_takes_are_named_by_the_check():
    """A test split of 24x24 images beside a 28x28 training split once failed inside torch with
    'mat1 and mat2 shapes cannot be multiplied'."""
    rng = np.random.default_rng(0)
    small = Dataset(rng.integers(0, 256, (8, 24, 24, 1), dtype=np.uint8), rng.integers(0, 10, 8))
    model = lenet5()
    wrong = r"images are 24x24x1 \(height x width x channels\) but the model takes 28x28x1"
    with pytest.raises(DatasetError, match=wrong):
        accuracy(model, small)
    with pytest.raises(DatasetError, match="but the model takes 28x28x1"):
        fit(model, small, Recipe(epochs=1), progress=False)


def test_an_output_that_cannot_be_written_is_refused_before_any_work(tmp_path, monkeypatch):
    """Checked with a probe file, since root ignores permission bits: a read-only mount once surfaced only
    after training, losing it. The probe's failure is simulated here (a test cannot mount)."""
    from powerprune.cli.options import refuse_unwritable

    refuse_unwritable(tmp_path / "new" / "deeper" / "m.pt")  # missing folders are created later: fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"--out .*file/m\.pt: .*file is a file, not a folder"):
        refuse_unwritable(tmp_path / "file" / "m.pt")

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr("tempfile.mkstemp", read_only)
    with pytest.raises(ValueError, match=r"--out .*m\.pt cannot be written: Read-only file system"):
        refuse_unwritable(tmp_path / "m.pt")
