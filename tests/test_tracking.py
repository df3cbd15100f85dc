from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from cxrpriv import tracking
from cxrpriv.tracking import artifact_root, hash_inputs, stage_run, state_dir, tracking_uri


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


def _read_only(monkeypatch: pytest.MonkeyPatch, *folders: Path) -> None:
    """Make ``folders`` look unwritable to the tracking module (tests run as root, who can write anywhere)."""
    real = tracking.os.access
    blocked = {f.resolve() for f in folders}
    monkeypatch.setattr(
        tracking.os, "access", lambda p, mode: Path(p).resolve() not in blocked and real(p, mode)
    )


def test_tracking_uri_prefers_the_environment_then_a_writable_working_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri() == "http://mlflow.example:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(tmp_path)
    # the repository's store for `make pipeline` and DVC: ./mlflow.db
    assert tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_a_read_only_working_directory_falls_back_to_a_state_directory(tmp_path, monkeypatch, caplog):
    work, state = tmp_path / "app", tmp_path / "state"
    work.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(work)
    _read_only(monkeypatch, work)
    monkeypatch.setenv("CXRPRIV_STATE_DIR", str(state))
    with caplog.at_level("WARNING", logger="cxrpriv.tracking"):
        assert tracking_uri() == f"sqlite:///{state / 'mlflow.db'}"
    assert "not writable" in caplog.text and "MLFLOW_TRACKING_URI" in caplog.text


def test_state_directory_order(tmp_path, monkeypatch):
    monkeypatch.delenv("CXRPRIV_STATE_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "cxrpriv"
    # an unwritable XDG folder and home (a container's arbitrary uid): the temporary folder
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _read_only(monkeypatch, tmp_path / "xdg" / "cxrpriv", tmp_path / "home" / ".local" / "state" / "cxrpriv")
    assert state_dir().name == f"cxrpriv-{tracking.os.getuid()}"
    monkeypatch.setenv("CXRPRIV_STATE_DIR", str(tmp_path / "xdg" / "cxrpriv"))
    with pytest.raises(PermissionError, match="CXRPRIV_STATE_DIR"):
        state_dir()


def test_artifact_root_is_explicit_or_beside_the_database(tmp_path, monkeypatch):
    monkeypatch.delenv("CXRPRIV_ARTIFACT_ROOT", raising=False)
    assert (
        artifact_root(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
        == (tmp_path / "store" / "mlruns").as_uri()
    )
    assert artifact_root("http://mlflow.example:5000") is None  # the server's (proxied) artifact store
    monkeypatch.setenv("CXRPRIV_ARTIFACT_ROOT", "s3://bucket/mlflow")
    assert artifact_root(f"sqlite:///{tmp_path / 'mlflow.db'}") == "s3://bucket/mlflow"


@pytest.mark.slow  # a fresh MLflow SQLite store: ~6 s
def test_artifacts_go_beside_the_store_not_into_the_working_directory(tmp_path, monkeypatch):
    store, work = tmp_path / "store", tmp_path / "work"
    store.mkdir()
    work.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(work)
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"\x89PNG fake")
    with stage_run("synthesize", {}, "default", input_hash="h") as run:
        run.log_artifact(plot, "plots")
    experiment = mlflow.MlflowClient(tracking_uri=uri).get_experiment_by_name("cxr-privacy")
    assert experiment.artifact_location == f"{(store / 'mlruns').as_uri()}/cxr-privacy"
    assert list(store.glob("mlruns/cxr-privacy/*/artifacts/plots/plot.png"))
    assert not any(work.iterdir())


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
