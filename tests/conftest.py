"""Shared fixtures: tiny configs and an isolated MLflow store per test."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.config import load_stage_config
from cxrpriv.synth.config import SynthesizeConfig

# The easy cohort with a trained verifier and classifier, once per session for the anonymizer and evaluate
# tests (a plugin, not an import: that module imports fixture modules that import this one).
pytest_plugins = ["tests.trained_models"]

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
    # a component called in-process (tests of the KFP edge) sets the pipeline execution in os.environ
    monkeypatch.delenv("CXRPRIV_PIPELINE_RUN", raising=False)
    monkeypatch.chdir(store)  # artifacts of a SQLite store default to ./mlruns
    return uri


@dataclasses.dataclass(frozen=True)
class IngestedCohort:
    cohort: Path  # the synthetic cohort (dataset/, answer_key/)
    ingest: Path  # its ingest output


@pytest.fixture(scope="session")
def tiny_ingested_cohort(tmp_path_factory: pytest.TempPathFactory) -> IngestedCohort:
    """Twenty-four patients (up to four films each) at 64 px, ingested at 32 px with a test key, built once
    for the model-stage tests (treat as read-only)."""
    from cxrpriv.ingest.config import PreprocessConfig
    from cxrpriv.ingest.keys import DeidKey
    from cxrpriv.ingest.labels import LabelsTable
    from cxrpriv.ingest.sources import FolderSource
    from cxrpriv.ingest.stage import preprocess
    from cxrpriv.synth.cohort import synthesize

    root = tmp_path_factory.mktemp("tiny-ingested")
    cohort = root / "cohort"
    settings = {
        "n_patients": 24,
        "max_images_per_patient": 4,
        "burned_text_fraction": 0.0,
        "broken_per_kind": 0,
        # Every finding common, so a test split of two or three patients still holds positives to score.
        "min_finding_prevalence": 0.2,
    }
    synthesize(tiny_synth_config(**settings), cohort, progress=False)
    base = load_stage_config(PreprocessConfig, "preprocess", PARAMS, "default")
    config = dataclasses.replace(base, image_size=32, workers=1, shard_size=16)
    labels = cohort / "dataset" / "Data_Entry_2017.csv"
    table = LabelsTable.from_csv(labels.read_bytes(), labels.name)
    key = DeidKey(b"cxrpriv-model-stage-test-key-0123456789abcdef", "test")
    preprocess(config, FolderSource(cohort / "dataset" / "dicom"), table, root / "ingest", key)
    # What the model-stage tests rely on: three splits, and findings present in the held-out ones.
    manifest = pd.read_parquet(root / "ingest" / "manifest.parquet")
    assert set(manifest["split"]) == {"train", "validation", "test"}
    held_out = manifest[manifest["split"] != "train"]
    assert (held_out[list(FINDINGS)].sum() > 0).sum() >= 3
    for split in ("validation", "test"):  # same-patient pairs for the verifier
        assert manifest[manifest["split"] == split]["patient_id"].value_counts().max() >= 2, split
    return IngestedCohort(cohort, root / "ingest")
