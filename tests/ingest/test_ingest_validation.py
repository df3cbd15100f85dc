"""Great Expectations on the manifest: passes on a good one, names what fails on a corrupted one."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from cxrpriv.ingest.stage import IngestResult
from cxrpriv.ingest.validation import ValidationFailed, validate_manifest


def test_a_good_manifest_passes(ingested: IngestResult):
    report = validate_manifest(ingested.manifest, ["PA", "AP"], 8)
    assert report["success"] and all(r["success"] for r in report["results"])


def test_a_corrupted_manifest_fails_naming_the_failing_expectations(ingested: IngestResult):
    bad = ingested.manifest.copy()
    bad.loc[0, "Effusion"] = 2
    bad.loc[1, "patient_id"] = "MRN 40338283"  # a raw identifier where a pseudonym belongs
    bad["PatientName"] = "DOE^JANE"
    with pytest.raises(ValidationFailed) as caught:
        validate_manifest(bad, ["PA", "AP"], 8)
    failing = caught.value.failing
    assert "manifest: schema: exactly the manifest columns" in failing
    assert "manifest: Effusion in {0, 1}" in failing
    assert "manifest: patient_id is a keyed pseudonym" in failing
    assert "manifest: schema: exactly the manifest columns" in str(caught.value)
    report_text = json.dumps(caught.value.report)
    assert "40338283" not in report_text and "DOE^JANE" not in report_text, "failures are counted, not quoted"


def test_a_patient_in_two_splits_fails(ingested: IngestResult):
    bad = ingested.manifest.copy()
    counts = bad["patient_id"].value_counts()
    patient = counts.index[0]
    assert counts.iloc[0] > 1
    rows = bad.index[bad["patient_id"] == patient]
    bad.loc[rows[0], "split"] = "train"
    bad.loc[rows[1], "split"] = "test"
    with pytest.raises(ValidationFailed, match="patient-disjoint"):
        validate_manifest(bad, ["PA", "AP"], 8)


def test_image_statistics_out_of_range_fail(ingested: IngestResult):
    bad = ingested.manifest.copy()
    bad["pixel_std"] = 0.0
    bad["age"] = pd.array([130] * len(bad), dtype="Int64")
    with pytest.raises(ValidationFailed) as caught:
        validate_manifest(bad, ["PA", "AP"], 8)
    assert any("pixel_std" in f for f in caught.value.failing) and any(
        "age" in f for f in caught.value.failing
    )
