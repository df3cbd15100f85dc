"""Ingest records keyed hashes (never the values) of the identifying values it removed, and of their tokens;
kept values are not among them; an incremental run adds to the earlier hashes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pydicom

from cxrpriv.dataset import PHI_HASHES_COLUMNS, phi_hashes_path
from cxrpriv.ingest.phi_hashes import TOKEN, VALUE, normalized_value, tokens, value_hash
from tests.ingest.conftest import TEST_KEY, identifying_values, output_texts, run_stage


def _stored(out: Path) -> set[tuple[str, str]]:
    frame = pd.read_parquet(phi_hashes_path(out))
    assert tuple(frame.columns) == PHI_HASHES_COLUMNS and not frame.duplicated().any()
    return set(zip(frame["kind"], frame["hash"], strict=True))


def test_tokens_and_values_are_normalized_as_the_audit_reads_them():
    assert tokens("DOE^JOHN  Q") == {"doe", "john"}
    assert tokens("O'Brien-Smith, Mary/Ann 12345 678") == {"brien", "smith", "mary", "ann", "12345"}
    assert normalized_value("  Okafor^Joseph ") == "okafor^joseph" and normalized_value("1") == ""
    assert normalized_value("1800.0") != normalized_value("18000")


def test_the_removed_identifying_values_are_stored_as_keyed_hashes_only(ingested, tiny_cohort):
    stored = _stored(ingested.out_dir)
    assert stored and {kind for kind, _ in stored} == {VALUE, TOKEN}
    ingested_paths = ingested.files.loc[ingested.files["outcome"] == "ingested", "path"]
    for path in sorted(ingested_paths)[:6]:
        ds = pydicom.dcmread(tiny_cohort.dicom / path, stop_before_pixels=True)
        for keyword in ("PatientID", "AccessionNumber", "InstitutionName", "PatientBirthDate"):
            value = normalized_value(str(ds.get(keyword, "") or ""))
            if value:
                assert (VALUE, value_hash(TEST_KEY, VALUE, value)) in stored, keyword
        for token in tokens(str(ds.PatientName)):
            assert (TOKEN, value_hash(TEST_KEY, TOKEN, token)) in stored
    # Kept values (the pseudonyms, the body part) are not hashed: the audit would flag every release.
    for pseudonym in ingested.manifest["patient_id"]:
        assert (VALUE, value_hash(TEST_KEY, VALUE, normalized_value(pseudonym))) not in stored
    assert (VALUE, value_hash(TEST_KEY, VALUE, "chest")) not in stored
    # Nothing un-keyed: no identifying value of any input appears in the stored table.
    text = output_texts(phi_hashes_path(ingested.out_dir).parent)[str(phi_hashes_path(ingested.out_dir))]
    assert not [v for v in identifying_values(tiny_cohort.dicom) if v in text]


def test_an_incremental_run_merges_the_earlier_hashes(tiny_cohort, ingested, tmp_path: Path):
    first = tmp_path / "first"
    files = sorted(p for p in tiny_cohort.dicom.rglob("*.dcm"))
    for path in files[: len(files) // 2]:
        target = first / path.relative_to(tiny_cohort.dicom)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    out = tmp_path / "out"
    run_stage(first, tiny_cohort.labels, out)
    before = _stored(out)
    run_stage(tiny_cohort.dicom, tiny_cohort.labels, out)
    after = _stored(out)
    assert before < after and after == _stored(ingested.out_dir)
