"""What every KFP component does around its stage call: build the typed config, tag the run, log metrics.

Components are lightweight functions whose bodies are shipped to the cluster as source, so they can share
code only through the library: this module is that shared edge.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any, TypeVar

from cxrpriv.config import build_config
from cxrpriv.tracking import PIPELINE_RUN_ENV, flatten

C = TypeVar("C")


def component_config(config_cls: type[C], config_json: str, pipeline_run: str) -> C:
    """The stage config from the pipeline's JSON parameter; the stage's MLflow run joins ``pipeline_run``."""
    os.environ.setdefault(PIPELINE_RUN_ENV, pipeline_run)
    return build_config(config_cls, json.loads(config_json), source="pipeline parameter config_json")


def log_kfp_metrics(metrics: Any, values: Mapping[str, Any]) -> None:
    """Log every numeric value (nested keys joined with dots) to a KFP ``Metrics`` artifact."""
    for name, value in flatten("", values).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics.log_metric(name, value)
