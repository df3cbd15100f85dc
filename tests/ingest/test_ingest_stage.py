"""The preprocess stage end to end on the tiny cohort: outcomes, manifest, shards, privacy, re-runs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.ingest.shards import ShardReader
from cxrpriv.ingest.stage import IngestResult, StageError
from cxrpriv.ingest.validation import MANIFEST_COLUMNS
from tests.ingest.conftest import (
    EXPECTED_OUTCOME,
    OTHER_KEY,
    TEST_KEY,
    Cohort,
    identifying_values,
    output_texts,
    run_stage,
    tiny_preprocess_config,
)


def test_every_file_ends_in_the_outcome_the_answer_key_expects(ingested: IngestResult, tiny_cohort: Cohort):
    key = tiny_cohort.answer_key()
    files = ingested.files.set_index("path")
    assert sorted(files.index) == sorted(key["path"]), "every input file is in the report, and only those"
    expected = key.set_index("path")["expected"].map(EXPECTED_OUTCOME)
    mismatched = {p: (expected[p], files.loc[p, "outcome"], files.loc[p, "reason"]) for p in key["path"]}
    mismatched = {p: v for p, v in mismatched.items() if v[0] != v[1]}
    assert not mismatched
    assert (files["reason"] != "").sum() == (files["outcome"] != "ingested").sum(), (
        "every non-ingest has a reason"
    )
    # the cohort exercises what it should: quarantines with and without the header flag, rejections
    quarantined = files[files["outcome"] == "quarantined"]
    assert quarantined["reason"].str.contains("text detected").all()
    assert (~quarantined["header_flag"]).any() and quarantined["header_flag"].any()
    assert ingested.metrics["outcomes"]["rejected"] == 5


def test_manifest_rows_locate_their_images_and_headers(ingested: IngestResult):
    manifest = ingested.manifest
    assert list(manifest.columns) == list(MANIFEST_COLUMNS)
    reader = ShardReader(ingested.out_dir)
    assert len(reader) == len(manifest) == ingested.metrics["outcomes"]["ingested"]
    for row in range(len(reader)):
        image = reader[row]
        assert image.shape == (64, 64) and image.dtype == np.uint8
        assert abs(image.mean() / 255 - manifest["pixel_mean"].iloc[row]) < 0.01
        header = reader.header(row)
        ds = pydicom.Dataset.from_json(header)
        assert ds.PatientID == manifest["patient_id"].iloc[row] == str(ds.PatientName)
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.SOPInstanceUID.startswith("2.25.")
        assert "PixelData" not in ds
    assert reader.image(manifest["image_id"].iloc[0]).shape == (64, 64)
    assert set(manifest["split"]) <= {"train", "validation", "test"}
    assert manifest.groupby("patient_id")["split"].nunique().max() == 1


def test_patients_labels_and_ages_follow_the_inputs(ingested: IngestResult, tiny_cohort: Cohort):
    key = tiny_cohort.answer_key().merge(ingested.files[["path", "image_id"]], on="path")
    images = pd.read_parquet(tiny_cohort.root / "answer_key" / "images.parquet")
    joined = ingested.manifest.merge(key, on="image_id").merge(
        images, on="image_index", suffixes=("", "_true")
    )
    assert len(joined) == len(ingested.manifest)
    # one pseudonym per true patient and one true patient per pseudonym
    assert joined.groupby("patient_id")["patient_true"].nunique().max() == 1
    assert joined.groupby("patient_true")["patient_id"].nunique().max() == 1
    for finding in FINDINGS:
        assert (joined[finding] == joined[f"mined_{finding}"]).all(), finding
    assert (joined["age"] == joined["age_true"].astype(int)).all()
    assert (joined["sex"] == joined["sex_true"]).all()
    assert (joined["view"] == joined["view_true"]).all()
    # intervals between one patient's studies survive the date shift
    joined["date"] = pd.to_datetime(joined["study_date"])
    for _, group in joined.groupby("patient_true"):
        if len(group) > 1:
            shifted = (group["date"] - group["date"].min()).dt.days.to_numpy()
            true = np.round((group["years_since_first"] - group["years_since_first"].min()) * 365.25)
            assert np.abs(shifted - true.to_numpy()).max() <= 1


def test_no_identifying_value_reaches_any_output_file(ingested: IngestResult, tiny_cohort: Cohort):
    secrets = identifying_values(tiny_cohort.dicom)
    assert len(secrets) > 50, "the cohort's headers should be full of identifying values"
    leaks = {
        (name, value)
        for name, text in output_texts(ingested.out_dir).items()
        for value in secrets
        if value in text
    }
    assert not leaks


def test_logs_carry_no_identifying_value(
    tiny_cohort: Cohort, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "out")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "rejected" in text, "rejections are logged, by path and reason"
    assert not {v for v in identifying_values(tiny_cohort.dicom) if v in text}
    assert TEST_KEY.secret.decode() not in text


def test_same_key_same_outputs_another_key_other_pseudonyms(
    ingested: IngestResult, tiny_cohort: Cohort, tmp_path: Path
):
    again = run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "again")
    pd.testing.assert_frame_equal(ingested.manifest, again.manifest)
    for shard in sorted((ingested.out_dir / "images").glob("*.npy")):
        assert shard.read_bytes() == (tmp_path / "again" / "images" / shard.name).read_bytes()
    other = run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "other", key=OTHER_KEY)
    assert not set(other.manifest["patient_id"]) & set(ingested.manifest["patient_id"])
    assert not set(other.manifest["image_id"]) & set(ingested.manifest["image_id"])
    assert not set(other.manifest["study_date"].dropna()) >= set(ingested.manifest["study_date"].dropna())


def test_parallel_workers_write_the_same_dataset(ingested: IngestResult, tiny_cohort: Cohort, tmp_path: Path):
    parallel = run_stage(
        tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "p", config=tiny_preprocess_config(workers=2)
    )
    pd.testing.assert_frame_equal(ingested.manifest, parallel.manifest)
    for shard in sorted((ingested.out_dir / "images").glob("*.npy")):
        assert shard.read_bytes() == (tmp_path / "p" / "images" / shard.name).read_bytes()


def test_rerun_processes_only_new_files_and_keeps_splits(tiny_cohort: Cohort, tmp_path: Path):
    source = tmp_path / "source"
    shutil.copytree(tiny_cohort.dicom, source)
    files = sorted(p for p in source.rglob("*") if p.is_file())
    held_back = tmp_path / "held"
    later = files[::3]
    for path in later:
        target = held_back / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target)
    out = tmp_path / "out"
    first = run_stage(source, tiny_cohort.labels, out)
    assert first.metrics["files_processed"] == len(files) - len(later)
    first_shards = {p.name: p.read_bytes() for p in (out / "images").glob("*.npy")}

    unchanged = run_stage(source, tiny_cohort.labels, out)
    assert unchanged.metrics["files_processed"] == 0
    assert unchanged.metrics["files_skipped_unchanged"] == len(files) - len(later)

    shutil.copytree(held_back, source, dirs_exist_ok=True)
    second = run_stage(source, tiny_cohort.labels, out)
    assert second.metrics["files_processed"] == len(later)
    assert len(second.files) == len(files)
    assert second.metrics["run"] == 3
    # earlier shards untouched, new images in new shards, earlier patients in their earlier split
    for name, data in first_shards.items():
        assert (out / "images" / name).read_bytes() == data
    assert set(second.new_shards).isdisjoint(first_shards)
    before = first.manifest.set_index("image_id")["split"]
    after = second.manifest.set_index("image_id")["split"]
    assert (after.loc[before.index] == before).all()
    splits = second.manifest.groupby("patient_id")["split"].nunique()
    assert splits.max() == 1
    reader = ShardReader(out)
    assert all(reader[i].shape == (64, 64) for i in range(len(reader)))
    # the whole cohort in two runs gives the outcomes of one run
    key = tiny_cohort.answer_key().set_index("path")["expected"].map(EXPECTED_OUTCOME)
    assert (second.files.set_index("path")["outcome"] == key.loc[second.files["path"]].to_numpy()).all()


def test_an_output_made_with_another_key_is_refused(
    ingested: IngestResult, tiny_cohort: Cohort, tmp_path: Path
):
    out = tmp_path / "out"
    shutil.copytree(ingested.out_dir, out)
    with pytest.raises(StageError, match="different de-identification key"):
        run_stage(tiny_cohort.dicom, tiny_cohort.labels, out, key=OTHER_KEY)
    with pytest.raises(StageError, match="image_size"):
        run_stage(tiny_cohort.dicom, tiny_cohort.labels, out, config=tiny_preprocess_config(image_size=32))


def test_pseudonym_map_is_written_only_where_named(
    ingested: IngestResult, tiny_cohort: Cohort, tmp_path: Path
):
    mapping = tmp_path / "keep-apart" / "map.csv"
    result = run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "out", pseudonym_map=mapping)
    table = pd.read_csv(mapping, dtype=str)
    assert set(table["pseudonym"]) == set(result.manifest["patient_id"])
    originals = {
        str(pydicom.dcmread(p, stop_before_pixels=True).PatientID) for p in tiny_cohort.dicom.rglob("*.dcm")
    }
    assert set(table["original_patient_id"]) <= originals
    assert not any("original_patient_id" in t for t in output_texts(ingested.out_dir).values())


def test_the_validation_report_is_written(ingested: IngestResult):
    report = json.loads((ingested.out_dir / "report" / "validation.json").read_text())
    assert report["success"] and report["n_failed"] == 0 and report["n_expectations"] > 40


def test_the_chestxray14_png_layout_is_an_alternative_source(
    ingested: IngestResult, tiny_cohort: Cohort, tmp_path: Path
):
    from PIL import Image

    from cxrpriv.ingest.decode import decode_dicom
    from cxrpriv.ingest.normalize import standardize

    key = tiny_cohort.answer_key()
    png_dir = tmp_path / "images"
    png_dir.mkdir()
    rows = []
    for i, path in enumerate(key.loc[key["expected"] == "ingest", "path"].head(6)):
        ds = pydicom.dcmread(tiny_cohort.dicom / path)
        pixels = standardize(decode_dicom(ds, 384).pixels, "percentile", 0.5, 99.5)
        name = f"{int(ds.PatientID):08d}_{i:03d}.png"
        Image.fromarray((pixels * 255).astype(np.uint8)).save(png_dir / name)
        rows.append(
            {
                "Image Index": name,
                "Finding Labels": "Effusion|Mass" if i % 2 else "No Finding",
                "Patient ID": str(ds.PatientID),
                "Patient Age": 41,
                "Patient Gender": "F",
                "View Position": "AP",
            }
        )
    table = tmp_path / "Data_Entry_2017.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    result = run_stage(png_dir, table, tmp_path / "out")
    assert (result.files["outcome"] == "ingested").all()
    manifest = result.manifest
    assert (manifest["source_format"] == "png").all() and manifest["study_date"].isna().all()
    assert (
        (manifest["view"] == "AP").all() and (manifest["age"] == 41).all() and (manifest["sex"] == "F").all()
    )
    assert manifest["Effusion"].sum() == 3
    # the table's Patient ID gets the same keyed pseudonym as the same patient's DICOM header
    assert set(manifest["patient_id"]) <= set(ingested.manifest["patient_id"])
    assert ShardReader(result.out_dir).header(0) == {}


def test_blank_mode_cleans_the_configured_regions_instead_of_quarantining(
    ingested: IngestResult, tiny_cohort: Cohort, tmp_path: Path
):
    # The synthesizer burns text into the top-left, bottom-left or bottom-right quadrant.
    regions = {"top_left": [0.0, 0.0, 0.5, 0.5], "bottom": [0.5, 0.0, 1.0, 1.0]}
    config = tiny_preprocess_config(burned_in="blank", blank_regions=regions)
    result = run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "out", config=config)
    quarantined = set(ingested.files.loc[ingested.files["outcome"] == "quarantined", "path"])
    now = result.files.set_index("path").loc[sorted(quarantined)]
    assert (now["outcome"] == "ingested").all()
    reader = ShardReader(result.out_dir)
    for row in np.flatnonzero(result.manifest["image_id"].isin(now["image_id"])):
        header = pydicom.Dataset.from_json(reader.header(int(row)))
        assert "113101" in {item.CodeValue for item in header.DeidentificationMethodCodeSequence}
        assert header.BurnedInAnnotation == "NO"
        image = reader[int(row)]
        assert image[image.shape[0] // 2 + 2 :, :].max() == 0, "the blanked half is black"


def test_a_changed_file_replaces_its_row(tiny_cohort: Cohort, tmp_path: Path):
    source = tmp_path / "source"
    key = tiny_cohort.answer_key()
    chosen = key.loc[key["expected"] == "ingest", "path"].head(3).tolist()
    for path in chosen:
        (source / path).parent.mkdir(parents=True, exist_ok=True)
        (source / path).write_bytes((tiny_cohort.dicom / path).read_bytes())
    first = run_stage(source, tiny_cohort.labels, tmp_path / "out")
    ds = pydicom.dcmread(source / chosen[0])
    ds.StudyDescription = "XR CHEST PA (REPEAT EXPORT)"  # new bytes, same SOP Instance UID
    ds.save_as(source / chosen[0])
    second = run_stage(source, tiny_cohort.labels, tmp_path / "out")
    assert second.metrics["files_processed"] == 1 and second.metrics["outcomes_this_run"]["ingested"] == 1
    assert len(second.manifest) == len(first.manifest) == 3 and second.manifest["image_id"].is_unique
    image_id = first.files.set_index("path").loc[chosen[0], "image_id"]
    before = first.manifest.set_index("image_id").loc[image_id]
    after = second.manifest.set_index("image_id").loc[image_id]
    assert after["run"] == 2 and after["source_checksum"] != before["source_checksum"]
