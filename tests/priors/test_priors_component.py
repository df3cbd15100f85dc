"""The priors KFP component's body on a tiny cohort: where it reads the cohort, where it writes what the
classifier reads, what it logs (the whole pipeline under kfp.local is in tests/test_pipeline.py)."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from kfp import dsl

from components.priors.component import priors
from pipelines.cxr_privacy import stage_defaults
from tests.conftest import PARAMS, tiny_synth_config


@pytest.mark.slow
def test_component_writes_the_priors_file_and_logs_its_metrics(tmp_path: Path, isolated_mlflow, monkeypatch):
    from cxrpriv.synth.cohort import synthesize

    # setenv first, so that monkeypatch restores the variable's original state after component_config sets it
    monkeypatch.setenv("CXRPRIV_PIPELINE_RUN", "placeholder")
    monkeypatch.delenv("CXRPRIV_PIPELINE_RUN")
    cohort = tmp_path / "cohort"
    synthesize(tiny_synth_config(n_patients=12, reread_fraction=1.0), cohort, progress=False)
    metrics = dsl.Metrics(name="metrics", uri=str(tmp_path / "out" / "metrics"))
    # The function KFP ships to the pod, called with the artifacts the executor would hand it.
    priors.python_func(
        config_json=stage_defaults(PARAMS, "default")["priors_config"],
        profile="default",
        pipeline_run="kfp-run-3",
        cohort=dsl.Dataset(name="cohort", uri=str(cohort)),
        label_priors=dsl.Artifact(name="label_priors", uri=str(tmp_path / "out" / "label_priors")),
        metrics=metrics,
        plots=dsl.Artifact(name="plots", uri=str(tmp_path / "out" / "plots")),
    )
    # The classifier component reads <label_priors>/priors.json.
    document = json.loads((tmp_path / "out" / "label_priors" / "priors.json").read_text())
    (table,) = document["tables"]
    assert table["layout"] == "reader_wide" and table["n_images"] > 0
    summary = json.loads((tmp_path / "out" / "priors_summary.json").read_text())
    # Every number of the stage's summary reaches the KFP Metrics artifact, under its dotted name.
    assert metrics.metadata and set(metrics.metadata) == _flat_numbers(summary)
    assert list((tmp_path / "out" / "plots").glob("*.png"))
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    experiment = client.get_experiment_by_name("cxr-privacy").experiment_id
    (run,) = client.search_runs([experiment], "tags.`cxrpriv.stage` = 'priors'")  # not the execution's parent
    assert run.data.tags["cxrpriv.pipeline_run"] == "kfp-run-3"


def _flat_numbers(values: dict, prefix: str = "") -> set[str]:
    names = set()
    for key, value in values.items():
        if isinstance(value, dict):
            names |= _flat_numbers(value, f"{prefix}{key}.")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            names.add(f"{prefix}{key}")
    return names
