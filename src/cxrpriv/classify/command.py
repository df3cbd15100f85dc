"""``cxrpriv train_classifier``: the CLI edge of the classifier stage (inputs, outputs, metrics, plots,
MLflow).

Outputs under ``--out``: ``model.pt`` (state dict), ``spec.json`` (builder and arguments, the priors used),
``predictions.parquet`` (per test/validation image: split, image_id, patient pseudonym, probability per
finding), ``evaluation.json`` (per-finding AUCs with intervals, clean and text-mined) and ``history.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrpriv.classify import ClassifierInputError
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.cli import StageCommand, add_output_options
from cxrpriv.config import config_to_dict
from cxrpriv.training.checkpoint import CheckpointMismatch, default_checkpoint_dir

log = logging.getLogger(__name__)

REGISTERED_NAME = "cxrpriv-classifier"
DEFAULT_INGEST = Path("data/ingest")
DEFAULT_PRIORS = Path("data/priors/priors.json")
DEFAULT_ANSWER_KEY = Path("data/synthetic/answer_key")


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ingest", type=Path, default=DEFAULT_INGEST, help="Ingest output (default: %(default)s)."
    )
    parser.add_argument(
        "--priors",
        type=Path,
        default=DEFAULT_PRIORS,
        help="priors.json of the priors stage (default: %(default)s).",
    )
    parser.add_argument(
        "--answer-key",
        type=Path,
        default=DEFAULT_ANSWER_KEY,
        help="Synthetic answer key (true labels, masks); ignored if missing (default: %(default)s).",
    )
    parser.add_argument("--no-answer-key", action="store_true", help="Do not use an answer key (real data).")
    parser.add_argument(
        "--clean-labels",
        type=Path,
        default=None,
        help="Real data: a re-read table in ChestX-ray14 format (Image Index, Finding Labels) used as clean "
        "labels for evaluation, matched to ingested files by name.",
    )
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="Resumable checkpoint, rewritten every epoch; an interrupted run resumes from it (default: "
        "<out>.checkpoint, outside DVC's output; removed once the outputs are written).",
    )
    # Not --force: in synthesize and preprocess that replaces the output; here the output is always rewritten
    # and what this discards is the checkpoint.
    parser.add_argument(
        "--restart", action="store_true", help="Discard the checkpoint of an interrupted run and start over."
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N.")
    parser.add_argument("--no-progress", action="store_true", help="No progress bars.")
    parser.add_argument("--no-register", action="store_true", help="Log the model but do not register it.")
    add_output_options(parser, "train_classifier", Path("data/classifier"), "Output directory")


def run_train_classifier(
    config: ClassifierConfig,
    ingest_dir: Path,
    priors_path: Path | None,
    answer_key_dir: Path | None,
    clean_labels_table: Path | None,
    out_dir: Path,
    metrics_path: Path,
    plots_dir: Path,
    profile: str,
    *,
    checkpoint_dir: Path | None = None,
    restart: bool = False,
    device: str = "auto",
    progress: bool = True,
    register: bool = True,
    tags: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Load the inputs, train, evaluate, write the outputs and log one MLflow run; returns the metrics.
    ``restart`` discards the checkpoint of an interrupted run instead of resuming from it."""
    from cxrpriv.classify.data import load_data
    from cxrpriv.classify.report import write_plots
    from cxrpriv.classify.stage import train_classifier
    from cxrpriv.tracking import hash_inputs, stage_run
    from cxrpriv.training.accelerator import select_accelerator
    from cxrpriv.training.checkpoint import save_state_dict
    from cxrpriv.training.registry import log_state_dict_model

    config.validate()
    accelerator = select_accelerator(device, config.mixed_precision)
    bank_size = config.image_size or _ingest_size(ingest_dir)
    data = load_data(config, ingest_dir, priors_path, answer_key_dir, clean_labels_table, bank_size)
    checkpoint_dir = checkpoint_dir or default_checkpoint_dir(out_dir)
    if restart and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    if data.clean is None:
        log.warning(
            "no clean labels (no answer key, no --clean-labels): evaluated against text-mined labels only"
        )
    inputs = [ingest_dir / "manifest.parquet"] + [p for p in (priors_path,) if p is not None and p.is_file()]
    params = {"train_classifier": config_to_dict(config)}
    with stage_run("train_classifier", params, profile, input_hash=hash_inputs(inputs)) as run:
        run.set_tags({**accelerator.describe(), "cxrpriv.clean_labels": data.clean_source, **(tags or {})})
        result = train_classifier(config, data, ingest_dir, accelerator, checkpoint_dir, progress)
        out_dir.mkdir(parents=True, exist_ok=True)
        model_path = out_dir / "model.pt"
        save_state_dict(result.model, model_path)
        spec = {
            **result.spec,
            "findings": list(data.findings),
            "input_size": config.input_size or bank_size,
            "priors": data.priors_summary,
        }
        (out_dir / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")
        _predictions_frame(data, result.predictions).to_parquet(out_dir / "predictions.parquet", index=False)
        (out_dir / "evaluation.json").write_text(json.dumps(result.evaluation, indent=1) + "\n")
        (out_dir / "history.json").write_text(json.dumps(result.fit.history, indent=1) + "\n")
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(result.metrics, indent=1, sort_keys=True) + "\n")
        for record in result.fit.history:
            step = int(record["epoch"])
            run.log_metrics({k: v for k, v in record.items() if k != "epoch"}, step=step)
        run.log_metrics(result.metrics)
        for plot in write_plots(result.evaluation, result.fit.history, plots_dir):
            run.log_artifact(plot, "plots")
        for name in ("spec.json", "evaluation.json", "history.json"):
            run.log_artifact(out_dir / name)
        log_state_dict_model(model_path, result.spec, REGISTERED_NAME if register else None)
    # The outputs are complete: the checkpoint is no longer needed (and must not meet the next run's data).
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    _log_summary(result.metrics, data.clean is not None)
    return result.metrics


def _ingest_size(ingest_dir: Path) -> int:
    from cxrpriv.ingest.shards import ShardReader

    reader = ShardReader(ingest_dir)
    return int(reader[0].shape[-1])


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


def _run(config: ClassifierConfig, args: argparse.Namespace, profile: str) -> int:
    answer_key = None if args.no_answer_key or not args.answer_key.exists() else args.answer_key
    try:
        run_train_classifier(
            config,
            args.ingest,
            args.priors if args.priors.exists() or config.prior_correction != "none" else None,
            answer_key,
            args.clean_labels,
            args.out,
            args.metrics,
            args.plots,
            profile,
            checkpoint_dir=args.checkpoint_dir,
            restart=args.restart,
            device=args.device,
            progress=not args.no_progress,
            register=not args.no_register,
        )
    except (ClassifierInputError, CheckpointMismatch) as exc:
        log.error("%s", exc)
        return 2
    return 0


TRAIN_CLASSIFIER = StageCommand(
    name="train_classifier",
    help="Multi-label abnormality classifier on the ingested images, robust to text-mined label noise.",
    config_cls=ClassifierConfig,
    add_io=_add_io,
    run=_run,
)
