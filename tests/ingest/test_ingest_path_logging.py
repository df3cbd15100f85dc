"""log_paths: keyed keeps source paths (which may carry patient names) out of the logs."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pandas as pd
import pytest

from tests.ingest.conftest import TEST_KEY, Cohort, run_stage, tiny_preprocess_config


@pytest.mark.parametrize("mode", ["relative", "keyed"])
def test_logs_name_files_as_configured(
    mode: str, tiny_cohort: Cohort, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cxrpriv.ingest")
    out = tmp_path / "out"
    run_stage(tiny_cohort.dicom, tiny_cohort.labels, out, config=tiny_preprocess_config(log_paths=mode))
    report = pd.read_parquet(out / "report" / "files.parquet")
    not_ingested = report[report["outcome"] != "ingested"]
    assert len(not_ingested) > 0  # the tiny cohort has broken and burned-in files, which are logged
    text = caplog.text
    assert report["path_key"].tolist() == [TEST_KEY.path_tag(p) for p in report["path"]]
    if mode == "keyed":
        assert not any(path in text for path in report["path"])
        assert not any(Path(path).stem in text for path in report["path"])
        logged = set(re.findall(r"file:[0-9a-f]{16}", text))
        assert logged and logged <= set(not_ingested["path_key"])
    else:
        assert all(path in text for path in not_ingested["path"])
