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


def write_easy_identities(
    out: Path, n_patients: int = 24, films: int = 4, size: int = 32, finding: str | None = None
) -> Path:
    """An ingest-format dataset where identity is easy to learn but not in the raw pixels: each patient's
    films share a stripe pattern (the patient's orientation and frequency, a random phase per film) under a
    bright disc of random place and size and pixel noise, which dominate any untrained comparison.
    Patients split half / quarter / quarter into train, validation and test. With ``finding`` (a manifest
    column), every other film also has it: a dark square at a random place (drawn after the rest, so the
    films without it are the same either way)."""
    import numpy as np
    import pandas as pd

    from cxrpriv.ingest.shards import ShardWriter

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    writer = ShardWriter(out, 10_000, size, "uint8")
    rows = []
    for patient in range(n_patients):
        angle, frequency = np.pi * patient / n_patients, 4 + 2 * (patient % 3)
        split = (
            "train"
            if patient < n_patients // 2
            else "validation"
            if patient < 3 * n_patients // 4
            else "test"
        )
        for film in range(films):
            wave = np.cos(angle) * xx + np.sin(angle) * yy
            stripes = 0.5 + 0.25 * np.sin(2 * np.pi * frequency * wave + rng.uniform(0, 2 * np.pi))
            cy, cx = rng.uniform(0.2, 0.8, 2)
            disc = ((yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(0.15, 0.35) ** 2) * rng.uniform(0.3, 0.5)
            image = stripes + disc + rng.normal(0, 0.1, (size, size))
            row = {
                "image_id": f"image-{patient:03d}-{film}",
                "patient_id": f"patient-{patient:04d}",
                "split": split,
            }
            if finding is not None:
                row[finding] = (patient + film) % 2
                if row[finding]:
                    y, x = rng.integers(2, size - 10, 2)
                    image[y : y + 8, x : x + 8] -= 0.6
            shard, offset = writer.add((np.clip(image, 0, 1) * 255).astype(np.uint8), "{}")
            rows.append({**row, "shard": shard, "offset": offset})
    writer.close()
    pd.DataFrame(rows).to_parquet(out / "manifest.parquet")
    return out


@pytest.fixture(scope="session")
def easy_ingest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_easy_identities(tmp_path_factory.mktemp("easy_identities"))
