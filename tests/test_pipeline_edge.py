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


def test_a_checkpoint_folder_per_run_and_stage_under_the_mount(tmp_path):
    from types import SimpleNamespace

    from cxrpriv.pipeline_edge import component_context

    metrics = SimpleNamespace(path=str(tmp_path / "metrics"))
    plots = SimpleNamespace(path=str(tmp_path / "plots"))
    context = component_context(
        "train_reid",
        "default",
        tmp_path / "out",
        metrics,
        plots,
        checkpoint_dir="/mnt/ck",
        checkpoint_run="r-1",
    )
    assert str(context.checkpoint_dir) == "/mnt/ck/r-1/train_reid"
    # a run ID is never a path traversal; without one the folder is used as given
    odd = component_context(
        "evaluate", "default", tmp_path, metrics, plots, checkpoint_dir="/ck", checkpoint_run="../x"
    )
    assert str(odd.checkpoint_dir) == "/ck/_x/evaluate"
    assert (
        str(component_context("x", "d", tmp_path, metrics, plots, checkpoint_dir="/ck").checkpoint_dir)
        == "/ck"
    )
    tagged = component_context(
        "preprocess", "d", tmp_path, metrics, plots, tags={"cxrpriv.deid_key_version": "2"}
    )
    assert tagged.tags == {"cxrpriv.deid_key_version": "2"}


def test_the_priors_component_without_a_reread_table_is_skipped_not_failed(tmp_path, monkeypatch):
    from kfp import dsl

    from components.priors.component import priors
    from pipelines.cxr_privacy import stage_defaults
    from tests.conftest import PARAMS

    monkeypatch.setenv("CXRPRIV_PIPELINE_RUN", "placeholder")
    out = tmp_path / "label_priors"
    metrics = dsl.Metrics(name="metrics", uri=str(tmp_path / "metrics"))
    priors.python_func(
        config_json=stage_defaults(PARAMS, "default")["priors_config"],
        profile="default",
        pipeline_run="kfp-run-1",
        label_priors=dsl.Artifact(name="label_priors", uri=str(out)),
        metrics=metrics,
        plots=dsl.Artifact(name="plots", uri=str(tmp_path / "plots")),
    )
    assert json.loads((out / "priors_skipped.json").read_text())["skipped"] is True
    assert not (out / "priors.json").exists()
    # the same skip as `cxrpriv priors --reread ""`: its summary beside the metrics, which KFP gets too
    assert json.loads((tmp_path / "priors_summary.json").read_text()) == {"skipped": 1}
    assert metrics.metadata == {"skipped": 1}
