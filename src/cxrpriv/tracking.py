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


def _use_experiment(mlflow_module: Any, uri: str, name: str) -> None:
    """Make ``name`` the active experiment, creating it at ``<artifact_root>/<name>`` (:func:`artifact_root`)
    if it is new (an existing experiment keeps its location: MLflow cannot move one)."""
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
    mlflow_module.set_experiment(name)


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


class StageRun:
    """A handle for logging into the active stage run."""

    def __init__(self, mlflow_module: Any) -> None:
        self._mlflow = mlflow_module

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in flatten("", metrics).items() if isinstance(v, int | float)}
        self._mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        self._mlflow.log_dict(dict(data), name)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._mlflow.set_tags(dict(tags))


@contextlib.contextmanager
def stage_run(
    stage: str,
    params: Mapping[str, Any],
    profile: str,
    inputs: Iterable[Path] = (),
    input_hash: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Open an MLflow run for one stage execution and close it (FAILED on an exception); ``tags`` are
    set on it besides the standard ones."""
    import mlflow  # imported here: importing the library must not touch MLflow

    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    _use_experiment(mlflow, uri, EXPERIMENT)
    pipeline_run = os.environ.get(PIPELINE_RUN_ENV) or f"standalone-{uuid.uuid4().hex[:12]}"
    run_tags = {
        "cxrpriv.stage": stage,
        "cxrpriv.profile": profile,
        "cxrpriv.pipeline_run": pipeline_run,
        "cxrpriv.input_hash": input_hash or hash_inputs(inputs),
        "mlflow.source.git.commit": git_commit(),
        **(tags or {}),
    }
    with mlflow.start_run(run_name=f"{stage}", tags=run_tags):
        mlflow.log_params({k: _param_value(v) for k, v in flatten("", params).items()})
        yield StageRun(mlflow)


def _param_value(value: Any) -> str:
    # MLflow caps a param value at 6,000 characters; ours are short scalars, but be safe.
    return str(value)[:6000]


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
