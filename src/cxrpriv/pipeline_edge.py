"""What every KFP component does around its stage call: build the typed config and the stage context, tag
the run, log metrics.

Components are lightweight functions whose bodies are shipped to the cluster as source, so they can share
code only through the library: this module is that shared edge. A component calls its stage's run function
(``cxrpriv.<package>.run``), never the argparse spec in ``command.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrpriv.config import C, build_config
from cxrpriv.stages.contract import StageContext
from cxrpriv.tracking import PIPELINE_RUN_ENV, flatten


def component_config(config_cls: type[C], config_json: str, pipeline_run: str) -> C:
    """The stage config from the pipeline's JSON parameter; the stage's MLflow run joins ``pipeline_run``."""
    os.environ.setdefault(PIPELINE_RUN_ENV, pipeline_run)
    return build_config(config_cls, json.loads(config_json), source="pipeline parameter config_json")


# Five positional arguments every component passes, four keyword-only ones that some do.
def component_context(  # noqa: PLR0913
    stage: str,
    profile: str,
    out: str | Path,
    metrics: Any,
    plots: Any,
    *,
    metrics_file: str | Path | None = None,
    checkpoint_dir: str = "",
    checkpoint_run: str = "",
    tags: Mapping[str, str] | None = None,
) -> StageContext:
    """The context of a stage run in a component: output ``out``, plots in the ``plots`` artifact's folder,
    no progress bars, and the stage's metrics JSON beside the KFP ``metrics`` artifact, as
    ``<stage>_summary.json`` unless ``metrics_file`` says otherwise (``metrics*.json`` is the synthesize
    component's, which the pipeline tests look up). ``checkpoint_dir`` (a component's string parameter;
    empty: ``<out>.checkpoint``) can be a mounted volume, so that a restarted pod resumes; with
    ``checkpoint_run`` (the KFP run's ID) the checkpoint is ``<checkpoint_dir>/<checkpoint_run>/<stage>``, so
    that retries of one run share it and no later run resumes from it. ``tags``: extra MLflow run tags."""
    if checkpoint_dir and checkpoint_run:
        checkpoint_dir = str(Path(checkpoint_dir) / _path_part(checkpoint_run) / stage)
    return StageContext(
        out=Path(out),
        metrics=Path(metrics_file or Path(metrics.path).with_name(f"{stage}_summary.json")),
        plots=Path(plots.path),
        profile=profile,
        progress=False,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
        tags=dict(tags or {}),
    )


def _path_part(text: str) -> str:
    """``text`` as one path component (a run ID is a UUID; anything else is made safe, never a traversal)."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip(".")
    return safe or "run"


def local_file(uri: str, endpoint_url: str, folder: Path) -> Path:
    """A local path for a table given as a path or an ``s3://`` URI (downloaded into ``folder`` under its own
    file name, so that its suffix, e.g. ``.csv.gz``, still tells the reader its format)."""
    if not uri.startswith("s3://"):
        return Path(uri)
    from cxrpriv.ingest.sources import read_uri

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (uri.rstrip("/").rpartition("/")[2] or "table")
    path.write_bytes(read_uri(uri, endpoint_url or None))
    return path


def log_kfp_metrics(metrics: Any, values: Mapping[str, Any]) -> None:
    """Log every numeric value (nested keys joined with dots) to a KFP ``Metrics`` artifact."""
    for name, value in flatten("", values).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics.log_metric(name, value)
