"""The preprocess KFP component downstream of synthesize, under kfp.local, with its MLflow run."""

# No `from __future__ import annotations`: KFP reads the pipeline function's annotations as objects.

import dataclasses
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from kfp import dsl, local

from components.preprocess.component import preprocess
from components.synthesize.component import synthesize
from tests.conftest import tiny_synth_config
from tests.ingest.conftest import tiny_preprocess_config


@pytest.mark.slow
def test_component_ingests_the_synthesized_cohort(tmp_path: Path, isolated_mlflow: str):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    cohort_config = json.dumps(dataclasses.asdict(tiny_synth_config(n_patients=4)))
    ingest_config = json.dumps(dataclasses.asdict(tiny_preprocess_config()))

    @dsl.pipeline(name="ingest-test")
    def pipeline() -> None:
        cohort = synthesize(
            config_json=cohort_config, profile="default", pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER
        )
        preprocess(
            config_json=ingest_config,
            profile="default",
            pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            throwaway_key=True,
            cohort=cohort.outputs["cohort"],
        )

    pipeline()
    (manifest_path,) = (tmp_path / "root").rglob("manifest.parquet")
    manifest = pd.read_parquet(manifest_path)
    assert len(manifest) > 0 and manifest["patient_id"].str.match(r"^P[0-9a-f]{16}$").all()
    (summary,) = (tmp_path / "root").rglob("preprocess_summary.json")
    assert json.loads(summary.read_text())["key_source"] == "throwaway"
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    by_stage = {
        r.data.tags["cxrpriv.stage"]: r for r in runs if "cxrpriv.stage" in r.data.tags
    }  # not the parent
    run = by_stage["preprocess"]
    assert run.data.tags["cxrpriv.pipeline_run"] == by_stage["synthesize"].data.tags["cxrpriv.pipeline_run"]
    assert run.data.tags["cxrpriv.deid_key_source"] == "throwaway"
    assert run.data.params["preprocess.image_size"] == "64"
    assert run.data.metrics["outcomes.ingested"] == len(manifest)
