"""Shared fixtures: tiny configs and an isolated MLflow store per test."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cxrpriv.config import load_stage_config
from cxrpriv.synth.config import SynthesizeConfig

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"


def tiny_synth_config(**overrides: object) -> SynthesizeConfig:
    """The default profile shrunk to a handful of patients at 64 px: seconds, not minutes."""
    base = load_stage_config(SynthesizeConfig, "synthesize", PARAMS, "default")
    small = {
        "n_patients": 6,
        "image_size": 64,
        "max_images_per_patient": 3,
        "naive_attack_pairs": 20,
        "workers": 1,
        "broken_per_kind": 1,
        "reread_fraction": 0.5,
        "mask_shard_size": 4,
    }
    small.update(overrides)
    return dataclasses.replace(base, **small)


@pytest.fixture(autouse=True)
def isolated_mlflow(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test logs into its own SQLite store, never into the working tree's mlflow.db."""
    store = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(store)  # artifacts of a SQLite store default to ./mlruns
    return uri
