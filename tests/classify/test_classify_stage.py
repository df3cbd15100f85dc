"""The stage end to end on tiny data: a few training steps, every output, MLflow, and resume after a crash."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from cxrpriv.classify import REGISTERED_NAME, ClassifierInputError
from cxrpriv.classify.data import load_data
from cxrpriv.classify.run import run_train_classifier
from cxrpriv.classify.stage import train_classifier
from cxrpriv.cli import main
from cxrpriv.stages.contract import StageContext
from cxrpriv.training.accelerator import select_accelerator
from cxrpriv.training.checkpoint import load_state_dict
from cxrpriv.training.registry import build_from_spec
from tests.classify.conftest import tiny_classifier_config
from tests.conftest import PARAMS


@pytest.mark.slow  # MLflow model logging and registration: ~15 s
def test_a_few_steps_write_every_output_and_an_mlflow_run(tiny_data: dict[str, Path], tmp_path: Path):
    config = tiny_classifier_config(comorbidity_weight=1.0, anatomy_weight=0.5)
    out = tmp_path / "classifier"
    metrics = run_train_classifier(
        config,
        tiny_data["ingest"],
        tiny_data["priors"],
        tiny_data["answer_key"],
        None,
        StageContext(out, tmp_path / "metrics.json", tmp_path / "plots", "default", progress=False),
    )
    for name in ("model.pt", "spec.json", "predictions.parquet", "evaluation.json", "history.json"):
        assert (out / name).is_file(), name
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "auc_per_finding.json",  # the data series DVC versions and draws
        "auc_per_finding.png",
        "history.json",
        "training_curves.png",
    ]
    # Six training steps: the AUCs only have to be numbers (test_classify_learns.py checks that it learns).
    assert (
        metrics["epochs"] == 2 and 0 <= metrics["clean_mean_auc"] <= 1 and 0 <= metrics["noisy_mean_auc"] <= 1
    )
    assert json.loads((tmp_path / "metrics.json").read_text()) == pytest.approx(metrics)
    spec = json.loads((out / "spec.json").read_text())
    model = build_from_spec(spec)
    model.load_state_dict(load_state_dict(out / "model.pt"))  # weights_only=True
    assert model(torch.zeros(2, 1, 32, 32)).shape == (2, 14)
    predictions = pd.read_parquet(out / "predictions.parquet")
    manifest = pd.read_parquet(tiny_data["ingest"] / "manifest.parquet")
    assert set(predictions["split"]) == {"validation", "test"}
    assert len(predictions) == int(manifest["split"].isin(["validation", "test"]).sum())
    run = mlflow.search_runs(experiment_names=["cxr-privacy"], output_format="list")[0]
    assert run.data.tags["cxrpriv.stage"] == "train_classifier"
    assert run.data.tags["cxrpriv.clean_labels"] == "answer_key"
    assert "clean_mean_auc" in run.data.metrics
    assert mlflow.MlflowClient().search_model_versions(f"name='{REGISTERED_NAME}'")


@pytest.mark.slow  # MLflow run and model logging: ~6 s
def test_the_cli_runs_without_an_answer_key_or_priors(tiny_data: dict[str, Path], tmp_path: Path):
    code = main(
        [
            "train_classifier",
            "--params",
            str(PARAMS),
            "--ingest",
            str(tiny_data["ingest"]),
            "--priors",
            str(tmp_path / "none.json"),
            "--no-answer-key",
            "--out",
            str(tmp_path / "out"),
            "--metrics",
            str(tmp_path / "m.json"),
            "--plots",
            str(tmp_path / "plots"),
            "--no-progress",
            "--no-register",
            "--prior-correction",
            "none",
            "--image-size",
            "32",
            "--width",
            "4",
            "--depth",
            "2",
            "--stem",
            "1",
            "--batch-size",
            "4",
            "--max-epochs",
            "1",
            "--max-steps-per-epoch",
            "2",
            "--n-boot",
            "10",
            "--min-eval-positives",
            "1",
        ]
    )
    assert code == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert "noisy_mean_auc" in metrics and not any(k.startswith("clean_") for k in metrics)


def test_bad_inputs_are_named(tiny_data: dict[str, Path], tmp_path: Path):
    config = tiny_classifier_config()
    with pytest.raises(ClassifierInputError, match=r"missing\.json: not found"):
        load_data(config, tiny_data["ingest"], tmp_path / "missing.json", None, None, mask_size=32)
    flat = tmp_path / "flat.json"
    document = json.loads(tiny_data["priors"].read_text())
    document["findings"]["Edema"]["p_true_given_mined_pos"] = 0.01
    flat.write_text(json.dumps(document))
    data = load_data(config, tiny_data["ingest"], flat, None, None, mask_size=32)
    # A finding whose prior carries no information is trained on its text-mined labels as they are.
    assert data.priors_summary["findings"]["Edema"]["flags"] == ["uninformative_prior"]
    edema = list(data.findings).index("Edema")
    assert data.channel.sensitivity[edema] == pytest.approx(1.0)
    assert data.channel.false_positive_rate[edema] == pytest.approx(0.0)
    with pytest.raises(ClassifierInputError, match="needs lung/heart masks"):
        load_data(
            dataclasses.replace(config, anatomy_weight=1.0),
            tiny_data["ingest"],
            tiny_data["priors"],
            None,
            None,
            mask_size=32,
        )


class Crash(RuntimeError):
    pass


@pytest.mark.slow  # three short trainings
def test_resume_after_a_crash_gives_the_uninterrupted_weights(tiny_data: dict[str, Path], tmp_path: Path):
    config = tiny_classifier_config(max_epochs=3, patience=5, comorbidity_weight=1.0, anatomy_weight=0.5)
    data = load_data(
        config, tiny_data["ingest"], tiny_data["priors"], tiny_data["answer_key"], None, mask_size=32
    )
    accelerator = select_accelerator("cpu")

    def run(checkpoints: Path, crash_after: int | None = None):
        def on_epoch_end(epoch: int, record: dict[str, float]) -> None:
            if epoch == crash_after:
                raise Crash

        return train_classifier(
            config,
            data,
            tiny_data["ingest"],
            accelerator,
            checkpoint_dir=checkpoints,
            progress=False,
            on_epoch_end=on_epoch_end,
        )

    uninterrupted = run(tmp_path / "a")
    with pytest.raises(Crash):
        run(tmp_path / "b", crash_after=2)
    resumed = run(tmp_path / "b")
    assert resumed.fit.resumed_after_epoch == 2
    for key, value in uninterrupted.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    aucs = [k for k in uninterrupted.metrics if "auc" in k]
    assert aucs and all(resumed.metrics[k] == uninterrupted.metrics[k] for k in aucs)
