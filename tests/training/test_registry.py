from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from cxrpriv.networks.backbones import build_backbone
from cxrpriv.training.checkpoint import save_state_dict
from cxrpriv.training.registry import build_from_spec, log_state_dict_model

SPEC = {
    "builder": "cxrpriv.networks.backbones:build_backbone",
    "kwargs": {"name": "small_cnn", "width": 4, "depth": 2},
}


def test_registered_model_rebuilds_from_its_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_backbone("small_cnn", width=4, depth=2).eval()
    save_state_dict(net, tmp_path / "model.pt")
    mlflow.set_experiment("registry-test")  # not an experiment id cached by an earlier test's store
    with mlflow.start_run():
        uri = log_state_dict_model(tmp_path / "model.pt", SPEC, registered_name="cxrpriv-test")
    loaded = mlflow.pyfunc.load_model(uri)
    x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert np.allclose(loaded.predict(x), expected, atol=1e-6)
    versions = mlflow.tracking.MlflowClient().search_model_versions("name='cxrpriv-test'")
    assert len(versions) == 1


def test_only_library_builders_are_accepted() -> None:
    with pytest.raises(ValueError, match="only cxrpriv builders"):
        build_from_spec({"builder": "os:system", "kwargs": {"command": "true"}})
