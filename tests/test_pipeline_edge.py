from __future__ import annotations

import dataclasses
import json
import os

import pytest

from cxrpriv.config import ConfigError
from cxrpriv.pipeline_edge import component_config, log_kfp_metrics
from cxrpriv.synth.config import SynthesizeConfig
from tests.conftest import tiny_synth_config


def test_component_config_builds_the_typed_config_and_joins_the_pipeline_run(monkeypatch):
    # setenv first, so that monkeypatch restores the variable's original state (usually unset) afterwards
    monkeypatch.setenv("CXRPRIV_PIPELINE_RUN", "placeholder")
    monkeypatch.delenv("CXRPRIV_PIPELINE_RUN")
    values = dataclasses.asdict(tiny_synth_config())
    config = component_config(SynthesizeConfig, json.dumps(values), "kfp-run-7")
    assert config == tiny_synth_config()
    assert os.environ["CXRPRIV_PIPELINE_RUN"] == "kfp-run-7"
    with pytest.raises(ConfigError, match="pipeline parameter config_json: missing"):
        component_config(SynthesizeConfig, json.dumps({"seed": 1}), "kfp-run-7")


def test_log_kfp_metrics_logs_numbers_with_dotted_names_only():
    logged: dict[str, float] = {}

    class Recorder:  # the one method of kfp's Metrics artifact the edge uses
        def log_metric(self, name: str, value: float) -> None:
            logged[name] = value

    log_kfp_metrics(
        Recorder(), {"auc": 0.7, "flag": True, "note": "x", "prevalence": {"Hernia": {"true": 0.002}}}
    )
    assert logged == {"auc": 0.7, "prevalence.Hernia.true": 0.002}
