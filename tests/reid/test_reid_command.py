"""``cxrpriv train_reid`` end to end: outputs, metrics, plots, the MLflow run and registered model, and a
process killed with SIGKILL mid-training that resumes from its checkpoint to the uninterrupted weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from cxrpriv.cli import main
from cxrpriv.reid.model import load_verifier
from tests.conftest import PARAMS, REPO

TINY = [
    "--image-size", "32", "--width", "4", "--depth", "2", "--feature-dim", "16", "--batch-size", "4",
    "--n-boot", "10", "--retrieval-k", "5", "--retrieval-chunk", "4",
]  # fmt: skip


def _cli(ingest: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train_reid",
        "--params", str(PARAMS),
        "--ingest", str(ingest),
        "--out", str(out / "reid"),
        "--metrics", str(out / "metrics.json"),
        "--plots", str(out / "plots"),
        "--device", "cpu",
        "--no-progress",
        *TINY,
        *extra,
    ]  # fmt: skip


def test_cli_writes_outputs_metrics_plots_and_registers_the_model(
    tiny_ingest: Path, tmp_path: Path, isolated_mlflow: str
):
    assert main(_cli(tiny_ingest, tmp_path, "--max-epochs", "2", "--max-steps-per-epoch", "2")) == 0
    out = tmp_path / "reid"
    for name in ("model.pt", "spec.json", "history.json", "test_pairs.parquet", "retrieval.parquet"):
        assert (out / name).is_file(), name
    assert not (tmp_path / "reid.checkpoint").exists(), "the checkpoint is removed after a completed run"
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"verification", "retrieval", "training", "data"} <= set(metrics)
    assert metrics["training"]["train_images_per_s"] > 0 and "data_seconds" in metrics["training"]
    assert {p.name for p in (tmp_path / "plots").iterdir()} == {
        "roc.png",
        "roc.json",  # the data series DVC versions and draws
        "history.json",
        "training_curves.png",
        "retrieval.png",
    }
    history = json.loads((out / "history.json").read_text())
    assert history["device"]["device"] == "cpu" and len(history["epochs"]) == 2

    model, spec = load_verifier(out)
    assert spec["image_size"] == 32 and model.features.out_features == 16
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    (run,) = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    assert run.data.tags["cxrpriv.stage"] == "train_reid"
    assert "verification.auc.value" in run.data.metrics and "retrieval.map_at_r" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "val_map_at_r")) == 2
    (version,) = client.search_model_versions("name='cxrpriv-verifier'")
    loaded = mlflow.pyfunc.load_model(f"models:/cxrpriv-verifier/{version.version}")
    pairs = np.random.default_rng(0).random((3, 2, 32, 32), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(pairs)).numpy()
    np.testing.assert_allclose(loaded.predict(pairs), expected, atol=1e-5)


@pytest.mark.slow  # three CLI runs and a subprocess: about 20 s
def test_a_process_killed_mid_training_resumes_to_the_uninterrupted_weights(
    tiny_ingest: Path, tmp_path: Path
):
    epochs = ["--max-epochs", "6", "--patience", "10", "--max-steps-per-epoch", "0"]
    reference = tmp_path / "reference"
    assert main(_cli(tiny_ingest, reference, *epochs)) == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cxrpriv.cli", *_cli(tiny_ingest, killed, *epochs)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = killed / "reid.checkpoint" / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not checkpoint.is_file() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    assert checkpoint.is_file() and not (killed / "metrics.json").exists()

    assert main(_cli(tiny_ingest, killed, *epochs)) == 0
    metrics = json.loads((killed / "metrics.json").read_text())
    assert metrics["training"]["resumed_after_epoch"] >= 1
    expected = torch.load(reference / "reid" / "model.pt", weights_only=True)
    got = torch.load(killed / "reid" / "model.pt", weights_only=True)
    assert all(torch.equal(expected[k], got[k]) for k in expected)
