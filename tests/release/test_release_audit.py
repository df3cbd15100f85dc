"""The leftover-PHI audit: planted identifying values in a header, a file name and a CSV cell, attributes
outside the allowlist, burned-in text and unreadable files are found, and the report never quotes them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom

from cxrpriv.dataset import open_dataset
from cxrpriv.ingest.phi_hashes import normalized_value, tokens
from cxrpriv.release import DICOM_DIR, LABELS_FILE
from cxrpriv.release.audit import (
    BURNED_IN,
    IDENTIFYING_TOKEN,
    IDENTIFYING_VALUE,
    NOT_ALLOWED,
    PRIVATE,
    UNREADABLE,
    Auditor,
    PhiIndex,
)
from cxrpriv.synth.dicom_writer import burn_in_text
from tests.ingest.conftest import TEST_KEY
from tests.release.conftest import release_config, source_headers


def _auditor(dataset: Path) -> Auditor:
    config = release_config()
    index = PhiIndex(TEST_KEY, open_dataset(dataset).phi_hashes())
    options = ("retain_long_modified_dates", "retain_patient_characteristics")
    return Auditor(index, options, config.text_min_glyphs, config.text_contrast, 2**20)


def _identity(ingested_for_release) -> pydicom.Dataset:
    return source_headers(ingested_for_release.cohort)[0]


def _findings(release: Path, dataset: Path) -> list[dict]:
    return _auditor(dataset).audit_directory(release).to_dict()["findings"]


def test_the_clean_release_passes(released):
    assert released.audit.passed and released.audit.images == released.manifest["images"]
    assert released.audit.strings > 100


def test_a_planted_identifying_value_in_a_header_is_found_and_not_quoted(release_copy, ingested_for_release):
    original = _identity(ingested_for_release)
    name = str(original.PatientName)
    path = sorted((release_copy / DICOM_DIR).glob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    ds.DerivationDescription = f"checked by {name.replace('^', ' ').title()}"  # reworded: tokens match
    ds.BodyPartExamined = str(original.AccessionNumber)[:16]  # an allowed attribute, an identifying value
    ds.InstitutionName = "Somewhere"  # not allowlisted
    ds.add_new(0x00091010, "LO", "vendor")  # private
    ds.save_as(path)
    findings = _findings(release_copy, ingested_for_release.dataset)
    mine = {(f["where"], f["kind"]) for f in findings if f["file"].endswith(path.name)}
    assert ("(0008,2111)", IDENTIFYING_TOKEN) in mine
    assert ("(0018,0015)", IDENTIFYING_VALUE) in mine
    assert ("(0008,0080)", NOT_ALLOWED) in mine and ("(0009,1010)", PRIVATE) in mine
    report = json.dumps(findings).casefold()
    assert (
        all(t not in report for t in tokens(name)) and str(original.AccessionNumber).casefold() not in report
    )


def test_a_name_in_a_file_name_is_found_and_the_file_named_by_a_keyed_tag(release_copy, ingested_for_release):
    family = str(_identity(ingested_for_release).PatientName).split("^")[0]
    path = sorted((release_copy / DICOM_DIR).glob("*.dcm"))[0]
    path.rename(path.with_name(f"{family}_{path.name}"))
    findings = _findings(release_copy, ingested_for_release.dataset)
    named = [f for f in findings if f["where"] == "file name"]
    assert named and {f["kind"] for f in named} == {IDENTIFYING_TOKEN}
    assert all(f["file"].startswith("file:") for f in named)
    assert family.casefold() not in json.dumps(findings).casefold()


def test_an_identifying_value_in_a_csv_cell_is_found(release_copy, ingested_for_release):
    patient_id = str(_identity(ingested_for_release).PatientID)
    table = pd.read_csv(release_copy / LABELS_FILE, dtype=str)
    table.loc[2, "Patient ID"] = patient_id
    table.to_csv(release_copy / LABELS_FILE, index=False)
    assert normalized_value(patient_id)  # long enough to be looked up
    findings = _findings(release_copy, ingested_for_release.dataset)
    assert {(f["file"], f["where"], f["kind"]) for f in findings} >= {
        (LABELS_FILE, "row 4 column 4", IDENTIFYING_VALUE)  # header row 1, data row 3
    }


def test_burned_in_text_and_unreadable_files_are_found(release_copy, ingested_for_release):
    path = sorted((release_copy / DICOM_DIR).glob("*.dcm"))[0]
    ds = pydicom.dcmread(path)
    rng = np.random.default_rng(0)
    background = np.clip(0.45 + 0.02 * rng.standard_normal((256, 256)), 0, 1)
    burned = burn_in_text(background, ["ROBINSON HELEN", "ID 91367866"], "top_left")
    pixels = np.rint(burned * 255).astype(np.uint8)
    ds.Rows = ds.Columns = 256
    ds.PixelData = pixels.tobytes()
    ds.save_as(path)
    (release_copy / "notes.bin").write_bytes(b"\x00\x01")
    findings = _findings(release_copy, ingested_for_release.dataset)
    kinds = {(f["file"], f["kind"]) for f in findings}
    assert (f"{DICOM_DIR}/{path.name}", BURNED_IN) in kinds and ("notes.bin", UNREADABLE) in kinds
