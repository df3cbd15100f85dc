"""The release stage: what it writes (labels, splits, checksums, decision, report, manifest), the gate
(refusal; a forced release with its reason) and a blocked audit leaving no release marked complete; the CLI's
exit codes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cxrpriv.chestxray14 import DATA_ENTRY_COLUMNS
from cxrpriv.cli import main
from cxrpriv.dataset import open_dataset
from cxrpriv.evaluate.decision import DECISION_FILE, read_decision
from cxrpriv.release import (
    AUDIT_REPORT_FILE,
    BLOCKED,
    CHECKSUMS_FILE,
    COMPLETE,
    LABELS_FILE,
    RELEASE_MANIFEST_FILE,
    REPORT_DIR,
    SPLITS_DIR,
    ReleaseInputError,
    ReleaseRefused,
)
from cxrpriv.release.config import ReleaseConfig
from cxrpriv.release.stage import ReleaseRequest, release
from tests.ingest.conftest import OTHER_KEY, TEST_KEY
from tests.release.conftest import decision, do_release, source_headers


def test_the_release_writes_labels_splits_checksums_and_the_manifest(released, ingested_for_release):
    out, manifest = released.out, released.manifest
    rows = open_dataset(ingested_for_release.dataset).manifest
    assert manifest["status"] == COMPLETE and manifest["images"] == len(rows)
    assert manifest["method"] == "none" and manifest["forced"] is None
    assert manifest["audit"]["status"] == "pass" and manifest["decision"]["decision"] == "pass"
    assert json.loads((out / RELEASE_MANIFEST_FILE).read_text()) == manifest
    table = pd.read_csv(out / LABELS_FILE)
    assert tuple(table.columns) == DATA_ENTRY_COLUMNS and len(table) == len(rows)
    assert set(table["Patient ID"]) == set(rows["patient_id"])
    assert all((out / "dicom" / name).is_file() for name in table["Image Index"])
    listed = [line for p in sorted((out / SPLITS_DIR).glob("*_list.txt")) for line in p.read_text().split()]
    assert sorted(listed) == sorted(table["Image Index"])
    sums = dict(line.split("  ")[::-1] for line in (out / CHECKSUMS_FILE).read_text().splitlines())
    files = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert set(sums) == files - {CHECKSUMS_FILE, RELEASE_MANIFEST_FILE}
    for rel, digest in sums.items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest, rel
    assert read_decision(out / DECISION_FILE).passed


def test_a_failed_gate_is_refused_without_a_reason(ingested_for_release, tmp_path: Path):
    with pytest.raises(ReleaseRefused, match="force-release-reason"):
        do_release(ingested_for_release.dataset, tmp_path / "out", decision=decision(passed=False))
    assert not (tmp_path / "out").exists()


def test_a_forced_release_records_its_reason_and_copies_the_report(ingested_for_release, tmp_path: Path):
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.html").write_text("<html><body><h1>Privacy and utility</h1></body></html>\n")
    reason = "approved by the data protection board, minutes 2026-14"
    result = do_release(
        ingested_for_release.dataset,
        tmp_path / "out",
        decision=decision(passed=False),
        report=report,
        force_reason=reason,
    )
    assert result.status == COMPLETE and result.manifest["forced"] == {"reason": reason}
    assert result.manifest["decision"]["decision"] == "fail" and result.manifest["decision"]["reasons"]
    assert (result.out / REPORT_DIR / "report.html").is_file()


def test_a_blocked_audit_leaves_only_the_audit_report(released, ingested_for_release, tmp_path: Path):
    report = tmp_path / "report"
    report.mkdir()
    name = str(source_headers(ingested_for_release.cohort)[0].PatientName)
    (report / "notes.txt").write_text(f"reviewed with {name.replace('^', ' ')}\n")
    out = Path(shutil.copytree(released.out, tmp_path / "out"))  # an earlier complete release is replaced
    result = do_release(ingested_for_release.dataset, out, report=report)
    assert result.status == BLOCKED
    assert sorted(p.name for p in out.iterdir()) == [AUDIT_REPORT_FILE, RELEASE_MANIFEST_FILE]
    manifest = json.loads((out / RELEASE_MANIFEST_FILE).read_text())
    assert manifest["status"] == BLOCKED and manifest["audit"]["status"] == "blocked"
    audit = json.loads((out / AUDIT_REPORT_FILE).read_text())
    assert {f["file"] for f in audit["findings"]} == {f"{REPORT_DIR}/notes.txt"}
    text = (out / AUDIT_REPORT_FILE).read_text().casefold()
    assert all(part.casefold() not in text for part in name.split("^") if len(part) >= 3)
    assert not out.with_name(out.name + ".partial").exists()


def test_a_dataset_of_another_key_is_refused(ingested_for_release, tmp_path: Path):
    config = ReleaseConfig(
        text_min_glyphs=6, text_contrast=0.3, on_failed_gate="error", max_text_file_mib=64.0
    )
    with pytest.raises(ReleaseInputError, match="another de-identification key"):
        release(config, ReleaseRequest(ingested_for_release.dataset, decision()), OTHER_KEY, tmp_path / "o")


def test_the_cli_exit_codes(ingested_for_release, tmp_path: Path):
    key_file = tmp_path / "key"
    key_file.write_bytes(TEST_KEY.secret)
    failed = decision(passed=False).write(tmp_path / "failed" / DECISION_FILE)
    passed = decision().write(tmp_path / "passed" / DECISION_FILE)
    base = ["release", "--dataset", str(ingested_for_release.dataset), "--key-file", str(key_file)]
    paths = ["--out", str(tmp_path / "out"), "--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path)]
    error = ["--on-failed-gate", "error"]
    assert main([*base, "--decision", str(failed.parent), *paths, *error, "--no-progress"]) == 2
    assert not (tmp_path / "out").exists()
    # record (the pipeline's default): the refusal is the stage's outcome, and nothing is released
    assert (
        main([*base, "--decision", str(failed), *paths, "--on-failed-gate", "record", "--no-progress"]) == 0
    )
    assert [p.name for p in (tmp_path / "out").iterdir()] == [RELEASE_MANIFEST_FILE]
    refusal = json.loads((tmp_path / "out" / RELEASE_MANIFEST_FILE).read_text())
    assert refusal["status"] == "refused" and refusal["images"] == 0
    assert refusal["decision"]["reasons"] == decision(passed=False).reasons
    assert json.loads((tmp_path / "m.json").read_text())["complete"] == 0
    assert main([*base, "--decision", str(passed), *paths, "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["complete"] == 1 and metrics["audit_findings"] == 0 and metrics["forced"] == 0
    forced = ["--force-release-reason", "board approval"]
    assert main([*base, "--decision", str(failed), *paths, *forced, "--no-progress"]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["forced"] == 1
