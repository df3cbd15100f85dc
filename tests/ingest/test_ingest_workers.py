"""Crash-isolated workers: a worker that dies (SIGKILL as from the OOM killer, a segfault as from a codec)
costs only the file it held; the run goes on with a new worker and the report is complete.

The crash comes from the test, not from the product: ``process_file`` is replaced in the workers module
before the pool forks, so the workers inherit a version that kills itself on the chosen file names."""

from __future__ import annotations

import ctypes
import faulthandler
import logging
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from cxrpriv.ingest import workers
from cxrpriv.ingest.process import FileResult
from cxrpriv.ingest.sources import SourceFile
from cxrpriv.ingest.stage import IngestResult
from tests.ingest.conftest import TEST_KEY, Cohort, run_stage, tiny_preprocess_config


def segfault() -> None:
    """A real SIGSEGV, as a broken codec gives (without pytest's faulthandler dumping every thread)."""
    faulthandler.disable()
    ctypes.string_at(0)


CRASHES: dict[str, Callable[[], object]] = {
    "crash_sigkill.dcm": lambda: os.kill(os.getpid(), signal.SIGKILL),
    "crash_segfault.dcm": segfault,
    "crash_exit.dcm": lambda: os._exit(3),
}


def kill_workers_on_crash_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the workers die on the files named in CRASHES (only in this test's processes)."""
    real = workers.process_file

    def dying(ctx: workers.WorkerContext, item: SourceFile, deid: workers.Deidentifier) -> FileResult:
        crash = CRASHES.get(Path(item.path).name)
        if crash is not None:
            crash()
        return real(ctx, item, deid)

    monkeypatch.setattr(workers, "process_file", dying)


@pytest.mark.parametrize("n_workers", [1, 2])
def test_a_dying_worker_costs_only_its_file(
    n_workers: int,
    tiny_cohort: Cohort,
    ingested: IngestResult,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO)
    source = tmp_path / "source"
    shutil.copytree(tiny_cohort.dicom, source)
    any_file = next(source.rglob("*.dcm"))
    for name in CRASHES:  # among the others, in the listing's middle: files are queued behind them
        shutil.copy(any_file, source / any_file.parent.relative_to(source) / name)
    kill_workers_on_crash_files(monkeypatch)
    config = tiny_preprocess_config(workers=n_workers)
    result = run_stage(source, tiny_cohort.labels, tmp_path / "out", config=config)

    report = result.files.set_index("path")
    crashed = report[report.index.map(lambda p: Path(p).name in CRASHES)]
    assert len(crashed) == len(CRASHES) and (crashed["outcome"] == "rejected").all()
    assert set(crashed["reason"]) == {
        "worker died (SIGKILL)",
        "worker died (SIGSEGV)",
        "worker died (exit code 3)",
    }
    # Every other file as without the crashes: same outcomes, same manifest, same images.
    others = report.drop(crashed.index)
    expected = ingested.files.set_index("path")
    assert sorted(others.index) == sorted(expected.index)
    pd.testing.assert_series_equal(others["outcome"].sort_index(), expected["outcome"].sort_index())
    pd.testing.assert_frame_equal(result.manifest, ingested.manifest)
    assert result.metrics["reasons"]["rejected"]["worker died SIGKILL"] == 1
    # The deaths are logged by the parent, as every rejection; worker records are forwarded to it.
    assert caplog.text.count("worker died") >= len(CRASHES)
    # A death may have been the machine's, not the file's: the next run tries those files again.
    again = run_stage(source, tiny_cohort.labels, tmp_path / "out", config=config)
    assert again.metrics["files_processed"] == len(CRASHES)


def test_workers_forward_their_log_records(
    tiny_cohort: Cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    def noisy(ctx: workers.WorkerContext, item: SourceFile, deid: workers.Deidentifier) -> FileResult:
        logging.getLogger("cxrpriv.ingest.process").warning("worker %d says hello", os.getpid())
        return FileResult(item.path, item.size, item.fingerprint, reason="test")

    monkeypatch.setattr(workers, "process_file", noisy)
    caplog.set_level(logging.WARNING, logger="cxrpriv.ingest.process")
    items = [SourceFile(f"f{i}.dcm", 0, "") for i in range(20)]
    ctx = workers.WorkerContext(None, tiny_preprocess_config(), TEST_KEY)  # type: ignore[arg-type]
    results = list(workers.ordered_results(items, ctx, 3))
    assert [r.path for r in results] == [i.path for i in items], "results come back in input order"
    said = [r for r in caplog.records if "says hello" in r.getMessage()]
    assert len(said) == 20 and str(os.getpid()) not in {r.getMessage().split()[1] for r in said}
