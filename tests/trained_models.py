"""A session fixture several stages' tests share: a tiny ingest-format dataset whose identity is easy to learn
and has one finding, with a verifier and a classifier trained on it in seconds by their stage functions and
saved as their stages save them (the anonymizer trains against them; evaluate attacks and classifies with
them). Registered for every test directory by tests/conftest.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from tests.classify.conftest import handmade_priors, tiny_classifier_config
from tests.reid.conftest import tiny_reid_config, write_easy_identities

SIZE = 32
FINDING = "Mass"


def easy_verifier_config(**overrides: object) -> Any:
    """A metric verifier that links the easy cohort's films well in seconds (its settings pinned, not the
    params default's)."""
    values: dict[str, object] = {
        "method": "metric",
        "pool": "average",
        "learning_rate": 3e-3,
        "cosine_scale": 10.0,
        "margin": 0.1,
        "batch_size": 16,
        "max_epochs": 20,
        "patience": 50,
        "max_steps_per_epoch": 0,
        "augment_shift": 0.045,
        "augment_scale": 0.045,
        "augment_rotation_deg": 3.0,
    }
    return tiny_reid_config(**{**values, **overrides})


@dataclasses.dataclass(frozen=True)
class Trained:
    ingest: Path
    verifier: Path  # a train_reid-like output: model.pt, spec.json
    classifier: Path  # a train_classifier-like output: model.pt, spec.json
    priors: Path
    verifier_test_auc: float


def _save(directory: Path, model: object, spec: dict) -> None:
    from cxrpriv.training.checkpoint import save_state_dict

    directory.mkdir(parents=True, exist_ok=True)
    save_state_dict(model, directory / "model.pt")  # type: ignore[arg-type]
    (directory / "spec.json").write_text(json.dumps(spec, indent=1))


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """The easy cohort, with a metric verifier and a classifier trained by their stage functions (their run
    functions would log to MLflow before the per-test store is set up), saved as their stages save them."""
    from cxrpriv.classify.data import load_data
    from cxrpriv.classify.model import classifier_artifact_spec
    from cxrpriv.classify.stage import train_classifier
    from cxrpriv.reid.stage import train_reid
    from cxrpriv.training.accelerator import select_accelerator

    root = tmp_path_factory.mktemp("anonymizer-inputs")
    ingest = write_easy_identities(root / "ingest", size=SIZE, finding=FINDING)
    priors = root / "priors.json"
    priors.write_text(json.dumps(handmade_priors(pos=0.95, neg=0.01)))

    reid_config = easy_verifier_config()
    reid = train_reid(reid_config, ingest, None, "cpu", False)
    _save(root / "reid", reid.model, reid.spec)

    config = tiny_classifier_config(
        findings=(FINDING,), max_epochs=15, patience=50, max_steps_per_epoch=0, batch_size=8
    )
    data = load_data(config, ingest, priors, None, None, mask_size=SIZE)
    result = train_classifier(config, data, ingest, select_accelerator("cpu"), progress=False)
    spec = classifier_artifact_spec(result.spec, data.findings, SIZE, SIZE, data.priors_summary)
    _save(root / "classifier", result.model, spec)
    auc = reid.metrics["verification"]["auc"]["value"]
    return Trained(ingest, root / "reid", root / "classifier", priors, auc)
