"""Complete accounting of a folder source: every entry once in the report, links and special files
rejected with a reason, and the report written even when nothing can be ingested."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from cxrpriv.ingest import sources
from cxrpriv.ingest.sources import FolderSource, OutsideSourceError
from cxrpriv.ingest.stage import NOT_STORED, IngestResult
from cxrpriv.ingest.validation import ValidationFailed
from tests.ingest.conftest import Cohort, run_stage

PROBLEMS = {
    "loop_a": "symbolic link loop",
    "loop_b": "symbolic link loop",
    "self": "symbolic link loop",
    "dangling": "dangling symbolic link (no such target)",
    "outside": "symbolic link pointing outside the source folder",
    "outside_folder": "symbolic link pointing outside the source folder",
    "folder_link": "symbolic link to a folder (not followed)",
    "pipe": "not a regular file (FIFO)",
}


def hostile_entries(root: Path, elsewhere: Path) -> None:
    """Links and special files next to whatever ``root`` already holds."""
    elsewhere.mkdir(parents=True, exist_ok=True)
    (elsewhere / "secret.txt").write_text("a file outside the source")
    (root / "loop_a").symlink_to("loop_b")
    (root / "loop_b").symlink_to("loop_a")
    (root / "self").symlink_to("self")
    (root / "dangling").symlink_to("no-such-file")
    (root / "outside").symlink_to(elsewhere / "secret.txt")
    (root / "outside_folder").symlink_to(elsewhere)
    (root / "inner").mkdir(exist_ok=True)
    (root / "folder_link").symlink_to("inner")
    (root / "empty").mkdir()
    os.mkfifo(root / "pipe")


def test_every_entry_is_listed_once_with_its_problem(tmp_path: Path):
    root = tmp_path / "source"
    root.mkdir()
    (root / "a.dcm").write_bytes(b"x")
    hostile_entries(root, tmp_path / "elsewhere")
    (root / "inner" / "b.dcm").write_bytes(b"yy")
    (root / "inner" / "link_to_a").symlink_to("../a.dcm")  # a link to a file inside: read through it
    listed = list(FolderSource(root).list())
    paths = [f.path for f in listed]
    assert len(paths) == len(set(paths))
    assert sorted(paths) == sorted([*PROBLEMS, "a.dcm", "inner/b.dcm", "inner/link_to_a"])
    problems = {f.path: f.problem for f in listed if f.problem}
    assert problems == PROBLEMS
    by_path = {f.path: f for f in listed}
    assert by_path["inner/link_to_a"].size == 1 and by_path["inner/link_to_a"].problem is None
    assert FolderSource(root).read("inner/link_to_a") == b"x"
    with pytest.raises(OutsideSourceError):
        FolderSource(root).read("outside")  # a read checks again (a link can change after the listing)
    allowed = {f.path: f.problem for f in FolderSource(root, allow_external_links=True).list()}
    assert (
        allowed["outside"] is None and allowed["outside_folder"] == "symbolic link to a folder (not followed)"
    )


def test_a_folder_that_cannot_be_listed_is_an_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "source"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "x.dcm").write_bytes(b"x")
    real_scandir = os.scandir

    def scandir(path: object) -> object:
        if Path(str(path)).name == "locked":
            raise PermissionError("denied")
        return real_scandir(path)  # type: ignore[arg-type]

    monkeypatch.setattr(sources.os, "scandir", scandir)
    listed = list(FolderSource(root).list())
    assert [(f.path, f.problem) for f in listed] == [("locked", "folder cannot be listed (PermissionError)")]


def test_the_report_accounts_for_every_entry_of_a_hostile_folder(tiny_cohort: Cohort, tmp_path: Path):
    root = tmp_path / "source"
    shutil.copytree(tiny_cohort.dicom, root)
    hostile_entries(root, tmp_path / "elsewhere")
    first = sorted(p for p in root.rglob("*.dcm") if p.is_file() and not p.is_symlink())[0]
    (root / "inner" / first.name).symlink_to(first)  # same file name, same SOP Instance UID: a duplicate
    result = run_stage(root, tiny_cohort.labels, tmp_path / "out")
    report = result.files.set_index("path")
    listed = [f.path for f in FolderSource(root).list()]
    assert sorted(report.index) == sorted(listed) and report.index.is_unique
    assert len(report) == len(tiny_cohort.answer_key()) + len(PROBLEMS) + 1
    for path, problem in PROBLEMS.items():
        assert (report.loc[path, "outcome"], report.loc[path, "reason"]) == ("rejected", problem)
    assert report.loc[f"inner/{first.name}", "reason"].startswith("duplicate of an ingested image")
    assert "phi_blanked" in result.files.columns and (result.files["phi_blanked"] == 0).all()
    again = run_stage(root, tiny_cohort.labels, tmp_path / "out")
    assert sorted(again.files["path"]) == sorted(listed), "a re-run keeps one row per entry"


def test_the_report_is_written_when_no_file_can_be_ingested(tmp_path: Path, tiny_cohort: Cohort):
    root = tmp_path / "source"
    root.mkdir()
    (root / "notes.txt").write_text("not an image")
    hostile_entries(root, tmp_path / "elsewhere")
    with pytest.raises(ValidationFailed, match="at least one image"):
        run_stage(root, tiny_cohort.labels, tmp_path / "out")
    report = pd.read_parquet(tmp_path / "out" / "report" / "files.parquet")
    assert sorted(report["path"]) == sorted(["notes.txt", *PROBLEMS])
    assert (report["outcome"] == "rejected").all() and (report["reason"] != "").all()
    assert not (tmp_path / "out" / "manifest.parquet").exists()


def test_after_a_failed_validation_the_files_are_tried_again(
    tiny_cohort: Cohort, ingested: IngestResult, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("cxrpriv.ingest.validation.PIXEL_STD_RANGE", (0.9, 1.0))
    with pytest.raises(ValidationFailed):
        run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "out")
    report = pd.read_parquet(tmp_path / "out" / "report" / "files.parquet")
    assert len(report) == len(tiny_cohort.answer_key())
    assert (report["outcome"] != "ingested").all(), "nothing was stored"
    lost = int((report["reason"] == NOT_STORED).sum())
    assert lost == ingested.metrics["outcomes"]["ingested"]
    monkeypatch.undo()
    again = run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "out")
    assert again.metrics["files_processed"] == lost, "only the files not stored are tried again"
    assert again.metrics["outcomes"] == ingested.metrics["outcomes"]
