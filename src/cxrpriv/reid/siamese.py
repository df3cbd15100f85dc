"""Training the siamese verifier: balanced same-/different-patient pairs, binary cross-entropy on the
pair logit, early stopping on the validation pairs' loss (Packhaeuser et al. 2022)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrpriv.evaluation.roc import roc_auc
from cxrpriv.reid.attack import embed_bank, pair_logits
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.reid.data import ReidData
from cxrpriv.reid.metrics import accuracy_at_half
from cxrpriv.reid.model import build_verifier
from cxrpriv.reid.pairs import epoch_pairs
from cxrpriv.reid.training import Trainer
from cxrpriv.training.augment import random_affine
from cxrpriv.training.image_bank import ImageBank
from cxrpriv.training.seeding import epoch_rng


class PairBatches:
    """One epoch's training batches: the pairs drawn for the epoch, gathered from the bank and augmented."""

    def __init__(
        self, config: TrainReidConfig, bank: ImageBank, rows: np.ndarray, patients: np.ndarray, epoch: int
    ) -> None:
        self.config = config
        self.bank = bank
        self.rows = rows  # bank index of each train image
        self.epoch = epoch
        self.pairs, self.labels = epoch_pairs(patients, config.max_pairs_per_patient, config.seed, epoch)
        self.rng = epoch_rng(config.seed, epoch, "augment")
        steps = math.ceil(len(self.pairs) / config.batch_size)
        self.steps = min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch else steps

    def __len__(self) -> int:
        return self.steps

    @property
    def images(self) -> int:
        return 2 * min(len(self.pairs), self.steps * self.config.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        c = self.config
        for step in range(self.steps):
            part = slice(step * c.batch_size, (step + 1) * c.batch_size)
            index = self.rows[self.pairs[part].T.reshape(-1)]  # first images, then second images
            images = random_affine(
                self.bank.batch(index), self.rng, c.augment_shift, c.augment_scale, c.augment_rotation_deg
            )
            n = len(index) // 2
            pairs = torch.cat([images[:n], images[n:]], dim=1)
            labels = torch.from_numpy(self.labels[part]).to(self.bank.device)
            yield pairs, labels


def siamese_trainer(config: TrainReidConfig, data: ReidData, model_kwargs: dict[str, Any]) -> Trainer:
    model = build_verifier(**model_kwargs).to(data.bank.device)
    val = data.validation_pairs(config)
    val_target = torch.from_numpy(val.labels).to(data.bank.device)

    def validate() -> dict[str, float]:
        features = embed_bank(model, data.bank, config.eval_batch_size, val.rows, data.accelerator)
        logits = pair_logits(model, features, val.pairs)
        loss = float(F.binary_cross_entropy_with_logits(logits, val_target))
        probabilities = torch.sigmoid(logits).cpu().numpy()
        # NaN when the validation pairs hold one class only
        auc = roc_auc(val.labels, probabilities)
        return {"loss": loss, "auc": auc, "accuracy": accuracy_at_half(val.labels, probabilities)}

    def batches(epoch: int) -> PairBatches:
        return PairBatches(config, data.bank, data.in_bank["train"], data.train_patients, epoch)

    def training_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        pairs, labels = batch
        return F.binary_cross_entropy_with_logits(model(pairs).float(), labels)

    return Trainer(
        module=model,
        attacker=model,
        optimizer=torch.optim.Adam(model.parameters(), lr=config.learning_rate),
        batches=batches,
        training_loss=training_loss,
        validate=validate,
        monitor="loss",
        mode="min",
        training_data={"train_pairs_per_epoch": len(batches(1).pairs)},
        validation_pairs=len(val.pairs),
        validation_split=val.split,
    )
