"""Unlabeled images (ingested without a labels-table row) are left out of the classifier's training and
evaluation rows; a dataset with no labeled training image is refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.classify import ClassifierInputError
from cxrpriv.classify.data import load_data
from tests.classify.conftest import tiny_classifier_config


def unlabel(ingest: Path, out: Path, rows: np.ndarray) -> pd.DataFrame:
    """A copy of the ingest output ``ingest`` whose ``rows`` have no labels, as ingest writes them."""
    shutil.copytree(ingest, out)
    manifest = pd.read_parquet(out / "manifest.parquet")
    for finding in FINDINGS:
        manifest[finding] = manifest[finding].astype("Int64")
    manifest.loc[rows, list(FINDINGS)] = pd.NA
    manifest["labeled"] = ~manifest.index.isin(rows)
    manifest.to_parquet(out / "manifest.parquet", index=False)
    return manifest


def test_unlabeled_rows_are_in_no_split(tiny_data: dict[str, Path], tmp_path: Path):
    manifest = pd.read_parquet(tiny_data["ingest"] / "manifest.parquet")
    unlabeled = np.arange(0, len(manifest), 3)
    unlabel(tiny_data["ingest"], tmp_path / "ingest", unlabeled)
    config, priors = tiny_classifier_config(), tiny_data["priors"]
    data = load_data(config, tmp_path / "ingest", priors, None, None, mask_size=32)
    used = np.concatenate([data.train, data.validation, data.test])
    assert not set(used) & set(unlabeled)
    assert sorted(used) == sorted(set(range(len(manifest))) - set(unlabeled))
    assert np.isnan(data.mined[unlabeled]).all() and not np.isnan(data.mined[used]).any()
    every = load_data(config, tiny_data["ingest"], priors, None, None, mask_size=32)
    assert np.array_equal(data.mined[used], every.mined[used])


def test_no_labeled_training_image_is_refused(tiny_data: dict[str, Path], tmp_path: Path):
    manifest = pd.read_parquet(tiny_data["ingest"] / "manifest.parquet")
    unlabel(tiny_data["ingest"], tmp_path / "ingest", np.flatnonzero(manifest["split"] == "train"))
    with pytest.raises(ClassifierInputError, match="the train split has no labeled image"):
        load_data(
            tiny_classifier_config(), tmp_path / "ingest", tiny_data["priors"], None, None, mask_size=32
        )
