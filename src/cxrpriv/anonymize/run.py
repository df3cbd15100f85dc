"""The anonymizer stage's run function: train, write the outputs, metrics and plots, log one MLflow run and
register the generator.

Outputs (``context.out``): ``model.pt`` (the generator's state dict; load with
:func:`cxrpriv.anonymize.model.load_anonymizer`, ``weights_only=True``), ``spec.json`` (how to rebuild it:
:func:`~cxrpriv.anonymize.generator.anonymizer_spec`) and ``history.json`` (device, config, per-epoch
records of both phases). The resumable checkpoints live outside the output (``context.checkpoint_dir``,
default ``<out>.checkpoint``), because DVC deletes a stage's outputs before rerunning it; they are deleted
once the outputs are written.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrpriv.anonymize import REGISTERED_NAME, AnonymizerInputError
from cxrpriv.anonymize.config import TrainAnonymizerConfig
from cxrpriv.config import config_to_dict
from cxrpriv.dataset import DatasetError, find_manifest
from cxrpriv.stages.contract import StageContext
from cxrpriv.training.artifacts import model_files

if TYPE_CHECKING:
    from cxrpriv.anonymize.stage import AnonymizerResult

log = logging.getLogger(__name__)


def run_train_anonymizer(
    config: TrainAnonymizerConfig,
    ingest_dir: Path,
    verifier_dir: Path,
    classifier_dir: Path,
    priors_path: Path | None,
    context: StageContext,
) -> dict[str, Any]:
    """Train the anonymizer against the trained verifier (``verifier_dir``, a train_reid output) and
    classifier (``classifier_dir``, a train_classifier output) on the ingest output ``ingest_dir``, with the
    label-noise correction of ``priors_path`` (None: none); write the outputs, metrics and plots and log one
    MLflow run; returns the metrics. ``context.restart`` discards an interrupted run's checkpoints first."""
    from cxrpriv.anonymize.report import write_plots
    from cxrpriv.anonymize.stage import train_anonymizer
    from cxrpriv.dataset import dataset_digest
    from cxrpriv.tracking import file_digest, hash_inputs, stage_run
    from cxrpriv.training.artifacts import SPEC_FILE, model_digest, write_metrics
    from cxrpriv.training.checkpoint import default_checkpoint_dir
    from cxrpriv.training.finish import TrainedModel, finish_training_run

    config.validate()
    out, progress = context.out, context.progress
    checkpoint_dir = context.checkpoint_dir or default_checkpoint_dir(out)
    if context.restart:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)
    inputs = _input_files(ingest_dir, verifier_dir, classifier_dir, priors_path)
    params = {"train_anonymizer": config_to_dict(config)}
    with stage_run(
        "train_anonymizer", params, context.profile, input_hash=hash_inputs(inputs), tags=context.tags
    ) as run:
        run.log_dataset("ingested", Path(ingest_dir), dataset_digest(ingest_dir))
        if priors_path is not None:
            run.log_dataset("priors", Path(priors_path), file_digest(Path(priors_path)))
        run.log_model_input("verifier", model_digest(Path(verifier_dir)))
        run.log_model_input("classifier", model_digest(Path(classifier_dir)))
        result = train_anonymizer(
            config,
            ingest_dir,
            verifier_dir,
            classifier_dir,
            priors_path,
            checkpoint_dir=checkpoint_dir,
            device=context.device,
            progress=progress,
            on_epoch_end=_epoch_logger(run, progress),
        )
        resumed = result.metrics["training"]["resumed_after_epoch"]
        for record in result.history[:resumed]:  # epochs trained by an earlier, interrupted process
            run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=int(record["epoch"]))
        for record in result.pretrain_history:
            run.log_metrics(
                {"pretrain_loss": record["train_loss"], "pretrain_val_loss": record["val_loss"]},
                step=int(record["epoch"]),
            )
        run.set_tags({f"cxrpriv.{k}": v for k, v in result.device.items()})

        _write_model(out, result, config)
        metrics = write_metrics(context.metrics, result.metrics)
        plots = write_plots(result.history, result.metrics, result.examples, context.plots)

        model = TrainedModel(out, result.spec, int(result.spec["image_size"]), _description(result.metrics))
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
    original, anonymized = result.metrics["original"], result.metrics["anonymized"]
    log.info(
        "train_anonymizer on %s: validation re-ID AUC %.4f -> %.4f (%.4f-%.4f), classifier AUC %.4f -> "
        "%.4f, largest displacement %.2f px, best epoch %d of %d; written to %s",
        result.device["device_name"],
        original["reid_auc"],
        anonymized["reid_auc"],
        anonymized["reid_auc_low"],
        anonymized["reid_auc_high"],
        original["classifier_auc"],
        anonymized["classifier_auc"],
        anonymized["displacement_max_px"],
        result.metrics["training"]["best_epoch"],
        result.metrics["training"]["epochs"],
        out,
    )
    return metrics


def _description(metrics: dict[str, Any]) -> str:
    """The registered version's description: what the model is, what it was trained on, how well it does."""
    data, generator = metrics["data"], metrics["generator"]
    original, anonymized = metrics["original"], metrics["anonymized"]
    return (
        f"Chest radiograph anonymizer: a smooth deformation generator (bound mu = {generator['mu']:g}). "
        f"Trained on {data['train_images']} images of {data['train_patients']} patients at "
        f"{data['image_size']} px; validation re-identification AUC {original['reid_auc']:.4f} -> "
        f"{anonymized['reid_auc']:.4f}, classifier AUC {original['classifier_auc']:.4f} -> "
        f"{anonymized['classifier_auc']:.4f}."
    )


def _input_files(
    ingest_dir: Path, verifier_dir: Path, classifier_dir: Path, priors_path: Path | None
) -> list[Path]:
    """Every input file (their hash is the run's input hash), checked before the MLflow run: nothing to log
    for a run that cannot start."""
    try:
        inputs = [find_manifest(ingest_dir)]
    except DatasetError as exc:
        raise AnonymizerInputError(str(exc)) from exc
    for option, directory in (("--verifier", Path(verifier_dir)), ("--classifier", Path(classifier_dir))):
        files = model_files(directory)
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise AnonymizerInputError(f"{option}: {', '.join(missing)} not found")
        inputs += files
    if priors_path is not None:
        if not Path(priors_path).is_file():
            raise AnonymizerInputError(f"{priors_path}: not found (run `cxrpriv priors`, or --no-priors)")
        inputs.append(Path(priors_path))
    return inputs


def _epoch_logger(run: Any, progress: bool) -> Callable[[int, dict[str, float]], None]:
    """Each epoch's record into the MLflow run, and a log line when no progress bar shows it."""

    def log_epoch(epoch: int, record: dict[str, float]) -> None:
        run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=epoch)
        if not progress:
            log.info(
                "train_anonymizer epoch %d: loss %.4f, validation re-ID AUC %.4f, classifier AUC %.4f, "
                "score %.4f, largest displacement %.2f px",
                epoch,
                record["train_loss"],
                record["val_reid_auc"],
                record["val_classifier_auc"],
                record["val_score"],
                record["val_displacement_max_px"],
            )

    return log_epoch


def _write_model(out: Path, result: AnonymizerResult, config: TrainAnonymizerConfig) -> None:
    """The generator's weights, spec and training history (the stage's output folder)."""
    from cxrpriv.training.artifacts import MODEL_FILE, SPEC_FILE, finite
    from cxrpriv.training.checkpoint import save_state_dict

    out.mkdir(parents=True, exist_ok=True)
    save_state_dict(result.model, out / MODEL_FILE)
    (out / SPEC_FILE).write_text(json.dumps(result.spec, indent=1) + "\n")
    history = {
        "device": result.device,
        "config": config_to_dict(config),
        "pretrain": result.pretrain_history,
        "epochs": result.history,
    }
    (out / "history.json").write_text(json.dumps(finite(history), indent=1) + "\n")
