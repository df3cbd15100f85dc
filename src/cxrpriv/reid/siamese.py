"""Training the siamese verifier: binary cross-entropy on the pair logit, early stopping on the validation
pairs' loss.

Two ways to draw the training pairs (``pair_sampling``):

- ``balanced`` (as published, Packhaeuser et al. 2022): independent same-/different-patient pairs, as many
  of each. Every pair is judged on its own, against one threshold; nothing asks a film to be closer to its
  own patient than to the most similar stranger, which is what the linkage attack needs.
- ``batch_all``: batches of several patients with several films each, every pair in the batch scored
  (:class:`PatientBatches`, :func:`all_pairs_loss`), so every film meets its hardest strangers in each step.
"""

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
from cxrpriv.reid.model import Verifier, build_verifier
from cxrpriv.reid.pairs import epoch_pairs, patient_groups
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

    sampler = PatientBatches if config.pair_sampling == "batch_all" else PairBatches

    def batches(epoch: int) -> PairBatches | PatientBatches:
        return sampler(config, data.bank, data.in_bank["train"], data.train_patients, epoch)

    def training_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if config.pair_sampling == "batch_all":
            return all_pairs_loss(model, *batch)
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
        training_data={"train_pairs_per_epoch": _pairs_per_epoch(batches(1))},
        validation_pairs=len(val.pairs),
        validation_split=val.split,
    )


class PatientBatches:
    """One epoch's ``batch_all`` batches: patients in a seeded order, ``films_per_patient`` of each
    patient's films (all if fewer), as many patients per step as fill ``batch_size`` films. The loss then
    scores every pair inside the batch, so each film is compared with its own patient's other films *and*
    with every other patient's at once, the comparison retrieval makes."""

    def __init__(
        self, config: TrainReidConfig, bank: ImageBank, rows: np.ndarray, patients: np.ndarray, epoch: int
    ) -> None:
        self.config = config
        self.bank = bank
        self.rows = rows
        self.patients = patients
        self.epoch = epoch
        self.rng = epoch_rng(config.seed, epoch, "augment")
        self.batches = self._draw(epoch_rng(config.seed, epoch, "pairs"))
        cap = config.max_steps_per_epoch
        self.steps = min(len(self.batches), cap) if cap else len(self.batches)

    def _draw(self, rng: np.random.Generator) -> list[np.ndarray]:
        groups = patient_groups(self.patients)
        per_patient = self.config.films_per_patient
        per_step = max(2, self.config.batch_size // per_patient)
        chosen = [
            rows if len(rows) <= per_patient else rng.choice(rows, per_patient, replace=False)
            for rows in (groups[i] for i in rng.permutation(len(groups)))
        ]
        return [np.concatenate(chosen[i : i + per_step]) for i in range(0, len(chosen), per_step)]

    def __len__(self) -> int:
        return self.steps

    @property
    def images(self) -> int:
        return int(sum(len(b) for b in self.batches[: self.steps]))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        c = self.config
        for films in self.batches[: self.steps]:
            images = random_affine(
                self.bank.batch(self.rows[films]),
                self.rng,
                c.augment_shift,
                c.augment_scale,
                c.augment_rotation_deg,
            )
            _, identity = np.unique(self.patients[films], return_inverse=True)
            yield images, torch.from_numpy(identity).to(self.bank.device)


def all_pairs_loss(model: Verifier, images: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy over every pair of films in the batch, same- and different-patient pairs
    weighted to half the loss each (a batch has far more of the latter)."""
    features = model.embed(images)
    first, second = torch.triu_indices(len(images), len(images), offset=1, device=images.device)
    logits = model.score(features[first], features[second]).float()
    same = (identity[first] == identity[second]).float()
    losses = F.binary_cross_entropy_with_logits(logits, same, reduction="none")
    n_same, n_other = same.sum(), (1 - same).sum()
    if n_same == 0 or n_other == 0:  # a batch of one kind of pair only: plain mean
        return losses.mean()
    return 0.5 * (losses * same).sum() / n_same + 0.5 * (losses * (1 - same)).sum() / n_other


def _pairs_per_epoch(batches: PairBatches | PatientBatches) -> int:
    """Film pairs the loss scores in one epoch (all of them, both kinds)."""
    if isinstance(batches, PairBatches):
        return len(batches.pairs)
    return int(sum(len(b) * (len(b) - 1) // 2 for b in batches.batches[: batches.steps]))
