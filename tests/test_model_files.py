"""Model files: a pruned model saved and loaded back computes what it did, in every format a model
file has had (LeNet's old layer names, SeqNet specs)."""

from dataclasses import asdict

import numpy as np
import pytest
import torch

from powerprune.model import LeNetArch, load_model, save_model
from powerprune.prune import prune
from powerprune.seqnet import SeqNet
from powerprune.train import Recipe

pytestmark = pytest.mark.slow  # every test saves a trained or pruned model


def test_old_lenet5_model_files_still_load(tmp_path, trained):
    old_names = {"conv0": "conv1", "conv3": "conv2", "fc7": "fc1", "fc9": "fc2", "fc11": "fc3"}
    state = {old_names[k.split(".")[0]] + "." + k.split(".")[1]: v for k, v in trained.state_dict().items()}
    mask = {"fc1": (trained.fc7.weight.abs() > 0.01).float()}
    torch.save({"format": "powerprune-model", "version": 1, "arch": asdict(LeNetArch()), "state_dict": state,
                "masks": mask, "info": {"method": "magnitude"}}, tmp_path / "old.pt")
    model, info = load_model(tmp_path / "old.pt")
    x = torch.rand(2, 1, 28, 28)
    assert info.method == "magnitude" and torch.equal(model.masks["fc7"], mask["fc1"])
    assert torch.equal(model(x), trained.eval()(x))


def test_model_file_roundtrip(tmp_path, trained, train_small, quick_finetune):
    res = prune(trained, "magnitude", 4, train_small, finetune=quick_finetune, progress=False)
    path = tmp_path / "m.pt"
    save_model(res.model, path, res.info)
    model, info = load_model(path)
    assert info.method == "magnitude"
    x = torch.rand(2, 1, 28, 28)
    assert np.allclose(model(x).detach().numpy(), res.model(x).detach().numpy())


def test_seqnet_model_file_roundtrip(tmp_path, digits, digits_model):
    res = prune(digits_model, "magnitude", 2, digits[0], finetune=Recipe(epochs=1, batch_size=64), progress=False)
    save_model(res.model, tmp_path / "d.pt", res.info)
    model, info = load_model(tmp_path / "d.pt")  # weights_only: a spec, never pickled code
    assert isinstance(model, SeqNet) and info.reference_params == res.info.reference_params
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(model(x), res.model(x)) and set(model.masks) == set(res.model.masks)
