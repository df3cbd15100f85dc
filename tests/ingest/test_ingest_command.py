"""`cxrpriv preprocess`: metrics, plots, an MLflow run without identifiers or the key, exit codes."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import mlflow
import pytest

from cxrpriv.cli import main
from cxrpriv.ingest.keys import KEY_ENV
from tests.conftest import PARAMS
from tests.ingest.conftest import TEST_KEY, Cohort, identifying_values


def run(cohort: Cohort, tmp_path: Path, *extra: str) -> int:
    """`cxrpriv preprocess` on the tiny cohort at the tiny settings, through the real CLI."""
    return main(
        [
            "preprocess",
            "--params",
            str(PARAMS),
            "--image-size",
            "64",
            "--workers",
            "1",
            "--shard-size",
            "8",
            "--source",
            str(cohort.dicom),
            "--labels",
            str(cohort.labels),
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            str(tmp_path / "metrics" / "preprocess.json"),
            "--plots",
            str(tmp_path / "plots"),
            "--no-progress",
            *extra,
        ]
    )


def latest_run(uri: str) -> mlflow.entities.Run:
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    return runs[0]


def test_a_run_writes_metrics_plots_and_an_mlflow_run_without_identifiers(
    tiny_cohort: Cohort,
    tmp_path: Path,
    isolated_mlflow: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(KEY_ENV, TEST_KEY.secret.decode())
    assert run(tiny_cohort, tmp_path) == 0
    metrics = json.loads((tmp_path / "metrics" / "preprocess.json").read_text())
    assert metrics["outcomes"]["rejected"] == 5 and metrics["key_source"] == "env"
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"outcomes.png", "intensity.png"}
    record = latest_run(isolated_mlflow)
    assert record.info.status == "FINISHED"
    assert (
        record.data.tags["cxrpriv.stage"] == "preprocess"
        and record.data.tags["cxrpriv.input_hash"] != "pending"
    )
    assert record.data.metrics["outcomes.ingested"] == metrics["outcomes"]["ingested"]
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    artifacts = {a.path for a in client.list_artifacts(record.info.run_id)}
    assert "validation.json" in artifacts
    logged = json.dumps([record.data.params, record.data.tags]) + "\n".join(
        r.getMessage() for r in caplog.records
    )
    assert not {v for v in identifying_values(tiny_cohort.dicom) if v in logged}
    assert TEST_KEY.secret.decode() not in logged


def test_without_a_key_the_stage_refuses(
    tiny_cohort: Cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(KEY_ENV, raising=False)
    assert run(tiny_cohort, tmp_path) == 2
    assert not (tmp_path / "out").exists()
    assert run(tiny_cohort, tmp_path, "--throwaway-key") == 0


def test_a_pseudonym_map_inside_the_output_is_refused(tiny_cohort: Cohort, tmp_path: Path):
    code = run(tiny_cohort, tmp_path, "--throwaway-key", "--pseudonym-map", str(tmp_path / "out" / "map.csv"))
    assert code == 2 and not (tmp_path / "out" / "map.csv").exists()


def test_a_failed_validation_stops_the_stage_and_is_logged(
    tiny_cohort: Cohort, tmp_path: Path, isolated_mlflow: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr("cxrpriv.ingest.validation.PIXEL_STD_RANGE", (0.9, 1.0))
    assert run(tiny_cohort, tmp_path, "--throwaway-key") == 1
    report = json.loads((tmp_path / "out" / "report" / "validation.json").read_text())
    assert not report["success"] and report["failing"] == ["manifest: pixel_std within (0.9, 1.0)"]
    assert not (tmp_path / "out" / "manifest.parquet").exists()
    assert not list((tmp_path / "out" / "images").glob("*.npy")), "a failed run leaves no shards behind"
    record = latest_run(isolated_mlflow)
    assert record.info.status == "FAILED"
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    assert "validation.json" in {a.path for a in client.list_artifacts(record.info.run_id)}
