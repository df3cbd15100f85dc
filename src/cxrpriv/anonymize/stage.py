"""The anonymizer stage as a function: ingest output, trained verifier and classifier in; a trained generator
and its validation metrics out.

``train_anonymizer`` measures the frozen verifier and classifier on the original validation films, pretrains
the generator towards the identity (``pretrain_epochs``), measures that identity-initialized generator, then
runs the adversarial epochs (:mod:`cxrpriv.anonymize.adversarial`) in the shared epoch loop with a
stage-owned step, keeps the epoch with the best validation score and measures it once more with a bootstrap
over patients. Each phase has its own resumable checkpoint under ``checkpoint_dir`` (``pretrain/``,
``adversarial/``); nothing else is written here (``run.py`` writes the outputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrpriv.anonymize.adversarial import AdversarialTraining, displacement_summary
from cxrpriv.anonymize.config import TrainAnonymizerConfig
from cxrpriv.anonymize.data import AnonymizerData, load_anonymizer_data
from cxrpriv.anonymize.generator import Anonymizer, anonymizer_spec, build_anonymizer
from cxrpriv.training.accelerator import select_accelerator
from cxrpriv.training.checkpoint import CheckpointStore
from cxrpriv.training.loop import FitResult, LoopSettings, fit
from cxrpriv.training.seeding import seed_everything

FINAL_N_BOOT = 200  # bootstrap resamples (of patients) of the kept epoch's validation re-ID AUC
EXAMPLES = 4  # validation films (of different patients) in the examples plot


@dataclass
class AnonymizerResult:
    model: Anonymizer  # the kept generator, on the CPU, eval mode
    spec: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, float]]  # adversarial epochs
    pretrain_history: list[dict[str, float]]
    examples: dict[str, np.ndarray]  # original, anonymized, displacement_px: [k, S, S] validation films
    device: dict[str, str]


def generator_kwargs(config: TrainAnonymizerConfig) -> dict[str, Any]:
    return {
        "widths": tuple(config.widths),
        "noise_channels": config.noise_channels,
        "mu": config.mu,
        "sigma": config.smoothing_sigma,
        "kernel": config.smoothing_kernel,
    }


def _store(checkpoint_dir: Path | None, phase: str, fingerprint: str) -> CheckpointStore | None:
    if checkpoint_dir is None:
        return None
    return CheckpointStore(Path(checkpoint_dir) / phase, f"{fingerprint}-{phase}")


def _with_throughput(training: AdversarialTraining, record: dict[str, float]) -> dict[str, float]:
    images = training.batches(int(record["epoch"])).images  # seeded: the same count after a resume
    seconds = record["train_seconds"]
    return {
        **record,
        "train_images": float(images),
        "train_images_per_s": images / seconds if seconds > 0 else math.nan,
    }


def _pretrain(
    config: TrainAnonymizerConfig,
    training: AdversarialTraining,
    store: CheckpointStore | None,
    progress: bool,
) -> FitResult | None:
    """Identity pretraining; afterwards the generator holds the last pretraining epoch's weights."""
    if config.pretrain_epochs == 0:
        return None
    settings = LoopSettings(
        max_epochs=config.pretrain_epochs,
        patience=config.pretrain_epochs,  # the field only shrinks: no early stopping here
        seed=config.seed,
        monitor="loss",
        mode="min",
        progress=progress,
        description="train_anonymizer (identity pretraining)",
    )
    return fit(
        training.anonymizer,
        torch.optim.Adam(training.anonymizer.parameters(), lr=config.learning_rate),
        train_batches=training.batches,
        training_loss=training.pretrain_loss,
        validate=training.pretrain_validate,
        accelerator=training.accelerator,
        settings=settings,
        checkpoint=store,
    )


def train_anonymizer(  # noqa: PLR0913 (the four inputs, then the run's options by name)
    config: TrainAnonymizerConfig,
    ingest_dir: Path,
    verifier_dir: Path,
    classifier_dir: Path,
    priors_path: Path | None,
    *,
    checkpoint_dir: Path | None = None,
    device: str = "auto",
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> AnonymizerResult:
    """``priors_path`` None: the utility term is plain BCE on the text-mined labels (no correction)."""
    accelerator = select_accelerator(device, config.mixed_precision)
    seed_everything(config.seed)
    data = load_anonymizer_data(
        config,
        ingest_dir,
        verifier_dir,
        classifier_dir,
        priors_path,
        accelerator=accelerator,
        progress=progress,
    )
    kwargs = generator_kwargs(config)
    torch.manual_seed(config.seed)  # the initial weights do not depend on what loading drew
    anonymizer = build_anonymizer(**kwargs).to(accelerator.device)
    training = AdversarialTraining(config, data, anonymizer)

    original, _ = training.evaluate(training.originals())
    pretrained = _pretrain(config, training, _store(checkpoint_dir, "pretrain", data.fingerprint), progress)
    initial = training.validate()

    def epoch_done(epoch: int, record: dict[str, float]) -> None:
        if on_epoch_end is not None:
            on_epoch_end(epoch, _with_throughput(training, record))

    settings = LoopSettings(
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=config.seed,
        monitor="score",
        mode="max",
        progress=progress,
        description=f"train_anonymizer ({config.privacy_loss}, helpers {config.helpers})",
    )
    fitted = fit(
        training.players,
        training.optimizers,
        train_batches=training.batches,
        step=training.step,
        validate=training.validate,
        accelerator=accelerator,
        settings=settings,
        checkpoint=_store(checkpoint_dir, "adversarial", data.fingerprint),
        on_epoch_end=epoch_done,
    )
    training.players.load_state_dict(fitted.best_state)
    anonymizer.eval()
    films, fields = training.anonymize_validation()
    final, attacked = training.evaluate(films, n_boot=FINAL_N_BOOT)
    auc = attacked.verification["auc"]
    final.update(reid_auc_low=float(auc["low"]), reid_auc_high=float(auc["high"]))
    final.update(displacement_summary(fields, data.size))
    history = [_with_throughput(training, r) for r in fitted.history]
    # All three on the validation films, attacked against the original validation films by the frozen
    # trained verifier, classified by the frozen trained classifier: no anonymization, the
    # identity-initialized generator (after pretraining), the kept epoch.
    evaluated = {"original": original, "initial": initial, "anonymized": final}
    metrics = _metrics(
        config,
        data,
        evaluated=evaluated,
        fitted=fitted,
        history=history,
        pretrained=pretrained,
        anonymizer=anonymizer,
    )
    return AnonymizerResult(
        model=anonymizer.cpu(),
        spec=anonymizer_spec(kwargs, data.size),
        metrics=metrics,
        history=history,
        pretrain_history=[] if pretrained is None else pretrained.history,
        examples=_examples(training, films, fields),
        device=accelerator.describe(),
    )


def _examples(
    training: AdversarialTraining, films: torch.Tensor, fields: torch.Tensor
) -> dict[str, np.ndarray]:
    """The first film of each of the first few validation patients (sorted pseudonyms)."""
    patients = training.val_patients
    _, first = np.unique(patients, return_index=True)
    pick = np.sort(first)[:EXAMPLES]
    size = training.data.size
    originals = training.originals()[pick, 0].float().cpu().numpy()
    magnitude = (fields[pick] * (size / 2)).square().sum(dim=1).sqrt().cpu().numpy()
    return {
        "original": originals,
        "anonymized": films[pick, 0].float().cpu().numpy(),
        "displacement_px": magnitude,
        "image_ids": training.val_ids[pick],
    }


def _metrics(
    config: TrainAnonymizerConfig,
    data: AnonymizerData,
    *,
    evaluated: dict[str, dict[str, float]],
    fitted: FitResult,
    history: list[dict[str, float]],
    pretrained: FitResult | None,
    anonymizer: Anonymizer,
) -> dict[str, Any]:
    """``evaluated``: the validation metrics by name (original, initial, anonymized), first in the metrics."""
    train_seconds = float(sum(r["train_seconds"] for r in history))
    data_seconds = float(sum(r["data_seconds"] for r in history))
    train_images = float(sum(r["train_images"] for r in history))
    return {
        **evaluated,
        "training": {
            "epochs": len(history),
            "best_epoch": fitted.best_epoch,
            "monitor": "val_score",
            "best_val_score": fitted.best_score,
            "stopped_early": int(fitted.stopped_early),
            "resumed_after_epoch": fitted.resumed_after_epoch,
            "pretrain_epochs": 0 if pretrained is None else len(pretrained.history),
            "pretrain_final_loss": math.nan if pretrained is None else pretrained.history[-1]["val_loss"],
            "train_seconds": train_seconds,
            "data_seconds": data_seconds,
            "train_images_per_s": train_images / train_seconds if train_seconds > 0 else math.nan,
        },
        "data": data.summary(),
        "generator": {
            "mu": config.mu,
            "mu_pixels": config.mu * data.size / 2,
            "parameters": int(sum(p.numel() for p in anonymizer.parameters())),
            "privacy_loss": config.privacy_loss,
            "helpers": config.helpers,
            "verifier_family": type(data.verifier).__name__,
        },
    }
