"""The synthesize stage end to end on a tiny cohort: files, tables, answer key, determinism, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from cxrpriv.synth.cohort import LABEL_COLUMNS, synthesize
from cxrpriv.synth.config import BROKEN_KINDS
from cxrpriv.synth.stats import FINDINGS
from tests.conftest import tiny_synth_config

REQUIRED_TAGS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "StudyDate",
    "StudyTime",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "PhotometricInterpretation",
    "BitsStored",
    "BitsAllocated",
    "Rows",
    "Columns",
)


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohort") / "synthetic"
    config = tiny_synth_config()
    return config, synthesize(config, out, progress=False)


def test_same_seed_gives_byte_identical_files_whatever_the_worker_count(cohort, tmp_path):
    config, first = cohort
    again = synthesize(tiny_synth_config(workers=2), tmp_path / "again", progress=False)
    assert _tree_digest(first.out_dir) == _tree_digest(again.out_dir)
    assert first.metrics == again.metrics
    other = synthesize(tiny_synth_config(seed=config.seed + 1), tmp_path / "other", progress=False)
    assert _tree_digest(first.out_dir) != _tree_digest(other.out_dir)


def test_every_file_is_accounted_for_in_the_answer_key(cohort):
    config, summary = cohort
    root = summary.out_dir
    on_disk = {
        p.relative_to(root / "dataset").as_posix() for p in (root / "dataset" / "dicom").rglob("*.dcm")
    }
    files = pd.read_parquet(root / "answer_key" / "files.parquet")
    assert set(files["path"]) == on_disk
    assert len(files) == summary.n_files == summary.n_images + len(BROKEN_KINDS) * config.broken_per_kind
    assert set(files["expected"]) <= {"ingest", "quarantine", "reject"}
    rejects = files[files["expected"] == "reject"]
    assert sorted(r.split(":")[0] for r in rejects["reason"]) == sorted(BROKEN_KINDS)


def test_dicom_headers_are_valid_and_carry_identifying_information(cohort):
    _, summary = cohort
    root = summary.out_dir
    images = pd.read_parquet(root / "answer_key" / "images.parquet")
    files = pd.read_parquet(root / "answer_key" / "files.parquet").set_index("image_index")
    for image_id in images["image_index"]:
        ds = pydicom.dcmread(root / "dataset" / files.loc[image_id, "path"])
        for tag in REQUIRED_TAGS:
            assert tag in ds, f"{image_id}: {tag} missing"
        assert ds.Modality in ("CR", "DX") and ds.BodyPartExamined == "CHEST"
        assert 10 <= ds.BitsStored <= 16
        assert pydicom.uid.UID(ds.SOPInstanceUID).is_valid
        pixels = ds.pixel_array
        assert pixels.shape == (64, 64)


def test_labels_table_has_chestxray14_format_and_matches_answer_key(cohort):
    _, summary = cohort
    root = summary.out_dir
    labels = pd.read_csv(root / "dataset" / "Data_Entry_2017.csv")
    assert list(labels.columns) == LABEL_COLUMNS
    header = (root / "dataset" / "Data_Entry_2017.csv").read_text().splitlines()[0]
    assert header.startswith("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age")
    images = pd.read_parquet(root / "answer_key" / "images.parquet")
    chest = labels.set_index("Image Index").loc[[f"{i}.dcm" for i in images["image_index"]]]
    for (_, row), (_, key) in zip(chest.iterrows(), images.iterrows(), strict=True):
        mined = [f for f in FINDINGS if key[f"mined_{f}"]]
        assert row["Finding Labels"] == ("|".join(mined) or "No Finding")
        assert row["View Position"] == key["view"]
    # each true patient keeps one Patient ID; different patients get different ones
    ids = chest["Patient ID"].to_numpy()
    for patient in images["patient"].unique():
        assert len(set(ids[images["patient"].to_numpy() == patient])) == 1
    assert chest["Patient ID"].nunique() == images["patient"].nunique()


def test_reread_table_and_readers(cohort):
    config, summary = cohort
    root = summary.out_dir
    reread = pd.read_csv(root / "dataset" / "reread.csv")
    assert list(reread.columns) == ["Image Index", "Reader", *FINDINGS]
    assert set(reread["Reader"]) <= {f"R{i + 1}" for i in range(config.n_readers)}
    per_image = reread.groupby("Image Index")["Reader"].nunique()
    assert (per_image == config.n_readers).all()
    readers = json.loads((root / "answer_key" / "readers.json").read_text())
    assert sorted(readers) == [f"R{i + 1}" for i in range(config.n_readers)]


def test_masks_cover_every_image(cohort):
    _, summary = cohort
    root = summary.out_dir
    ids, count = [], 0
    for shard in sorted((root / "answer_key" / "masks").glob("shard-*.npz")):
        with np.load(shard) as data:
            ids += list(data["image_index"])
            count += len(data["masks"])
            assert data["masks"].dtype == np.uint8 and data["masks"].shape[1:] == (64, 64)
    images = pd.read_parquet(root / "answer_key" / "images.parquet")
    assert ids == list(images["image_index"]) and count == len(images)


def test_metrics_report_statistics_and_the_naive_attacker(cohort):
    _, summary = cohort
    m = summary.metrics
    assert m["n_images"] == summary.n_images
    assert 0.0 <= m["naive_attacker_auc"] <= 1.0
    assert set(m["prevalence"]) == set(FINDINGS) and set(m["label_noise"]) == set(FINDINGS)


def test_refuses_a_non_empty_output_directory(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="not empty"):
        synthesize(tiny_synth_config(), tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "keep.txt").read_text() == "precious"


def test_a_cohort_without_follow_ups_reports_no_naive_auc(tmp_path):
    summary = synthesize(
        tiny_synth_config(n_patients=3, max_images_per_patient=1), tmp_path / "c", progress=False
    )
    assert summary.metrics["naive_attacker_auc"] is None and summary.attack is None


@pytest.mark.slow  # two CLI runs in fresh processes: ~20 s
def test_cli_runs_in_separate_processes_give_identical_files(tmp_path):
    """Across processes (different hash salts), not only within one: nothing may depend on hash()."""
    import os
    import subprocess
    import sys

    from tests.conftest import PARAMS

    digests = []
    for salt in ("1", "2"):
        out = tmp_path / f"run{salt}"
        cmd = [
            sys.executable,
            "-m",
            "cxrpriv.cli",
            "synthesize",
            "--params",
            str(PARAMS),
            "--out",
            str(out),
            "--metrics",
            str(tmp_path / f"m{salt}.json"),
            "--plots",
            str(tmp_path / f"p{salt}"),
            "--n-patients",
            "3",
            "--image-size",
            "64",
            "--max-images-per-patient",
            "2",
            "--workers",
            "1",
            "--broken-per-kind",
            "1",
            "--no-progress",
        ]
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONHASHSEED": salt}, capture_output=True)
        digests.append(_tree_digest(out))
    assert digests[0] == digests[1]
