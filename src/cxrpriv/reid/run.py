"""The verifier stage's run function: train and attack, write the outputs, metrics and plots, log one MLflow
run and register the model.

Outputs (``context.out``): ``model.pt`` (state dict), ``spec.json`` (how to rebuild it), ``history.json``
(per-epoch records, device), ``test_pairs.parquet`` (test pairs with their probabilities) and
``retrieval.parquet`` (one row per test query). The resumable checkpoint lives outside the output
(``context.checkpoint_dir``, default ``<out>.checkpoint``) because DVC deletes a stage's outputs before it
reruns the stage: a killed ``dvc repro`` then resumes where it stopped. It is deleted once the outputs are
written.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from cxrpriv.config import config_to_dict
from cxrpriv.dataset import DatasetError, find_manifest
from cxrpriv.reid import REGISTERED_NAME, ReidInputError
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.stages.contract import StageContext

log = logging.getLogger(__name__)


def run_train_reid(config: TrainReidConfig, ingest_dir: Path, context: StageContext) -> dict[str, Any]:
    """Train and evaluate the verifier on the ingest output ``ingest_dir``, write its outputs, metrics and
    plots, and log one MLflow run; returns the metrics. ``context.restart`` discards the checkpoint of an
    interrupted run first; the model is registered under ``context.registered_name(REGISTERED_NAME)``."""
    from cxrpriv.dataset import dataset_digest
    from cxrpriv.reid.report import write_plots
    from cxrpriv.reid.stage import train_reid
    from cxrpriv.tracking import hash_inputs, stage_run
    from cxrpriv.training.artifacts import MODEL_FILE, SPEC_FILE, finite, write_metrics
    from cxrpriv.training.checkpoint import default_checkpoint_dir, save_state_dict
    from cxrpriv.training.finish import TrainedModel, finish_training_run

    out, progress = context.out, context.progress
    checkpoint_dir = context.checkpoint_dir or default_checkpoint_dir(out)
    if context.restart:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    try:
        manifest = find_manifest(ingest_dir)
    except DatasetError as exc:
        raise ReidInputError(str(exc)) from exc
    params = {"train_reid": config_to_dict(config)}
    with stage_run(
        "train_reid", params, context.profile, input_hash=hash_inputs([manifest]), tags=context.tags
    ) as run:
        run.log_dataset("ingested", Path(ingest_dir), dataset_digest(ingest_dir))

        def log_epoch(epoch: int, record: dict[str, float]) -> None:
            run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
            if not progress:  # the loop's own epoch line comes with the progress bars
                validation = ", ".join(
                    f"{k} {v:.4f}" for k, v in record.items() if k.startswith("val_") and math.isfinite(v)
                )
                log.info(
                    "train_reid epoch %d: train loss %.4f, %s, %.0f images/s, %.1f of %.1f s waiting for "
                    "data",
                    epoch,
                    record["train_loss"],
                    validation,
                    record["train_images_per_s"],
                    record["data_seconds"],
                    record["train_seconds"],
                )

        result = train_reid(
            config, ingest_dir, checkpoint_dir, context.device, progress, on_epoch_end=log_epoch
        )
        resumed = result.metrics["training"]["resumed_after_epoch"]
        for record in result.history[:resumed]:  # epochs trained by an earlier, interrupted process
            run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))
        run.set_tags({f"cxrpriv.{k}": v for k, v in result.device.items()})

        out.mkdir(parents=True, exist_ok=True)
        model_path = out / MODEL_FILE
        save_state_dict(result.model, model_path)
        (out / SPEC_FILE).write_text(json.dumps(result.spec, indent=1) + "\n")
        history = {"device": result.device, "config": config_to_dict(config), "epochs": result.history}
        (out / "history.json").write_text(json.dumps(finite(history), indent=1) + "\n")
        result.test_pairs.to_parquet(out / "test_pairs.parquet", index=False)
        result.retrieval.to_parquet(out / "retrieval.parquet", index=False)
        metrics = write_metrics(context.metrics, result.metrics)
        auc = result.metrics["verification"]["auc"]["value"]
        plots = write_plots(result.roc, auc, result.history, result.retrieval, context.plots)

        size, description = int(result.spec["image_size"]), _description(result.metrics)
        model = TrainedModel(out, result.spec, size, description, input_channels=2)  # scores film pairs
        artifacts = (context.metrics, out / SPEC_FILE, out / "history.json")
        registered_name = context.registered_name(REGISTERED_NAME)
        finish_training_run(
            run,
            model,
            metrics,
            artifacts=artifacts,
            plots=plots,
            registered_name=registered_name,
            checkpoint_dir=checkpoint_dir,
        )
    verification, retrieval = result.metrics["verification"], result.metrics["retrieval"]
    training = result.metrics["training"]
    log.info(
        "train_reid on %s: test AUC %.4f (%.4f-%.4f), accuracy %.4f, mAP@R %.4f, P@1 %.4f after %d epochs "
        "(best %d), %.0f training images/s, %.1f s of %.1f s waiting for data; written to %s",
        result.device["device_name"],
        auc,
        verification["auc"]["low"],
        verification["auc"]["high"],
        verification["accuracy"]["value"],
        retrieval["map_at_r"],
        retrieval["precision_at_1"],
        training["epochs"],
        training["best_epoch"],
        training["train_images_per_s"],
        training["data_seconds"],
        training["train_seconds"],
        out,
    )
    return metrics


def _description(metrics: dict[str, Any]) -> str:
    """The registered version's description: what the model is, what it was trained on, how well it does."""
    data, verification = metrics["data"], metrics["verification"]
    attacker = metrics["attacker"]
    return (
        f"Patient re-identification verifier ({attacker['method']}, {attacker['backbone']} backbone). "
        f"Trained on {data['train_images']} images of {data['train_patients']} patients at "
        f"{data['image_size']} px; test verification AUC {verification['auc']['value']:.4f} on "
        f"{verification['n_pairs']} pairs."
    )
