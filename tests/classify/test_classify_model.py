"""load_classifier rebuilds a saved classifier from its spec and state dict, and refuses what is not one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from cxrpriv.classify.model import BUILDER, build_classifier, load_classifier
from cxrpriv.training.checkpoint import save_state_dict


def test_load_classifier_rebuilds_the_saved_network(tmp_path: Path):
    kwargs = {"backbone": "small_cnn", "width": 4, "depth": 2, "n_findings": 3, "stem": 1}
    torch.manual_seed(0)
    model = build_classifier(**kwargs).eval()
    save_state_dict(model, tmp_path / "model.pt")
    spec = {"builder": BUILDER, "kwargs": kwargs, "findings": ["A", "B", "C"], "input_size": 16}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    loaded, loaded_spec = load_classifier(tmp_path)
    assert not loaded.training and loaded_spec["findings"] == ["A", "B", "C"]
    images = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(images), model(images))


def test_load_classifier_refuses_a_missing_or_foreign_spec(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="train_classifier output"):
        load_classifier(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps({"builder": "cxrpriv.reid.model:build_verifier"}))
    with pytest.raises(ValueError, match="not the classifier's"):
        load_classifier(tmp_path)
