"""``cxrpriv train_anonymizer`` end to end: outputs, metrics, plots, the MLflow run and the registered
generator, which serves the anonymized films; input errors are exit code 2."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml

from cxrpriv.anonymize.model import load_anonymizer
from cxrpriv.cli import main
from cxrpriv.priors.output import PRIORS_FILE, write_priors_skipped
from tests.anonymize.conftest import Trained, tiny_anonymizer_config
from tests.conftest import PARAMS


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """The repository's params with a tiny train_anonymizer section (whatever params.yaml holds for it)."""
    params = yaml.safe_load(PARAMS.read_text())
    params["train_anonymizer"] = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(tiny_anonymizer_config(noise_channels=1, max_epochs=2)).items()
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def _cli(trained: Trained, params: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train_anonymizer",
        "--params", str(params),
        "--ingest", str(trained.ingest),
        "--verifier", str(trained.verifier),
        "--classifier", str(trained.classifier),
        "--priors", str(trained.priors),
        "--out", str(out / "anonymizer"),
        "--metrics", str(out / "metrics.json"),
        "--plots", str(out / "plots"),
        "--device", "cpu",
        "--no-progress",
        *extra,
    ]  # fmt: skip


@pytest.mark.slow  # the MLflow run and model registration: ~15 s on two shared cores
def test_cli_writes_outputs_metrics_plots_and_registers_the_generator(
    trained: Trained, params_file: Path, tmp_path: Path, isolated_mlflow: str
):
    assert main(_cli(trained, params_file, tmp_path, "--helpers", "updated")) == 0
    out = tmp_path / "anonymizer"
    for name in ("model.pt", "spec.json", "history.json"):
        assert (out / name).is_file(), name
    assert not (tmp_path / "anonymizer.checkpoint").exists(), (
        "the checkpoints go once the outputs are written"
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"original", "initial", "anonymized", "training", "data", "generator"} <= set(metrics)
    assert metrics["generator"]["helpers"] == "updated" and metrics["data"]["utility_correction"] == "forward"
    assert 0 <= metrics["anonymized"]["reid_auc"] <= 1 and metrics["training"]["epochs"] == 2
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {"training_curves.png", "examples.png"}
    history = json.loads((out / "history.json").read_text())
    assert (
        history["device"]["device"] == "cpu" and len(history["epochs"]) == 2 and len(history["pretrain"]) == 1
    )

    model, spec = load_anonymizer(out)  # weights_only=True
    assert spec["image_size"] == 32 and model.noise_channels == 1
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    (run,) = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    assert run.data.tags["cxrpriv.stage"] == "train_anonymizer"
    assert "anonymized.reid_auc" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val_reid_auc")) == 2
    (version,) = client.search_model_versions("name='cxrpriv-anonymizer'")
    loaded = mlflow.pyfunc.load_model(f"models:/cxrpriv-anonymizer/{version.version}")
    films = np.random.default_rng(0).random((3, 1, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = model.predict_images(torch.from_numpy(films)).numpy()
        alone = model.predict_images(torch.from_numpy(films[1:2])).numpy()
    served = loaded.predict(films)
    np.testing.assert_allclose(served, expected, atol=1e-6)
    np.testing.assert_allclose(alone, expected[1:2], atol=1e-6)  # a film's warp does not depend on its batch


def test_cli_input_errors_exit_with_code_2(trained: Trained, params_file: Path, tmp_path: Path):
    missing = tmp_path / "nowhere"
    assert main(_cli(trained, params_file, tmp_path, "--verifier", str(missing))) == 2
    assert main(_cli(trained, params_file, tmp_path, "--priors", str(missing / "priors.json"))) == 2
    assert not (tmp_path / "anonymizer").exists()


def test_cli_reads_the_priors_output_folder_and_runs_without_priors_when_they_were_skipped(
    trained: Trained, params_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    skipped, empty = tmp_path / "skipped", tmp_path / "empty"
    write_priors_skipped(skipped, "no re-read table")
    empty.mkdir()
    missing = tmp_path / "nowhere"
    with caplog.at_level(logging.WARNING):
        # stopped at the verifier, after the priors were resolved: none, and said so
        args = _cli(trained, params_file, tmp_path, "--priors", str(skipped), "--verifier", str(missing))
        assert main(args) == 2
    assert "train_anonymizer: no label priors (no re-read table)" in caplog.text
    assert "--verifier" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.ERROR):  # a priors output with neither file: its priors.json is missing
        assert main(_cli(trained, params_file, tmp_path, "--priors", str(empty))) == 2
    assert f"{empty / PRIORS_FILE}: not found" in caplog.text


def test_the_component_compiles_with_the_stage_inputs(tmp_path: Path):
    from kfp import compiler

    from components.train_anonymizer.component import train_anonymizer

    compiler.Compiler().compile(train_anonymizer, str(tmp_path / "component.yaml"))
    spec = yaml.safe_load((tmp_path / "component.yaml").read_text())["root"]
    assert set(spec["inputDefinitions"]["artifacts"]) == {"dataset", "verifier", "classifier", "label_priors"}
    assert set(spec["outputDefinitions"]["artifacts"]) == {"anonymizer", "metrics", "plots"}
