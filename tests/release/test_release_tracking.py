"""The release and MLflow: a release that passes its gate sets the ``released`` alias on the registered
versions of the models that made it (found by digest through the runs that made its inputs) and records them
in its manifest; a refused release sets none; the status lands on the pipeline execution's parent run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch

from cxrpriv.cli import main
from cxrpriv.dataset import dataset_digest
from cxrpriv.evaluate.decision import DECISION_FILE
from cxrpriv.networks.backbones import build_backbone
from cxrpriv.release import RELEASE_MANIFEST_FILE
from cxrpriv.tracking import file_digest, stage_run
from cxrpriv.training.artifacts import MODEL_FILE, SPEC_FILE, model_digest
from cxrpriv.training.checkpoint import save_state_dict
from cxrpriv.training.registry import ModelCard, log_state_dict_model
from tests.ingest.conftest import TEST_KEY
from tests.release.conftest import decision

SPEC = {
    "builder": "cxrpriv.networks.backbones:build_backbone",
    "kwargs": {"name": "small_cnn", "width": 4, "depth": 2},
}
KINDS = ("anonymizer", "verifier", "classifier")


def _registered_model(folder: Path, name: str, seed: int) -> str:
    """A tiny trained model written as a stage writes one and registered under ``name``; its digest."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True)
    save_state_dict(build_backbone("small_cnn", width=4, depth=2), folder / MODEL_FILE)
    (folder / SPEC_FILE).write_text(json.dumps(SPEC))
    digest = model_digest(folder)
    with stage_run(f"train_{name}", {}, "default", input_hash="h"):
        log_state_dict_model(folder / MODEL_FILE, SPEC, f"cxrpriv-{name}", ModelCard(name, digest, 16))
    return digest


@pytest.mark.slow  # three registered models and five MLflow runs: ~30 s
def test_a_passed_release_aliases_the_models_behind_it_and_a_refused_one_none(
    ingested_for_release, tmp_path: Path, monkeypatch
):
    monkeypatch.setenv("CXRPRIV_PIPELINE_RUN", "pipe-release")
    dataset = ingested_for_release.dataset
    digests = {kind: _registered_model(tmp_path / kind, kind, seed) for seed, kind in enumerate(KINDS)}
    passed = decision().write(tmp_path / "passed" / DECISION_FILE)
    failed = decision(passed=False).write(tmp_path / "failed" / DECISION_FILE)
    # the runs that made the release's inputs: the anonymize step (the dataset) and evaluate (the decision)
    with stage_run("anonymize", {}, "default", input_hash="h") as run:
        run.log_model_input("anonymizer", digests["anonymizer"])
        run.set_output_digest(dataset_digest(dataset))
    for decided in (passed, failed):
        with stage_run("evaluate", {}, "default", input_hash="h") as run:
            run.log_model_input("verifier", digests["verifier"])
            run.log_model_input("classifier", digests["classifier"])
            run.set_output_digest(file_digest(decided))
    key_file = tmp_path / "key"
    key_file.write_bytes(TEST_KEY.secret)
    out = tmp_path / "out"
    base = ["release", "--dataset", str(dataset), "--key-file", str(key_file), "--out", str(out)]
    base += ["--metrics", str(tmp_path / "m.json"), "--plots", str(tmp_path / "plots"), "--no-progress"]
    client = mlflow.MlflowClient()

    assert main([*base, "--decision", str(failed), "--on-failed-gate", "record"]) == 0
    assert "registered_models" not in json.loads((out / RELEASE_MANIFEST_FILE).read_text())
    for kind in KINDS:
        assert not client.get_registered_model(f"cxrpriv-{kind}").aliases, kind

    assert main([*base, "--decision", str(passed)]) == 0
    records = json.loads((out / RELEASE_MANIFEST_FILE).read_text())["registered_models"]
    assert {r["kind"]: r["digest"] for r in records} == digests
    for record in records:
        aliased = client.get_model_version_by_alias(record["name"], "released")
        assert str(aliased.version) == record["version"] == "1"
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("cxr-privacy").experiment_id], "tags.`cxrpriv.run_role` = 'pipeline'"
    )
    assert parent.data.tags["cxrpriv.release_status"] == "complete"
    assert parent.data.metrics["headline.released_images"] > 0
