"""Fixtures of the verifier tests: a tiny cohort synthesized and ingested once per session, tiny configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from cxrpriv.config import load_stage_config
from cxrpriv.reid.config import TrainReidConfig
from tests.conftest import PARAMS, IngestedCohort


def tiny_reid_config(**overrides: object) -> TrainReidConfig:
    """The default profile shrunk to seconds: 32 px, a narrow two-block trunk, two short epochs."""
    base = load_stage_config(TrainReidConfig, "train_reid", PARAMS, "default")
    small = {
        "image_size": 32,
        "width": 4,
        "depth": 2,
        "feature_dim": 16,
        "batch_size": 4,
        "max_epochs": 2,
        "max_steps_per_epoch": 3,
        "n_boot": 20,
        "retrieval_k": 5,
        "retrieval_chunk": 4,
    }
    small.update(overrides)
    return dataclasses.replace(base, **small)


@pytest.fixture(scope="session")
def tiny_ingest(tiny_ingested_cohort: IngestedCohort) -> Path:
    """Twelve patients (up to four films each) at 64 px, ingested at 32 px with a test key (read-only)."""
    return tiny_ingested_cohort.ingest
