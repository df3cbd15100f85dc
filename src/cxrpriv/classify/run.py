"""The classifier stage's run function: load the inputs, train, evaluate, write the outputs, metrics and
plots, log one MLflow run and register the model.

Outputs under ``context.out``: ``model.pt`` (state dict), ``spec.json`` (builder and arguments, the priors
used), ``predictions.parquet`` (per test/validation image: split, image_id, patient pseudonym, probability
per finding), ``evaluation.json`` (per-finding AUCs with intervals, clean and text-mined) and
``history.json``.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrpriv.classify import REGISTERED_NAME, ClassifierInputError
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.config import config_to_dict
from cxrpriv.dataset import DatasetError, manifest_path, open_dataset
from cxrpriv.stages.contract import StageContext

log = logging.getLogger(__name__)


def run_train_classifier(
    config: ClassifierConfig,
    ingest_dir: Path,
    priors_path: Path | None,
    answer_key_dir: Path | None,
    clean_labels_table: Path | None,
    context: StageContext,
) -> dict[str, Any]:
    """Load the inputs (the ingest output; ``priors.json``, the synthetic answer key and a clean-label
    re-read table, each optional), train, evaluate, write the outputs and log one MLflow run; returns the
    metrics. ``context.restart`` discards the checkpoint of an interrupted run instead of resuming from it;
    the model is registered under ``context.registered_name(REGISTERED_NAME)``."""
    from cxrpriv.classify.data import load_data
    from cxrpriv.classify.model import classifier_artifact_spec
    from cxrpriv.classify.report import write_plots
    from cxrpriv.classify.stage import train_classifier
    from cxrpriv.dataset import dataset_digest
    from cxrpriv.tracking import file_digest, hash_inputs, stage_run
    from cxrpriv.training.accelerator import select_accelerator
    from cxrpriv.training.artifacts import MODEL_FILE, SPEC_FILE
    from cxrpriv.training.checkpoint import default_checkpoint_dir, save_state_dict
    from cxrpriv.training.finish import TrainedModel, finish_training_run

    out_dir = context.out
    config.validate()
    accelerator = select_accelerator(context.device, config.mixed_precision)
    bank_size = config.image_size or _ingest_size(ingest_dir)
    data = load_data(config, ingest_dir, priors_path, answer_key_dir, clean_labels_table, mask_size=bank_size)
    checkpoint_dir = context.checkpoint_dir or default_checkpoint_dir(out_dir)
    if context.restart and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    if data.clean is None:
        log.warning(
            "no clean labels (no answer key, no --clean-labels): evaluated against text-mined labels only"
        )
    inputs = [manifest_path(ingest_dir)] + [p for p in (priors_path,) if p is not None and p.is_file()]
    params = {"train_classifier": config_to_dict(config)}
    with stage_run(
        "train_classifier", params, context.profile, input_hash=hash_inputs(inputs), tags=context.tags
    ) as run:
        run.set_tags({**accelerator.describe(), "cxrpriv.clean_labels": data.clean_source})
        run.log_dataset("ingested", Path(ingest_dir), dataset_digest(ingest_dir))
        if priors_path is not None and priors_path.is_file():
            run.log_dataset("priors", priors_path, file_digest(priors_path))
        result = train_classifier(
            config, data, ingest_dir, accelerator, checkpoint_dir=checkpoint_dir, progress=context.progress
        )
        out_dir.mkdir(parents=True, exist_ok=True)
        model_path = out_dir / MODEL_FILE
        save_state_dict(result.model, model_path)
        spec = classifier_artifact_spec(
            result.spec, data.findings, config.input_size or bank_size, bank_size, data.priors_summary
        )
        (out_dir / SPEC_FILE).write_text(json.dumps(spec, indent=1) + "\n")
        _predictions_frame(data, result.predictions).to_parquet(out_dir / "predictions.parquet", index=False)
        (out_dir / "evaluation.json").write_text(json.dumps(result.evaluation, indent=1) + "\n")
        (out_dir / "history.json").write_text(json.dumps(result.fit.history, indent=1) + "\n")
        context.metrics.parent.mkdir(parents=True, exist_ok=True)
        context.metrics.write_text(json.dumps(result.metrics, indent=1, sort_keys=True) + "\n")
        for record in result.fit.history:
            step = int(record["epoch"])
            run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=step)
        plots = write_plots(result.evaluation, result.fit.history, context.plots)
        input_size = int(spec["input_size"])
        model = TrainedModel(out_dir, result.spec, input_size, _description(data, result.metrics, input_size))
        artifacts = [out_dir / name for name in (SPEC_FILE, "evaluation.json", "history.json")]
        registered_name = context.registered_name(REGISTERED_NAME)
        finish_training_run(
            run,
            model,
            result.metrics,
            artifacts=artifacts,
            plots=plots,
            registered_name=registered_name,
            checkpoint_dir=checkpoint_dir,
        )
    _log_summary(result.metrics, data.clean is not None)
    return result.metrics


def _description(data: Any, metrics: dict[str, Any], input_size: int) -> str:
    """The registered version's description: what the model is, what it was trained on, how well it does."""
    kind = "clean" if data.clean is not None else "noisy"
    labels = "clean" if kind == "clean" else "text-mined"
    return (
        f"Chest radiograph finding classifier ({len(data.findings)} findings, multi-label). Trained on "
        f"{len(data.train)} images at {input_size} px; test mean AUC "
        f"{metrics.get(f'{kind}_mean_auc', float('nan')):.4f} against {labels} labels."
    )


def _ingest_size(ingest_dir: Path) -> int:
    try:
        images = open_dataset(ingest_dir).images()
    except DatasetError as exc:
        raise ClassifierInputError(str(exc)) from exc
    return int(images[0].shape[-1])


def _predictions_frame(data: Any, predictions: dict[str, np.ndarray]) -> pd.DataFrame:
    frames = []
    for split, probabilities in predictions.items():
        rows = getattr(data, split)
        frame = pd.DataFrame(probabilities, columns=[f"p_{f}" for f in data.findings])
        frame.insert(0, "patient_id", data.manifest["patient_id"].astype(str).to_numpy()[rows])
        frame.insert(0, "image_id", data.manifest["image_id"].astype(str).to_numpy()[rows])
        frame.insert(0, "split", split)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _log_summary(metrics: dict[str, Any], has_clean: bool) -> None:
    kinds = ("clean", "noisy") if has_clean else ("noisy",)
    nan = float("nan")
    parts = [
        f"{kind} mean AUC {metrics.get(f'{kind}_mean_auc', nan):.3f} "
        f"[{metrics.get(f'{kind}_mean_auc_low', nan):.3f}, {metrics.get(f'{kind}_mean_auc_high', nan):.3f}], "
        f"worst {metrics.get(f'{kind}_worst_auc', nan):.3f}"
        for kind in kinds
    ]
    log.info(
        "classifier: best epoch %d of %d; %s; %.0f training images/s, %.1f s waiting for data",
        metrics["best_epoch"],
        metrics["epochs"],
        "; ".join(parts),
        metrics["train_images_per_s"],
        metrics["data_seconds"],
    )
