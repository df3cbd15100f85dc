"""Unlabeled archives: images without a labels-table row (or with no table at all) are ingested with missing
labels (never negatives), flagged ``labeled`` False, validated as such, and refused by ``Dataset.labels``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydicom.data import get_testdata_file

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.dataset import DatasetError, open_dataset
from cxrpriv.ingest.stage import IngestResult
from cxrpriv.ingest.validation import ValidationFailed, validate_manifest
from tests.ingest.conftest import Cohort, run_stage


def test_without_a_table_every_image_is_ingested_unlabeled(
    tiny_cohort: Cohort, ingested: IngestResult, tmp_path: Path
):
    result = run_stage(tiny_cohort.dicom, None, tmp_path / "out")
    manifest = result.manifest
    assert sorted(manifest["image_id"]) == sorted(ingested.manifest["image_id"])
    assert not manifest["labeled"].any() and ingested.manifest["labeled"].all()
    assert manifest[list(FINDINGS)].isna().all().all(), "missing, not negative"
    assert set(manifest["split"]) <= {"train", "validation", "test"} and manifest["split"].notna().all()
    assert result.validation["success"]
    assert result.metrics["n_images_unlabeled"] == len(manifest)
    dataset = open_dataset(result.out_dir)
    assert len(dataset.labeled_rows()) == 0
    with pytest.raises(DatasetError, match=r"have no labels \(labeled is False\)"):
        dataset.labels(FINDINGS)


def test_images_without_a_row_are_unlabeled_and_the_others_keep_their_labels(
    tiny_cohort: Cohort, ingested: IngestResult, tmp_path: Path
):
    table = pd.read_csv(tiny_cohort.labels, dtype=str)
    partial = tmp_path / "partial.csv"
    table.iloc[::2].to_csv(partial, index=False)
    result = run_stage(tiny_cohort.dicom, partial, tmp_path / "out")
    assert sorted(result.manifest["image_id"]) == sorted(ingested.manifest["image_id"])
    manifest = result.manifest.set_index("image_id")
    full = ingested.manifest.set_index("image_id").loc[manifest.index]
    labeled = manifest["labeled"].to_numpy()
    assert labeled.any() and not labeled.all()
    pd.testing.assert_frame_equal(manifest.loc[labeled, list(FINDINGS)], full.loc[labeled, list(FINDINGS)])
    assert manifest.loc[~labeled, list(FINDINGS)].isna().all().all()
    dataset = open_dataset(result.out_dir)
    rows = dataset.labeled_rows()
    assert np.array_equal(dataset.labels(FINDINGS, rows), full.loc[labeled, list(FINDINGS)].to_numpy(float))


def test_real_cr_chest_files_without_a_table_go_through(tmp_path: Path):
    source = tmp_path / "pacs-export"
    source.mkdir()
    # One CR chest PA film in two encodings (two SOP instances of one patient), and a CR extremity film.
    for name in ("RG1_UNCI.dcm", "RG1_J2KR.dcm", "RG3_UNCI.dcm"):
        shutil.copy(get_testdata_file(name), source / name)
    result = run_stage(source, None, tmp_path / "out")
    report = result.files.set_index("path")
    assert list(report.loc[["RG1_UNCI.dcm", "RG1_J2KR.dcm"], "outcome"]) == ["ingested", "ingested"]
    assert report.loc["RG3_UNCI.dcm", "reason"] == "body part EXTREMITY is not chest"
    manifest = result.manifest
    assert len(manifest) == 2 and not manifest["labeled"].any() and manifest["patient_id"].nunique() == 1
    assert set(manifest["view"]) == {"PA"} and set(manifest["modality"]) == {"CR"}


def test_validation_holds_labels_to_the_labeled_flag(ingested: IngestResult):
    bad = ingested.manifest.copy()
    bad.loc[0, "labeled"] = False  # still carries its findings: an unlabeled row must not
    bad.loc[1, "Mass"] = pd.NA  # labeled, with a finding missing
    with pytest.raises(ValidationFailed) as caught:
        validate_manifest(bad, ["PA", "AP"], 8)
    failing = caught.value.failing
    assert "manifest: Mass null where unlabeled" in failing
    assert "manifest: Mass not null where labeled" in failing
    good = ingested.manifest.copy()
    good.loc[0, "labeled"] = False
    good.loc[0, list(FINDINGS)] = pd.NA
    assert validate_manifest(good, ["PA", "AP"], 8)["success"]
