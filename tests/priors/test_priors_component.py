"""The priors KFP component, downstream of synthesize, under kfp.local."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mlflow
import pytest
from kfp import local

from pipelines.cxr_privacy import build_pipeline, stage_defaults
from tests.conftest import PARAMS, tiny_synth_config


def test_pipeline_defaults_carry_the_priors_section():
    defaults = stage_defaults(PARAMS, "default")
    assert json.loads(defaults["priors_config"])["min_cases"] == 20


@pytest.mark.slow
def test_priors_component_reads_the_cohort_and_writes_priors_json(tmp_path: Path, isolated_mlflow: str):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    cohort = json.dumps(dataclasses.asdict(tiny_synth_config(n_patients=12, reread_fraction=1.0)))
    build_pipeline(PARAMS, "default")(synthesize_config=cohort)
    (priors_file,) = (tmp_path / "root").rglob("priors.json")
    doc = json.loads(priors_file.read_text())
    assert doc["tables"][0]["layout"] == "reader_wide" and doc["tables"][0]["n_images"] > 0
    assert list((tmp_path / "root").rglob("priors_summary.json"))
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    tags = {r.data.tags["cxrpriv.stage"]: r.data.tags["cxrpriv.pipeline_run"] for r in runs}
    assert tags["priors"] == tags["synthesize"] and tags["priors"].startswith("cxr-privacy-")
