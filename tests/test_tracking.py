from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from cxrpriv.tracking import hash_inputs, stage_run


@pytest.mark.slow  # a fresh MLflow SQLite store: ~6 s
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


@pytest.mark.slow  # a fresh MLflow SQLite store: ~6 s
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


# Imports the modules one by one in a fresh interpreter; at the first import of mlflow, prints the import
# chain that led there and exits with status 3.
_FIND_MLFLOW_IMPORTER = """
import importlib, sys, traceback

class Spy:
    def find_spec(self, name, path=None, target=None):
        if name == "mlflow" and "mlflow" not in sys.modules:
            stack = [f for f in traceback.extract_stack() if "<frozen" not in f.filename]
            print("\\n".join(f"  {f.filename}:{f.lineno}" for f in stack[:-1]))
        return None

sys.meta_path.insert(0, Spy())
for name in sys.argv[1:]:
    print(name)
    importlib.import_module(name)
    if "mlflow" in sys.modules:
        raise SystemExit(3)
"""


def _stage_edge_modules() -> list[str]:
    """Every stage's command, run and stage module, the CLI, tracking and the KFP edge: what `cxrpriv --help`,
    a component or a library user imports before any run starts."""
    src = Path(__file__).resolve().parents[1] / "src"
    found = [p for name in ("command", "run", "stage") for p in sorted(src.glob(f"cxrpriv/*/{name}.py"))]
    modules = [".".join(p.relative_to(src).with_suffix("").parts) for p in found]
    return ["cxrpriv.tracking", "cxrpriv.pipeline_edge", "cxrpriv.stages.registry", "cxrpriv.cli", *modules]


@pytest.mark.slow
def test_importing_the_library_does_not_touch_mlflow():
    modules = _stage_edge_modules()
    assert {"cxrpriv.reid.stage", "cxrpriv.classify.command", "cxrpriv.synth.run"} <= set(modules)
    done = subprocess.run(
        [sys.executable, "-c", _FIND_MLFLOW_IMPORTER, *modules], capture_output=True, text=True
    )
    if done.returncode not in (0, 3):
        pytest.fail(f"import failed:\n{done.stdout}{done.stderr[-2000:]}")
    assert done.returncode == 0, f"mlflow imported while importing:\n{done.stdout}"
