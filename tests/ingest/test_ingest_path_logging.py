"""log_paths: keyed keeps source paths (which may carry patient names) out of the logs and the report; the
operator's path map, written apart, links the report's tags back to the paths."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from cxrpriv.dataset import DatasetError, open_dataset, read_files_report
from cxrpriv.ingest.sources import FolderSource
from cxrpriv.ingest.stage import StageError
from tests.ingest.conftest import TEST_KEY, Cohort, output_texts, run_stage, tiny_preprocess_config


@pytest.mark.parametrize("mode", ["relative", "keyed"])
def test_logs_name_files_as_configured(
    mode: str, tiny_cohort: Cohort, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cxrpriv.ingest")
    out = tmp_path / "out"
    run_stage(tiny_cohort.dicom, tiny_cohort.labels, out, config=tiny_preprocess_config(log_paths=mode))
    report = pd.read_parquet(out / "report" / "files.parquet")
    paths = [f.path for f in FolderSource(tiny_cohort.dicom).list()]
    not_ingested = report[report["outcome"] != "ingested"]
    assert len(not_ingested) > 0  # the tiny cohort has broken and burned-in files, which are logged
    text = caplog.text
    assert sorted(report["path_key"]) == sorted(TEST_KEY.path_tag(p) for p in paths)
    if mode == "keyed":
        assert (report["path"] == report["path_key"]).all(), "the report names files by their tags only"
        assert not any(path in text for path in paths)
        assert not any(Path(path).stem in text for path in paths)
        logged = set(re.findall(r"file:[0-9a-f]{16}", text))
        assert logged and logged <= set(not_ingested["path_key"])
    else:
        assert sorted(report["path"]) == sorted(paths)
        assert all(path in text for path in not_ingested["path"])


def test_a_keyed_report_links_back_only_through_the_path_map(tiny_cohort: Cohort, tmp_path: Path) -> None:
    out, path_map = tmp_path / "out", tmp_path / "apart" / "paths.csv"
    config = tiny_preprocess_config(log_paths="keyed")
    first = run_stage(tiny_cohort.dicom, tiny_cohort.labels, out, config=config, path_map=path_map)
    paths = [f.path for f in FolderSource(tiny_cohort.dicom).list()]
    assert not {name for text in output_texts(out).values() for name in paths if name in text}
    mapping = pd.read_csv(path_map, dtype=str)
    assert list(mapping.columns) == ["path_key", "path"] and sorted(mapping["path"]) == sorted(paths)
    with pytest.raises(DatasetError, match="paths are keyed"):
        open_dataset(out).files_report()
    report = read_files_report(out, path_map=path_map)
    assert sorted(report["path"]) == sorted(paths)
    relative = run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path / "relative")
    by_path = relative.files.set_index("path")["outcome"]
    assert (report.set_index("path")["outcome"] == by_path.loc[report["path"]].to_numpy()).all()
    # A re-run recognizes the files by their tags, and the report cannot switch to relative paths.
    again = run_stage(tiny_cohort.dicom, tiny_cohort.labels, out, config=config, path_map=path_map)
    assert again.metrics["files_processed"] == 0 and len(again.files) == len(first.files)
    with pytest.raises(StageError, match="log_paths=keyed"):
        run_stage(tiny_cohort.dicom, tiny_cohort.labels, out)
