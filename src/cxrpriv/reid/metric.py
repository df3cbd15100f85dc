"""Training the metric-learning attacker: every training film classified among the training patients with
the CosFace loss (see cxrpriv.reid.embedding), AdamW with a cosine learning-rate decay over ``max_epochs``,
the best epoch chosen by the validation split's retrieval mAP@R, and the logit calibrated on validation pairs.

Why these choices, measured on the default cohort, are in docs/verifier.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from cxrpriv.evaluation.roc import roc_auc
from cxrpriv.reid.attack import embed_bank
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.reid.data import ReidData
from cxrpriv.reid.embedding import CosineEmbedder, MetricTrainer, build_embedder
from cxrpriv.reid.retrieval import retrieval_metrics
from cxrpriv.reid.training import Trainer
from cxrpriv.training.augment import random_affine
from cxrpriv.training.image_bank import ImageBank
from cxrpriv.training.seeding import epoch_rng


def cosine_learning_rate(base: float, step: int, total: int) -> float:
    """Half a cosine from ``base`` at step 0 down to 0 at step ``total``."""
    return base * 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


class FilmBatches:
    """One epoch's training batches: every training film once, in a seeded order, augmented, with the
    index of its patient; the learning rate follows the cosine schedule step by step."""

    def __init__(
        self,
        config: TrainReidConfig,
        bank: ImageBank,
        rows: np.ndarray,
        classes: np.ndarray,
        epoch: int,
        *,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.config = config
        self.bank = bank
        self.rows = rows
        self.classes = classes
        self.epoch = epoch
        self.optimizer = optimizer
        self.order = epoch_rng(config.seed, epoch, "order").permutation(len(rows))
        self.rng = epoch_rng(config.seed, epoch, "augment")
        self.steps = self.steps_per_epoch(config, len(rows))

    @staticmethod
    def steps_per_epoch(config: TrainReidConfig, n_films: int) -> int:
        steps = math.ceil(n_films / config.batch_size)
        if n_films > 1 and n_films % config.batch_size == 1:
            # A last batch of one film cannot be batch-normalized; that film comes in the next epoch's order.
            steps -= 1
        return min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch else steps

    def __len__(self) -> int:
        return self.steps

    @property
    def images(self) -> int:
        return min(len(self.rows), self.steps * self.config.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        c = self.config
        total = self.steps * c.max_epochs
        for step in range(self.steps):
            if self.optimizer is not None:
                rate = cosine_learning_rate(c.learning_rate, (self.epoch - 1) * self.steps + step, total)
                for group in self.optimizer.param_groups:
                    group["lr"] = rate
            part = self.order[step * c.batch_size : (step + 1) * c.batch_size]
            images = random_affine(
                self.bank.batch(self.rows[part]),
                self.rng,
                c.augment_shift,
                c.augment_scale,
                c.augment_rotation_deg,
            )
            yield images, torch.from_numpy(self.classes[part]).to(self.bank.device)


def metric_trainer(config: TrainReidConfig, data: ReidData, model_kwargs: dict[str, Any]) -> Trainer:
    embedder = build_embedder(**model_kwargs)
    patients, classes = np.unique(data.train_patients, return_inverse=True)
    module = MetricTrainer(embedder, len(patients), config.cosine_scale, config.margin).to(data.bank.device)
    optimizer = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    val = data.validation_pairs(config)
    val_patients = data.patients(val.split)

    def validate() -> dict[str, float]:
        features = embed_bank(embedder, data.bank, config.eval_batch_size, val.rows, data.accelerator)
        cosine = _pair_cosines(features, val.pairs)
        ranking, _ = retrieval_metrics(
            features, val_patients, None, k=config.retrieval_k, chunk=config.retrieval_chunk
        )
        return {
            "auc": roc_auc(val.labels, cosine),
            "map_at_r": ranking["map_at_r"],
            "precision_at_1": ranking["precision_at_1"],
        }

    def batches(epoch: int) -> FilmBatches:
        return FilmBatches(config, data.bank, data.in_bank["train"], classes, epoch, optimizer=optimizer)

    def training_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        images, targets = batch
        return module(images, targets)

    def finish() -> dict[str, float]:
        features = embed_bank(embedder, data.bank, config.eval_batch_size, val.rows, data.accelerator)
        return calibrate(embedder, _pair_cosines(features, val.pairs), val.labels)

    return Trainer(
        module=module,
        attacker=embedder,
        optimizer=optimizer,
        batches=batches,
        training_loss=training_loss,
        validate=validate,
        monitor="map_at_r",
        mode="max",
        training_data={"train_films_per_epoch": len(classes), "train_classes": len(patients)},
        validation_pairs=len(val.pairs),
        validation_split=val.split,
        finish=finish,
    )


def _pair_cosines(features: torch.Tensor, pairs: np.ndarray) -> np.ndarray:
    index = torch.as_tensor(pairs, dtype=torch.long, device=features.device)
    return (features[index[:, 0]] * features[index[:, 1]]).sum(dim=1).cpu().numpy().astype(float)


def calibrate(embedder: CosineEmbedder, cosine: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Fit logit = slope * cosine + intercept to same-patient labels (one-feature logistic regression)."""
    from sklearn.linear_model import LogisticRegression

    if len(labels) == 0 or labels.min() == labels.max():
        return {
            "calibration_slope": float(embedder.slope),
            "calibration_intercept": float(embedder.intercept),
        }
    fit = LogisticRegression(C=1e4).fit(cosine.reshape(-1, 1), labels.astype(int))
    slope, intercept = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    embedder.calibrate(slope, intercept)
    return {"calibration_slope": slope, "calibration_intercept": intercept}
