"""One MLflow run per stage execution: params, metrics, artifacts and grouping tags.

Nothing happens at import time. Where runs go (:func:`tracking_uri`): ``MLFLOW_TRACKING_URI`` when set (a
server, on a cluster); else a SQLite store in the working directory (``./mlflow.db``, the MLflow 3 default and
what ``make pipeline`` uses in the repository) when that directory is writable; else one in a state directory
that is (:func:`state_dir`; a container whose working directory is read-only), with a warning. A new
experiment's artifacts go under ``CXRPRIV_ARTIFACT_ROOT`` when set (``s3://bucket/mlflow``: locations that
depend on no machine's paths), else, for a SQLite store, under ``mlruns/`` beside the database file (never
the working directory: a store is one folder), else where the tracking server says (proxied
``mlflow-artifacts:`` URIs). Stage runs of one pipeline execution share the tag ``cxrpriv.pipeline_run``
(from ``CXRPRIV_PIPELINE_RUN``; DVC and KFP set it), so the MLflow UI can filter and compare whole pipeline
runs.

A pipeline execution (``CXRPRIV_PIPELINE_RUN`` set) also has one **parent run**, named after it and tagged
``cxrpriv.run_role=pipeline``; every stage run is nested under it (``mlflow.parentRunId``) and named
``<pipeline run>/<stage>``. The first stage run of the execution creates the parent; parallel KFP pods can
race there, so every stage run resolves the parent by the same rule (:func:`pipeline_parent`): look it up by
tag, create it if there is none, look again, and keep the earliest (start time, then run ID); any other
parent (a race's loser) has its children moved to the earliest and is deleted. Every later stage repeats
that merge, so once the parallel first stages have started there is exactly one parent, and the evaluate
and release stages log the headline numbers on it. Without ``CXRPRIV_PIPELINE_RUN`` (one CLI call) there is
no parent.

Inputs are logged with :meth:`StageRun.log_dataset` (``mlflow.log_input``: a dataset named by its role,
never by anything from a patient, with a content digest) and :meth:`StageRun.log_model_input` (a model's
digest as a tag); a stage's own output digest is tagged ``cxrpriv.output_digest``. Registered model versions
carry the same model digest, which is how the release stage finds the versions that made a release
(:func:`cxrpriv.training.registry.alias_released_models`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

EXPERIMENT = os.environ.get("CXRPRIV_EXPERIMENT", "cxr-privacy")
PIPELINE_RUN_ENV = "CXRPRIV_PIPELINE_RUN"
STATE_DIR_ENV = "CXRPRIV_STATE_DIR"
ARTIFACT_ROOT_ENV = "CXRPRIV_ARTIFACT_ROOT"
PIPELINE_RUN_TAG = "cxrpriv.pipeline_run"
ROLE_TAG = "cxrpriv.run_role"
PIPELINE_ROLE = "pipeline"
PARENT_TAG = "mlflow.parentRunId"
OUTPUT_DIGEST_TAG = "cxrpriv.output_digest"
MODEL_INPUT_TAG = "cxrpriv.model.{kind}"

log = logging.getLogger(__name__)


def _writable_dir(path: Path) -> bool:
    """``path`` is (or can be made) a directory this process can write into."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK | os.X_OK)


def state_dir() -> Path:
    """Where the library keeps state when the working directory is not writable: ``CXRPRIV_STATE_DIR``, else
    ``$XDG_STATE_HOME/cxrpriv``, else ``~/.local/state/cxrpriv``, else ``<tmp>/cxrpriv-<uid>``: the first that
    is writable. ``CXRPRIV_STATE_DIR`` is used as given (an error names it if it cannot be written)."""
    if explicit := os.environ.get(STATE_DIR_ENV):
        path = Path(explicit).expanduser()
        if not _writable_dir(path):
            raise PermissionError(f"{STATE_DIR_ENV}={explicit}: not a writable directory")
        return path
    candidates = []
    if xdg := os.environ.get("XDG_STATE_HOME"):
        candidates.append(Path(xdg) / "cxrpriv")
    with contextlib.suppress(RuntimeError):  # no home directory for this uid
        candidates.append(Path.home() / ".local" / "state" / "cxrpriv")
    candidates.append(Path(tempfile.gettempdir()) / f"cxrpriv-{os.getuid()}")
    for path in candidates:
        if _writable_dir(path):
            return path
    raise PermissionError(
        f"no writable state directory (tried {', '.join(map(str, candidates))}); set "
        f"MLFLOW_TRACKING_URI or {STATE_DIR_ENV}"
    )


def tracking_uri() -> str:
    """The MLflow tracking URI stage runs log to (see the module docstring)."""
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    cwd = Path.cwd()
    if os.access(cwd, os.W_OK | os.X_OK):
        return f"sqlite:///{cwd / 'mlflow.db'}"
    store = state_dir() / "mlflow.db"
    log.warning(
        "MLFLOW_TRACKING_URI is not set and the working directory %s is not writable: logging runs to %s; "
        "set MLFLOW_TRACKING_URI (a tracking server) to keep them",
        cwd,
        store,
    )
    return f"sqlite:///{store}"


def artifact_root(uri: str) -> str | None:
    """Where a new experiment's artifacts go under tracking URI ``uri``: ``CXRPRIV_ARTIFACT_ROOT``, else
    ``<database folder>/mlruns`` for a SQLite store, else ``None`` (the tracking server's default)."""
    if root := os.environ.get(ARTIFACT_ROOT_ENV):
        return root
    if uri.startswith("sqlite:///"):
        database = uri.removeprefix("sqlite:///").split("?", 1)[0]
        if database and database != ":memory:":
            return (Path(database).resolve().parent / "mlruns").as_uri()
    return None


def _use_experiment(mlflow_module: Any, uri: str, name: str) -> str:
    """Make ``name`` the active experiment, creating it at ``<artifact_root>/<name>`` (:func:`artifact_root`)
    if it is new (an existing experiment keeps its location: MLflow cannot move one); returns its id."""
    client = mlflow_module.MlflowClient(tracking_uri=uri)
    if client.get_experiment_by_name(name) is None:
        try:
            root = artifact_root(uri)
            location = f"{root.rstrip('/')}/{name}" if root else None
            client.create_experiment(name, artifact_location=location)
        except mlflow_module.exceptions.MlflowException:
            # Created meanwhile by a concurrent stage: use that one.
            if client.get_experiment_by_name(name) is None:
                raise
    return mlflow_module.set_experiment(name).experiment_id


def git_commit() -> str:
    """The commit the code runs from: ``CXRPRIV_GIT_COMMIT`` (set in the image) or ``git rev-parse``."""
    if commit := os.environ.get("CXRPRIV_GIT_COMMIT"):
        return commit
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def hash_inputs(paths: Iterable[Path]) -> str:
    """A content hash over files (directories walked in sorted order); names enter as relative paths only."""
    digest = hashlib.sha256()
    for root in sorted(Path(p) for p in paths):
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        for file in files:
            rel = file.relative_to(root) if root.is_dir() else Path(file.name)
            digest.update(str(rel).encode())
            with file.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def flatten(prefix: str, values: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten(name, value))
        else:
            flat[name] = value
    return flat


def file_digest(path: Path) -> str:
    """The content digest of one file, whatever its name (a decision, priors.json)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


class StageRun:
    """A handle for logging into the active stage run (and, for headline numbers, its pipeline's parent)."""

    def __init__(self, mlflow_module: Any, parent_run_id: str | None = None) -> None:
        self._mlflow = mlflow_module
        self.parent_run_id = parent_run_id

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._mlflow.log_metrics(_numbers(metrics), step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        self._mlflow.log_dict(dict(data), name)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._mlflow.set_tags(dict(tags))

    def log_dataset(self, name: str, path: Path, digest: str, context: str = "input") -> None:
        """``mlflow.log_input`` of the data at ``path`` under ``name`` (a role such as "ingested", never a
        patient's anything) with its content ``digest``; the source is ``path`` as given (relative under
        DVC), so the record does not depend on where the repository lies."""
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        source = resolve_dataset_source(str(path))
        # MetaDataset is concrete (MLflow's Dataset is no ABC), though it leaves Dataset.profile undefined.
        dataset = MetaDataset(source, name=name, digest=digest)  # type: ignore[abstract]
        self._mlflow.log_input(dataset, context=context)

    def set_output_digest(self, digest: str) -> None:
        """Tag the run with its output's content digest (``cxrpriv.output_digest``), by which a later stage
        finds the run that made its input (:func:`models_behind`)."""
        self.set_tags({OUTPUT_DIGEST_TAG: digest})

    def log_model_input(self, kind: str, digest: str) -> None:
        """Record that this run used the trained ``kind`` model ("verifier", ...) whose files have
        ``digest`` (:func:`cxrpriv.training.artifacts.model_digest`), as tag ``cxrpriv.model.<kind>``."""
        self.set_tags({MODEL_INPUT_TAG.format(kind=kind): digest})

    def log_to_pipeline(self, metrics: Mapping[str, float], tags: Mapping[str, str]) -> bool:
        """Log headline ``metrics`` and ``tags`` on the pipeline execution's parent run; False (nothing
        logged) without one (a single CLI call)."""
        if self.parent_run_id is None:
            return False
        client = self._mlflow.MlflowClient()
        for key, value in _numbers(metrics).items():
            client.log_metric(self.parent_run_id, key, value)
        for key, tag in tags.items():
            client.set_tag(self.parent_run_id, key, str(tag))
        return True


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in flatten("", metrics).items() if isinstance(v, int | float)}


def _filter_value(value: str, what: str) -> str:
    # MLflow's filter strings have no escape for a quote inside a value.
    if "'" in value or "\\" in value:
        raise ValueError(f"{what} {value!r}: must not contain quotes or backslashes")
    return value


def _pipeline_parents(client: Any, experiment_id: str, pipeline_run: str) -> list[Any]:
    """Every parent run (deleted ones too) of ``pipeline_run``, earliest first (start time, run ID)."""
    from mlflow.entities import ViewType

    value = _filter_value(pipeline_run, PIPELINE_RUN_ENV)
    runs = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{value}' and tags.`{ROLE_TAG}` = '{PIPELINE_ROLE}'",
        run_view_type=ViewType.ALL,
    )
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def pipeline_parent(client: Any, experiment_id: str, pipeline_run: str) -> str:
    """The run ID of ``pipeline_run``'s parent run, created if there is none (see the module docstring:
    look up, create, look again, keep the earliest live one, fold any other into it)."""
    parents = _pipeline_parents(client, experiment_id, pipeline_run)
    if not any(r.info.lifecycle_stage == "active" for r in parents):
        client.create_run(
            experiment_id,
            run_name=pipeline_run,
            tags={
                PIPELINE_RUN_TAG: pipeline_run,
                ROLE_TAG: PIPELINE_ROLE,
                "mlflow.source.git.commit": git_commit(),
            },
        )
        parents = _pipeline_parents(client, experiment_id, pipeline_run)
    keep = next(r for r in parents if r.info.lifecycle_stage == "active")
    for other in parents:
        if other.info.run_id != keep.info.run_id:
            _fold_parent(client, experiment_id, other, keep.info.run_id)
    return keep.info.run_id


def _fold_parent(client: Any, experiment_id: str, loser: Any, winner_id: str) -> None:
    """Move ``loser``'s children under ``winner_id`` and delete ``loser`` (idempotent: a deleted loser is
    looked at again, so that a child nested under it in the instant of a fold is moved by a later stage)."""
    children = client.search_runs(
        [experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{loser.info.run_id}'"
    )
    for child in children:
        client.set_tag(child.info.run_id, PARENT_TAG, winner_id)
    if loser.info.lifecycle_stage == "active":
        log.info(
            "pipeline run %s: folded a concurrently created parent run into %s",
            loser.info.run_name,
            winner_id,
        )
        client.delete_run(loser.info.run_id)


@contextlib.contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any],
    profile: str,
    *,
    inputs: Iterable[Path] = (),
    input_hash: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Open an MLflow run for one stage execution and close it (FAILED on an exception); ``tags`` are
    set on it besides the standard ones. Within a pipeline execution (``CXRPRIV_PIPELINE_RUN``) the run
    is named ``<pipeline run>/<stage>`` and nested under the execution's parent run."""
    import mlflow  # imported here: importing the library must not touch MLflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    experiment_id = _use_experiment(mlflow, uri, EXPERIMENT)
    execution = os.environ.get(PIPELINE_RUN_ENV)
    pipeline_run = execution or f"standalone-{uuid.uuid4().hex[:12]}"
    run_tags = {
        "cxrpriv.stage": stage,
        "cxrpriv.profile": profile,
        PIPELINE_RUN_TAG: pipeline_run,
        "cxrpriv.input_hash": input_hash or hash_inputs(inputs),
        "mlflow.source.git.commit": git_commit(),
        **(tags or {}),
    }
    parent_id = None
    client = mlflow.MlflowClient(tracking_uri=uri)
    if execution:
        parent_id = pipeline_parent(client, experiment_id, execution)
        client.update_run(parent_id, status="RUNNING")
    name = f"{execution}/{stage}" if execution else stage
    status = "FAILED"
    try:
        with mlflow.start_run(run_name=name, tags=run_tags, parent_run_id=parent_id):
            mlflow.log_params({k: _param_value(v) for k, v in flatten("", params).items()})
            yield StageRun(mlflow, parent_id)
        status = "FINISHED"
    finally:
        if parent_id is not None:
            # The parent's status and end time follow its latest stage run.
            client.set_terminated(parent_id, status)


def _param_value(value: Any) -> str:
    # MLflow caps a param value at 6,000 characters; ours are short scalars, but be safe.
    return str(value)[:6000]


def models_behind(output_digests: Iterable[str]) -> dict[str, str]:
    """Kind -> digest of the models recorded (:meth:`StageRun.log_model_input`) by the newest finished run
    of each stage whose output had one of ``output_digests`` (``cxrpriv.output_digest``): the models that
    made an anonymized dataset and a release decision, however long ago those stages ran (a cached DVC or
    KFP stage logs no new run)."""
    import mlflow
    from mlflow.entities import ViewType

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return {}
    prefix = MODEL_INPUT_TAG.format(kind="")
    models: dict[str, str] = {}
    for digest in output_digests:
        value = _filter_value(digest, "digest")
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{OUTPUT_DIGEST_TAG}` = '{value}' and attributes.status = 'FINISHED'",
            run_view_type=ViewType.ACTIVE_ONLY,
            order_by=["attributes.start_time DESC"],
        )
        for run in runs[:1]:
            for key, model in run.data.tags.items():
                if key.startswith(prefix):
                    models.setdefault(key.removeprefix(prefix), model)
    return models


def tag_pipeline_runs(tags: Mapping[str, str]) -> int:
    """Set ``tags`` on every run of the current pipeline run (the ``cxrpriv.pipeline_run`` tag of the active
    run), so the release decision shows on each stage's run in the MLflow UI; returns how many were tagged."""
    import mlflow

    active = mlflow.active_run()
    if active is None:
        return 0
    pipeline_run = active.data.tags.get("cxrpriv.pipeline_run")
    client = mlflow.tracking.MlflowClient()
    runs = client.search_runs(
        [active.info.experiment_id], filter_string=f"tags.`cxrpriv.pipeline_run` = '{pipeline_run}'"
    )
    for run in runs:
        for key, value in tags.items():
            client.set_tag(run.info.run_id, key, value)
    return len(runs)
