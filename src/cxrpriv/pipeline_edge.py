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
from typing import Any, TypeVar

from cxrpriv.config import build_config
from cxrpriv.stages.contract import StageContext
from cxrpriv.tracking import PIPELINE_RUN_ENV, flatten

C = TypeVar("C")


def component_config(config_cls: type[C], config_json: str, pipeline_run: str) -> C:
    """The stage config from the pipeline's JSON parameter; the stage's MLflow run joins ``pipeline_run``."""
    os.environ.setdefault(PIPELINE_RUN_ENV, pipeline_run)
    return build_config(config_cls, json.loads(config_json), source="pipeline parameter config_json")


def component_context(
    stage: str,
    profile: str,
    out: str | Path,
    metrics: Any,
    plots: Any,
    *,
    metrics_file: str | Path | None = None,
    checkpoint_dir: str = "",
) -> StageContext:
    """The context of a stage run in a component: output ``out``, plots in the ``plots`` artifact's folder,
    no progress bars, and the stage's metrics JSON beside the KFP ``metrics`` artifact, as
    ``<stage>_summary.json`` unless ``metrics_file`` says otherwise (``metrics*.json`` is the synthesize
    component's, which the pipeline tests look up). ``checkpoint_dir`` (a component's string parameter;
    empty: ``<out>.checkpoint``) can be a mounted volume, so that a restarted pod resumes."""
    return StageContext(
        out=Path(out),
        metrics=Path(metrics_file or Path(metrics.path).with_name(f"{stage}_summary.json")),
        plots=Path(plots.path),
        profile=profile,
        progress=False,
        checkpoint_dir=Path(checkpoint_dir) if checkpoint_dir else None,
    )


def log_kfp_metrics(metrics: Any, values: Mapping[str, Any]) -> None:
    """Log every numeric value (nested keys joined with dots) to a KFP ``Metrics`` artifact."""
    for name, value in flatten("", values).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics.log_metric(name, value)
