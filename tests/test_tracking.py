from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from cxrpriv.tracking import hash_inputs, stage_run


def test_stage_run_records_params_metrics_tags_and_artifacts(tmp_path: Path, monkeypatch, isolated_mlflow):
    monkeypatch.setenv("CXRPRIV_PIPELINE_RUN", "pipe-123")
    data = tmp_path / "input.txt"
    data.write_text("x")
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"\x89PNG fake")
    with stage_run("synthesize", {"synthesize": {"seed": 3, "mix": {"a": 0.5}}}, "default", [data]) as run:
        run.log_metrics({"auc": 0.7, "nested": {"x": 1}, "label": "text is skipped"})
        run.log_artifact(plot, "plots")
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    (found,) = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    assert found.info.status == "FINISHED"
    assert found.data.params == {"synthesize.seed": "3", "synthesize.mix.a": "0.5"}
    assert found.data.metrics == {"auc": 0.7, "nested.x": 1.0}
    tags = found.data.tags
    assert tags["cxrpriv.stage"] == "synthesize"
    assert tags["cxrpriv.profile"] == "default"
    assert tags["cxrpriv.pipeline_run"] == "pipe-123"
    assert tags["cxrpriv.input_hash"] == hash_inputs([data])
    assert tags["mlflow.source.git.commit"]
    assert [a.path for a in client.list_artifacts(found.info.run_id, "plots")] == ["plots/plot.png"]


def test_failed_stage_marks_run_failed(isolated_mlflow):
    with pytest.raises(RuntimeError), stage_run("synthesize", {}, "default", input_hash="h"):
        raise RuntimeError("boom")
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    (found,) = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    assert found.info.status == "FAILED"


def test_input_hash_depends_on_content_not_location(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "sub" / "f.bin").write_bytes(b"same")
    assert hash_inputs([a]) == hash_inputs([b])
    (b / "sub" / "f.bin").write_bytes(b"changed")
    assert hash_inputs([a]) != hash_inputs([b])


def test_importing_the_library_does_not_touch_mlflow():
    code = "import sys, cxrpriv.tracking, cxrpriv.cli; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
