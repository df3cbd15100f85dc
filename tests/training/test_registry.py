from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from cxrpriv.networks.backbones import build_backbone
from cxrpriv.training.checkpoint import save_state_dict
from cxrpriv.training.registry import ModelCard, alias_released_models, build_from_spec, log_state_dict_model

SPEC = {
    "builder": "cxrpriv.networks.backbones:build_backbone",
    "kwargs": {"name": "small_cnn", "width": 4, "depth": 2},
}


def test_registered_model_rebuilds_from_its_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = build_backbone("small_cnn", width=4, depth=2).eval()
    save_state_dict(net, tmp_path / "model.pt")
    mlflow.set_experiment("registry-test")  # not an experiment id cached by an earlier test's store
    card = ModelCard("A test trunk. Trained on 3 images; AUC 0.5.", "d1g3st", input_size=16)
    with mlflow.start_run():
        uri = log_state_dict_model(tmp_path / "model.pt", SPEC, "cxrpriv-test", card)
    loaded = mlflow.pyfunc.load_model(uri)
    x = np.random.default_rng(0).random((2, 1, 16, 16), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(x)).numpy()
    assert np.allclose(loaded.predict(x), expected, atol=1e-6)
    client = mlflow.tracking.MlflowClient()
    (version,) = client.search_model_versions("name='cxrpriv-test'")
    assert version.description == card.description
    assert version.tags["cxrpriv.model_digest"] == "d1g3st"
    assert client.get_registered_model("cxrpriv-test").description == "A test trunk"
    # the signature: float32 images [-1, 1, 16, 16] in, the trunk's output with a free batch axis out
    signature = loaded.metadata.signature
    (images,) = signature.inputs.inputs
    assert images.shape == (-1, 1, 16, 16) and images.type == np.dtype(np.float32)
    (output,) = signature.outputs.inputs
    assert output.shape == (-1, *expected.shape[1:])
    # a release aliases the newest version of each model whose digest made it; an unknown digest is skipped
    with mlflow.start_run():
        log_state_dict_model(tmp_path / "model.pt", SPEC, "cxrpriv-test", card)
    records = alias_released_models({"anonymizer": "d1g3st", "verifier": "unregistered"})
    assert records == [
        {
            "kind": "anonymizer",
            "name": "cxrpriv-test",
            "version": "2",
            "alias": "released",
            "digest": "d1g3st",
        }
    ]
    assert str(client.get_model_version_by_alias("cxrpriv-test", "released").version) == "2"


def test_only_library_builders_are_accepted() -> None:
    with pytest.raises(ValueError, match="only cxrpriv builders"):
        build_from_spec({"builder": "os:system", "kwargs": {"command": "true"}})
