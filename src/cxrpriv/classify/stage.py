"""The ``train_classifier`` stage as a function: loaded inputs and a config in, a trained model and its
evaluation out. No file is written here except checkpoints (:mod:`cxrpriv.classify.run` does the rest).

Every random draw (initialization, shuffling, augmentation) comes from streams seeded by the run seed and
the epoch, so the result does not depend on whether the run was interrupted and resumed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.classify.data import ClassifierData
from cxrpriv.classify.evaluation import auc_report, roc_auc
from cxrpriv.classify.losses import comorbidity_penalty, dice_bce, finding_loss
from cxrpriv.classify.model import Classifier, build_classifier, model_spec
from cxrpriv.config import config_to_dict
from cxrpriv.ingest.shards import ShardReader
from cxrpriv.training.accelerator import Accelerator
from cxrpriv.training.augment import ZoomShiftCrop
from cxrpriv.training.checkpoint import CheckpointStore
from cxrpriv.training.image_bank import ImageBank
from cxrpriv.training.loop import FitResult, LoopSettings, fit
from cxrpriv.training.seeding import epoch_rng, seed_everything


@dataclass
class ClassifierResult:
    model: Classifier
    spec: dict[str, Any]  # {"builder", "kwargs"} for the registry
    fit: FitResult
    predictions: dict[str, np.ndarray]  # split -> (n, k) probabilities, rows in data.<split> order
    evaluation: dict[str, Any]  # {"clean": auc_report | None, "noisy": auc_report}
    metrics: dict[str, float]
    timings: dict[str, float] = field(default_factory=dict)


def fingerprint(config: ClassifierConfig, data: ClassifierData) -> str:
    """What a checkpoint must match to be resumed: the config and the exact training inputs."""
    digest = hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True, default=str).encode())
    digest.update(data.manifest["image_id"].astype(str).str.cat(sep=",").encode())
    digest.update(data.mined.tobytes())
    if data.channel is not None:
        digest.update(data.channel.sensitivity.tobytes() + data.channel.false_positive_rate.tobytes())
    return digest.hexdigest()[:20]


@dataclass
class _Banked:
    """The run's images and targets on the accelerator: the bank holds train, validation and test rows in
    that order, from ``offset[split]`` on."""

    bank: ImageBank
    offset: dict[str, int]
    mined: torch.Tensor  # (n, k) text-mined labels, manifest order
    masks: torch.Tensor | None  # (n_train, 3, s, s) anatomy masks, train order
    comorbidity: torch.Tensor | None  # (k, k)


def _bank(
    config: ClassifierConfig, data: ClassifierData, ingest_dir: Path, device: torch.device, progress: bool
) -> _Banked:
    reader = ShardReader(Path(ingest_dir), data.manifest)
    rows = np.concatenate([data.train, data.validation, data.test])
    bank = ImageBank.from_shards(
        reader, rows, device=device, size=config.image_size or None, progress=progress
    )
    return _Banked(
        bank=bank,
        offset={"train": 0, "validation": len(data.train), "test": len(data.train) + len(data.validation)},
        mined=torch.as_tensor(np.array(data.mined), device=device),
        masks=None if data.masks is None else torch.as_tensor(np.array(data.masks), device=device),
        comorbidity=None if data.comorbidity is None else torch.as_tensor(data.comorbidity, device=device),
    )


class _Task:
    """What the epoch loop calls for the classifier: the epoch's batches, a batch's loss, validation; and
    the predictions of a split."""

    def __init__(
        self,
        config: ClassifierConfig,
        data: ClassifierData,
        banked: _Banked,
        model: Classifier,
        device: torch.device,
    ) -> None:
        self.config, self.data, self.banked, self.model, self.device = config, data, banked, model, device
        self.augmenter = ZoomShiftCrop(
            size=banked.bank.size,
            crop=config.crop_size or banked.bank.size,
            scale=config.augment_scale,
            shift=config.augment_shift,
        )

    def finding_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return finding_loss(logits, labels, self.data.channel, self.config.prior_correction)

    def train_batches(self, epoch: int) -> list[dict[str, Any]]:
        config, n = self.config, len(self.data.train)
        order = epoch_rng(config.seed, epoch, "shuffle").permutation(n)
        params = self.augmenter.draw(epoch_rng(config.seed, epoch, "augment"), n)
        # Full batches only: BatchNorm statistics of a 1-image remainder batch are meaningless.
        n_batches = max(len(order) // config.batch_size, 1)
        if config.max_steps_per_epoch:
            n_batches = min(n_batches, config.max_steps_per_epoch)
        return [
            {"positions": order[i * config.batch_size : (i + 1) * config.batch_size], "params": params}
            for i in range(n_batches)
        ]

    def training_loss(self, batch: dict[str, Any]) -> torch.Tensor:
        config, banked, positions = self.config, self.banked, batch["positions"]
        images = banked.bank.batch(banked.offset["train"] + positions)
        masks = None if banked.masks is None else banked.masks[torch.as_tensor(positions, device=self.device)]
        images, masks = self.augmenter.apply(images, batch["params"][positions], masks)
        labels = banked.mined[torch.as_tensor(self.data.train[positions], device=self.device)]
        logits, mask_logits = self.model.forward_with_masks(images, masks=masks is not None)
        loss = self.finding_loss(logits, labels)
        if banked.comorbidity is not None and config.comorbidity_weight > 0:
            loss = loss + config.comorbidity_weight * comorbidity_penalty(
                torch.sigmoid(logits.float()), banked.comorbidity
            )
        if mask_logits is not None and masks is not None:
            loss = loss + config.anatomy_weight * dice_bce(mask_logits, masks)
        return loss

    def predict(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities and logits of a split (the model must be in eval mode)."""
        n, batch = len(getattr(self.data, split)), self.config.eval_batch_size
        out = []
        for start in range(0, n, batch):
            index = np.arange(start, min(start + batch, n)) + self.banked.offset[split]
            out.append(self.model(self.augmenter.center(self.banked.bank.batch(index))).float())
        logits = torch.cat(out) if out else torch.zeros(0, len(self.data.findings), device=self.device)
        return torch.sigmoid(logits).cpu().numpy(), logits.cpu().numpy()

    def validate(self) -> dict[str, float]:
        probabilities, logits = self.predict("validation")
        labels = self.data.mined[self.data.validation]
        loss = float(self.finding_loss(torch.as_tensor(logits), torch.as_tensor(labels)))
        aucs = [roc_auc(labels[:, j], probabilities[:, j]) for j in range(labels.shape[1])]
        aucs = [a for a in aucs if not np.isnan(a)]
        return {"loss": loss, "auc_mined": float(np.mean(aucs)) if aucs else float("nan")}


def _loop_settings(config: ClassifierConfig, progress: bool) -> LoopSettings:
    return LoopSettings(
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=config.seed,
        monitor=config.monitor,
        mode="max" if config.monitor == "auc_mined" else "min",
        progress=progress,
        description="classifier",
    )


def train_classifier(
    config: ClassifierConfig,
    data: ClassifierData,
    ingest_dir: Path,
    accelerator: Accelerator,
    *,
    checkpoint_dir: Path | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> ClassifierResult:
    started = time.perf_counter()
    seed_everything(config.seed)
    banked = _bank(config, data, ingest_dir, accelerator.device, progress)
    loaded = time.perf_counter()
    # Built after the seed, so the initialization is the run's (and the same on resume).
    model = build_classifier(**model_spec(config)["kwargs"]).to(accelerator.device)
    optimizer = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    task = _Task(config, data, banked, model, accelerator.device)
    store = (
        None if checkpoint_dir is None else CheckpointStore(Path(checkpoint_dir), fingerprint(config, data))
    )
    result = fit(
        model,
        optimizer,
        train_batches=task.train_batches,
        training_loss=task.training_loss,
        validate=task.validate,
        accelerator=accelerator,
        settings=_loop_settings(config, progress),
        checkpoint=store,
        on_epoch_end=on_epoch_end,
    )
    trained = time.perf_counter()
    model.load_state_dict(result.best_state)
    model.eval()
    with torch.no_grad(), accelerator.autocast():
        predictions = {split: task.predict(split)[0] for split in ("validation", "test")}
    evaluation = evaluate(config, data, predictions["test"])
    timings = _timings(config, result, loaded - started, trained - loaded, time.perf_counter() - trained)
    return ClassifierResult(
        model=model.cpu(),
        spec=model_spec(config),
        fit=result,
        predictions=predictions,
        evaluation=evaluation,
        metrics=summary_metrics(evaluation, result, timings),
        timings=timings,
    )


def evaluate(
    config: ClassifierConfig, data: ClassifierData, test_probabilities: np.ndarray
) -> dict[str, Any]:
    """AUCs of the test predictions against the text-mined labels and, when known, the clean labels."""
    if len(data.test) == 0:
        return {"clean": None, "noisy": None}
    patients = data.manifest["patient_id"].astype(str).to_numpy()[data.test]
    report_aucs = functools.partial(
        auc_report,
        min_positives=config.min_eval_positives,
        n_boot=config.n_boot,
        confidence=config.confidence,
        seed=config.seed,
    )
    noisy = report_aucs(data.mined[data.test], test_probabilities, data.findings, patients)
    clean = None
    if data.clean is not None:
        labels = data.clean[data.test]
        known = (labels != 255).all(axis=1)  # re-read tables cover a subset
        clean = report_aucs(labels[known], test_probabilities[known], data.findings, patients[known])
        clean["source"] = data.clean_source
        # Calibration in the large: does the mean predicted probability match the true prevalence? A network
        # trained on text-mined labels predicts the mined prevalence; the forward correction, the true one.
        predicted = test_probabilities[known].mean(axis=0)
        prevalence = labels[known].mean(axis=0)
        clean["prevalence_error"] = float(np.mean(np.abs(predicted - prevalence)))
        for j, finding in enumerate(data.findings):
            clean["findings"][finding]["mean_probability"] = float(predicted[j])
            clean["findings"][finding]["prevalence"] = float(prevalence[j])
    return {"clean": clean, "noisy": noisy}


def _timings(
    config: ClassifierConfig, result: FitResult, load_s: float, train_s: float, eval_s: float
) -> dict[str, float]:
    epochs = [r for r in result.history]
    steps = sum(r["train_steps"] for r in epochs)
    step_seconds = sum(r["train_seconds"] for r in epochs)
    data_seconds = sum(r["data_seconds"] for r in epochs)
    return {
        "seconds_load_images": load_s,
        "seconds_train": train_s,
        "seconds_evaluate": eval_s,
        # The verifier's names (its metrics' "training" section): the stages compare key by key.
        "train_images_per_s": steps * config.batch_size / step_seconds if step_seconds else 0.0,
        "data_seconds": data_seconds,
        "epochs": float(len(epochs)),
    }


def summary_metrics(
    evaluation: dict[str, Any], result: FitResult, timings: dict[str, float]
) -> dict[str, float]:
    """The flat numbers for DVC and MLflow (per-finding AUCs included; None values left out)."""
    metrics: dict[str, float] = {"best_epoch": float(result.best_epoch), **timings}
    if result.best_epoch:
        metrics["best_val_score"] = float(result.best_score)
    for kind, report in evaluation.items():
        if report is None:
            continue
        values = {
            f"{kind}_mean_auc": report["mean_auc"],
            f"{kind}_mean_auc_low": (report["mean_auc_ci"] or [None, None])[0],
            f"{kind}_mean_auc_high": (report["mean_auc_ci"] or [None, None])[1],
            f"{kind}_worst_auc": report["worst_auc"],
            f"{kind}_findings_in_mean": report["n_findings_in_mean"],
            f"{kind}_prevalence_error": report.get("prevalence_error"),
        }
        values.update({f"{kind}_auc_{f}": e["auc"] for f, e in report["findings"].items()})
        metrics.update({k: float(v) for k, v in values.items() if v is not None})
    return metrics
