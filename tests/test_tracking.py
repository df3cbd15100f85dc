from __future__ import annotations

import shutil
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
    with stage_run(
        "synthesize", {"synthesize": {"seed": 3, "mix": {"a": 0.5}}}, "default", inputs=[data]
    ) as run:
        run.log_metrics({"auc": 0.7, "nested": {"x": 1}, "label": "text is skipped"})
        run.log_artifact(plot, "plots")
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    (found,) = client.search_runs(
        [client.get_experiment_by_name("cxr-privacy").experiment_id], "tags.`cxrpriv.stage` = 'synthesize'"
    )
    assert found.info.status == "FINISHED"
    assert found.info.run_name == "pipe-123/synthesize"
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


# --- a pipeline execution: one parent run, stage runs nested under it -----------------------------------


def _runs(uri: str) -> list:
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("cxr-privacy")
    return client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])


@pytest.mark.slow  # a fresh MLflow SQLite store: ~6 s
def test_stage_runs_of_one_execution_nest_under_one_parent_with_the_headline(monkeypatch, isolated_mlflow):
    monkeypatch.setenv("CXRPRIV_PIPELINE_RUN", "pipe-7")
    with stage_run("priors", {}, "default", input_hash="a"):
        pass
    with stage_run("evaluate", {}, "default", input_hash="b") as run:
        assert run.log_to_pipeline({"headline.attacker_auc_mean": 0.61}, {"cxrpriv.release_decision": "pass"})
    monkeypatch.setenv("CXRPRIV_PIPELINE_RUN", "pipe-8")  # another execution: its own parent
    with stage_run("priors", {}, "default", input_hash="a"):
        pass
    runs = _runs(isolated_mlflow)
    parents = [r for r in runs if r.data.tags.get("cxrpriv.run_role") == "pipeline"]
    assert sorted(p.info.run_name for p in parents) == ["pipe-7", "pipe-8"]
    (parent,) = [p for p in parents if p.info.run_name == "pipe-7"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(c.info.run_name for c in children) == ["pipe-7/evaluate", "pipe-7/priors"]
    assert parent.data.metrics == {"headline.attacker_auc_mean": 0.61}
    assert parent.data.tags["cxrpriv.release_decision"] == "pass"
    assert parent.info.status == "FINISHED"


@pytest.mark.slow  # a fresh MLflow SQLite store: ~6 s
def test_parents_created_by_a_race_are_folded_into_the_earliest(monkeypatch, isolated_mlflow):
    """Two pods that both found no parent both create one: the next stage run keeps the earliest, moves the
    other's children under it and deletes it."""
    monkeypatch.setenv("CXRPRIV_PIPELINE_RUN", "pipe-race")
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    with stage_run("synthesize", {}, "default", input_hash="a"):
        pass  # creates the experiment and the first parent
    experiment_id = client.get_experiment_by_name("cxr-privacy").experiment_id
    (first,) = [r for r in _runs(isolated_mlflow) if r.data.tags.get("cxrpriv.run_role") == "pipeline"]
    tags = {"cxrpriv.pipeline_run": "pipe-race", "cxrpriv.run_role": "pipeline"}
    loser = client.create_run(experiment_id, run_name="pipe-race", tags=tags)
    orphan = client.create_run(experiment_id, tags={"mlflow.parentRunId": loser.info.run_id})
    client.set_terminated(orphan.info.run_id)
    with stage_run("preprocess", {}, "default", input_hash="b"):
        pass
    live = [r for r in _runs(isolated_mlflow) if r.data.tags.get("cxrpriv.run_role") == "pipeline"]
    assert [r.info.run_id for r in live] == [first.info.run_id]
    assert client.get_run(loser.info.run_id).info.lifecycle_stage == "deleted"
    assert client.get_run(orphan.info.run_id).data.tags["mlflow.parentRunId"] == first.info.run_id
    children = [
        r for r in _runs(isolated_mlflow) if r.data.tags.get("mlflow.parentRunId") == first.info.run_id
    ]
    assert len(children) == 3  # synthesize, the orphan, preprocess


@pytest.mark.slow  # a fresh MLflow SQLite store: ~6 s
def test_a_single_cli_call_has_no_parent_and_logs_datasets_with_digests(
    tmp_path, monkeypatch, isolated_mlflow
):
    from cxrpriv.dataset import dataset_digest

    monkeypatch.delenv("CXRPRIV_PIPELINE_RUN", raising=False)
    dataset = tmp_path / "ingest"
    dataset.mkdir()
    (dataset / "manifest.parquet").write_bytes(b"manifest bytes")
    (dataset / "state.json").write_text("{}")
    with stage_run("train_reid", {}, "default", input_hash="a") as run:
        run.log_dataset("ingested", dataset, dataset_digest(dataset))
        assert not run.log_to_pipeline({"headline.x": 1.0}, {})
    (found,) = _runs(isolated_mlflow)
    assert found.info.run_name == "train_reid"
    assert "mlflow.parentRunId" not in found.data.tags
    (logged,) = found.inputs.dataset_inputs
    assert logged.dataset.name == "ingested"
    assert logged.dataset.digest == dataset_digest(dataset)
    # the digest follows the content (an anonymized copy differs in its state), not the location
    moved = Path(shutil.copytree(dataset, tmp_path / "moved"))
    assert dataset_digest(moved) == logged.dataset.digest
    (moved / "state.json").write_text('{"anonymizer": {}}')
    assert dataset_digest(moved) != logged.dataset.digest


def test_a_pipeline_run_name_with_a_quote_is_refused(monkeypatch):
    from cxrpriv.tracking import _filter_value

    with pytest.raises(ValueError, match="CXRPRIV_PIPELINE_RUN"):
        _filter_value("a' or '1", "CXRPRIV_PIPELINE_RUN")
