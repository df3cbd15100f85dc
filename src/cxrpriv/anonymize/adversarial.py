"""The anonymizer's training, piece by piece: patient batches, the privacy term, the two-player step, identity
pretraining, and the validation that picks the kept epoch.

**Batches** hold ``films_per_patient`` films of each of several patients, so every batch has same-patient
pairs. The privacy term scores every (anonymized film i, original film j) pair of the batch with i != j: a
film is never compared with its own original, because the attack the evaluation runs (and a data recipient
could run) links a released film to the patient's *other* films.

**The step** (``helpers="updated"``, as PriCheXy-Net): the generator takes an Adam step on
``utility_weight * utility + privacy_weight * privacy``, the helpers judging in eval mode (as they would
attack); then the verifier takes an Adam step on the same (detached) anonymized films against the originals
with the true labels (balanced BCE on its ``score``; for the metric embedder that is its calibrated cosine
logit), and the classifier an SGD step on the anonymized films with its label-noise-corrected loss. With
``helpers="frozen"`` only the generator steps.

**Validation** always uses the *frozen* trained verifier and classifier: the anonymized validation films are
attacked against the original validation films with :func:`cxrpriv.reid.attack.attack` (verification AUC,
retrieval), and the classifier's mean AUC on the anonymized films is measured against the text-mined labels.
The kept epoch maximizes ``score = utility_weight * classifier AUC - privacy_weight * |re-ID AUC - 0.5|``, not
the total validation loss as published: the published privacy term can fall without the AUC moving (a
uniform shift of the logits), the terms of the loss are in incomparable units, and a re-ID AUC far *below*
0.5 is as identifying as one far above (an attacker flips its decision), which only the distance from chance
says. This is a training diagnostic, not the privacy claim: a frozen attacker predicts an adaptive one poorly
(docs and the evaluate stage retrain the attacker on anonymized films).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from cxrpriv.anonymize.config import TrainAnonymizerConfig
from cxrpriv.anonymize.data import VALIDATION_PAIRS_PER_PATIENT, AnonymizerData
from cxrpriv.anonymize.generator import Anonymizer
from cxrpriv.anonymize.privacy_loss import cosine_similarities, paper_privacy_loss, rank_privacy_loss
from cxrpriv.anonymize.warp import displacement_pixels
from cxrpriv.classify.losses import finding_loss
from cxrpriv.evaluation.roc import roc_auc
from cxrpriv.reid.attack import AttackSettings, FilmSet, attack
from cxrpriv.reid.embedding import CosineEmbedder
from cxrpriv.reid.pair_model import PairModel
from cxrpriv.reid.pairs import patient_groups
from cxrpriv.training.image_bank import ImageBank
from cxrpriv.training.loop import StateGroup
from cxrpriv.training.seeding import epoch_rng, stream_seed

# Temperatures of the rank term: cosines lie in [-1, 1], logits (the siamese head) are unbounded.
COSINE_TEMPERATURE = 0.1
LOGIT_TEMPERATURE = 1.0


@dataclass(frozen=True)
class Batch:
    rows: np.ndarray  # bank rows of the batch's films
    noise_seed: int  # seeds the noise channels of this step (drawn with the epoch's batches)


class PatientBatches:
    """One epoch's batches: patients in a seeded order, up to ``films_per_patient`` films of each, cut into
    full batches of ``batch_size`` films (a patient's films may straddle two batches; the remainder waits
    for the next epoch's order, so BatchNorm never sees a tiny batch)."""

    def __init__(
        self, config: TrainAnonymizerConfig, rows: np.ndarray, patients: np.ndarray, epoch: int
    ) -> None:
        self.epoch = epoch
        rng = epoch_rng(config.seed, epoch, "anonymizer-batches")
        per_patient = config.films_per_patient
        groups = patient_groups(patients)
        chosen = [
            g if len(g) <= per_patient else rng.choice(g, per_patient, replace=False)
            for g in (groups[i] for i in rng.permutation(len(groups)))
        ]
        films = rows[np.concatenate(chosen)] if chosen else rows[:0]
        size = config.batch_size
        n = len(films) // size
        if n == 0 and len(films) >= 2 * per_patient:
            # A train split smaller than one batch (tiny cohorts): one batch of everything drawn.
            parts = [films]
        else:
            parts = [films[i * size : (i + 1) * size] for i in range(n)]
        cap = config.max_steps_per_epoch
        self.parts = parts[:cap] if cap else parts
        self.noise_seeds = rng.integers(0, 2**63 - 1, size=max(len(self.parts), 1))

    def __len__(self) -> int:
        return len(self.parts)

    @property
    def images(self) -> int:
        return int(sum(len(p) for p in self.parts))

    def __iter__(self) -> Iterator[Batch]:
        for part, seed in zip(self.parts, self.noise_seeds, strict=False):
            yield Batch(part, int(seed))


def _pair_masks(identity: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Same-patient matrix [B, B] and the off-diagonal mask (a film is not paired with its own original)."""
    same = identity[:, None] == identity[None, :]
    off = ~torch.eye(len(identity), dtype=torch.bool, device=identity.device)
    return same, off


def pair_scores(verifier: PairModel, emb_anon: torch.Tensor, emb_orig: torch.Tensor) -> torch.Tensor:
    """The verifier's logits [Ba, Bo] of every (anonymized, original) pair (both families broadcast)."""
    return verifier.score(emb_anon[:, None], emb_orig[None, :]).float()


def privacy_term(
    verifier: PairModel,
    emb_anon: torch.Tensor,
    emb_orig: torch.Tensor,
    identity: torch.Tensor,
    kind: str,
    *,
    surrogate: str = "softplus",
) -> torch.Tensor:
    """The generator's privacy loss on a batch: ``paper`` (softplus of every pair's logit) or ``rank`` (a
    smooth AUC of same- vs different-patient pairs: cosines for the metric embedder, logits otherwise)."""
    same, off = _pair_masks(identity)
    if kind == "paper":
        return paper_privacy_loss(pair_scores(verifier, emb_anon, emb_orig)[off])
    if kind != "rank":
        raise ValueError(f"privacy_loss must be paper or rank, not {kind!r}")
    if isinstance(verifier, CosineEmbedder):
        scores = cosine_similarities(emb_anon.float(), emb_orig.float(), pairwise=True)
        temperature = COSINE_TEMPERATURE
    else:
        scores, temperature = pair_scores(verifier, emb_anon, emb_orig), LOGIT_TEMPERATURE
    return rank_privacy_loss(scores[off], same[off], temperature, surrogate)


def balanced_pair_bce(logits: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """BCE with same- and different-patient pairs weighted to half the loss each (far more of the latter)."""
    target = same.float()
    losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    n_same, n_other = target.sum(), (1 - target).sum()
    if n_same == 0 or n_other == 0:
        return losses.mean()
    return 0.5 * (losses * target).sum() / n_same + 0.5 * (losses * (1 - target)).sum() / n_other


def _film_seeds(seed: int, image_ids: np.ndarray) -> list[int]:
    """One noise seed per film, from its image id: its validation warp does not depend on its batch."""
    return [stream_seed(seed, 0, f"noise:{image_id}") for image_id in image_ids]


def validation_score(config: TrainAnonymizerConfig, classifier_auc: float, reid_auc: float) -> float:
    """The validation score that picks the kept epoch (the module docstring says why this one)."""
    utility = 0.0 if math.isnan(classifier_auc) else config.utility_weight * classifier_auc
    privacy = 0.0 if math.isnan(reid_auc) else config.privacy_weight * abs(reid_auc - 0.5)
    return utility - privacy


class AdversarialTraining:
    """Everything the epoch loop needs for both phases (identity pretraining, then the two-player game)."""

    def __init__(self, config: TrainAnonymizerConfig, data: AnonymizerData, anonymizer: Anonymizer) -> None:
        self.config = config
        self.data = data
        self.anonymizer = anonymizer
        accelerator = data.accelerator
        self.accelerator = accelerator
        updated = config.helpers == "updated"
        # The partners the generator trains against: the trained models themselves when frozen, copies that
        # learn alongside when updated. Validation always uses data.verifier / data.classifier (frozen).
        self.verifier = copy.deepcopy(data.verifier).requires_grad_(True) if updated else data.verifier
        self.classifier = copy.deepcopy(data.classifier).requires_grad_(True) if updated else data.classifier
        players: dict[str, nn.Module] = {"anonymizer": anonymizer}
        if updated:
            players.update(verifier=self.verifier, classifier=self.classifier)
        self.players = nn.ModuleDict(players)  # what the loop trains, checkpoints and keeps the best of
        self.scaler = accelerator.grad_scaler()
        optimizers: dict[str, Any] = {
            "anonymizer": torch.optim.Adam(anonymizer.parameters(), lr=config.learning_rate),
        }
        if updated:
            optimizers["verifier"] = torch.optim.Adam(self.verifier.parameters(), lr=config.learning_rate)
            optimizers["classifier"] = torch.optim.SGD(self.classifier.parameters(), lr=config.learning_rate)
        self.optimizers = StateGroup(**optimizers, scaler=self.scaler)
        self.settings = AttackSettings(
            seed=config.seed,
            max_pairs_per_patient=VALIDATION_PAIRS_PER_PATIENT,
            n_boot=0,  # per epoch the point value is enough; the final report bootstraps
            confidence=0.95,
            eval_batch_size=config.eval_batch_size,
            retrieval_k=100,
            retrieval_chunk=1024,
        )
        split = data.validation_split
        self.val_rows = data.in_bank[split]
        self.val_patients = data.bank_patients[self.val_rows]
        self.val_ids = data.image_ids(split)
        self.val_seeds = _film_seeds(config.seed, self.val_ids)
        self._gallery: FilmSet | None = None

    # --- batches ------------------------------------------------------------------------------------------

    def batches(self, epoch: int) -> PatientBatches:
        train = self.data.in_bank["train"]
        return PatientBatches(self.config, train, self.data.bank_patients[train], epoch)

    def _inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Generator | None]:
        images = self.data.bank.batch(batch.rows)
        _, identity = np.unique(self.data.bank_patients[batch.rows], return_inverse=True)
        noise = None
        if self.anonymizer.noise_channels:
            noise = torch.Generator(device="cpu")
            noise.manual_seed(batch.noise_seed)
        return images, torch.as_tensor(identity, device=images.device), noise

    # --- identity pretraining ----------------------------------------------------------------------------

    def pretrain_loss(self, batch: Batch) -> torch.Tensor:
        images, _, noise = self._inputs(batch)
        return self.anonymizer.raw_field(images, generator=noise).square().mean()

    def pretrain_validate(self) -> dict[str, float]:
        total, count = 0.0, 0
        for images, seeds in self._validation_chunks():
            noise = self.anonymizer.seeded_noise(seeds, images) if self.anonymizer.noise_channels else None
            total += float(self.anonymizer.raw_field(images, noise=noise).square().sum())
            count += images.numel() * 2
        return {"loss": total / max(count, 1)}

    # --- the two-player step -----------------------------------------------------------------------------

    def step(self, batch: Batch) -> dict[str, float]:
        c = self.config
        images, identity, noise = self._inputs(batch)
        labels = self.data.labels[torch.as_tensor(batch.rows, device=images.device)]
        optimizers = self.optimizers
        updated = c.helpers == "updated"
        if updated:  # the helpers judge the generator as they would attack: eval mode
            self.verifier.eval()
            self.classifier.eval()
        optimizers["anonymizer"].zero_grad(set_to_none=True)
        with self.accelerator.autocast():
            anonymized, _ = self.anonymizer(images, generator=noise)
            utility = finding_loss(
                self.classifier(self.data.classifier_view(anonymized)),
                labels,
                self.data.channel,
                self.data.correction,
            )
            with torch.no_grad():
                emb_orig = self.verifier.embed(self.data.verifier_view(images))
            emb_anon = self.verifier.embed(self.data.verifier_view(anonymized))
            privacy = privacy_term(
                self.verifier, emb_anon, emb_orig, identity, c.privacy_loss, surrogate=c.privacy_surrogate
            )
            loss = c.utility_weight * utility + c.privacy_weight * privacy
        self.scaler.scale(loss).backward()
        self.scaler.step(optimizers["anonymizer"])
        metrics = {
            "loss": float(loss.detach()),
            "utility": float(utility.detach()),
            "privacy": float(privacy.detach()),
        }
        if updated:
            metrics.update(self._helper_step(anonymized.detach(), images, identity, labels))
        self.scaler.update()
        return metrics

    def _helper_step(
        self, anonymized: torch.Tensor, images: torch.Tensor, identity: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, float]:
        """The published partners' steps, on the anonymized films of the generator's step."""
        self.verifier.train()
        self.classifier.train()
        # The generator's backward pass left gradients in the helpers: start from zero.
        self.optimizers["verifier"].zero_grad(set_to_none=True)
        self.optimizers["classifier"].zero_grad(set_to_none=True)
        same, off = _pair_masks(identity)
        with self.accelerator.autocast():
            emb_anon = self.verifier.embed(self.data.verifier_view(anonymized))
            emb_orig = self.verifier.embed(self.data.verifier_view(images))
            verifier_loss = balanced_pair_bce(pair_scores(self.verifier, emb_anon, emb_orig)[off], same[off])
            classifier_loss = finding_loss(
                self.classifier(self.data.classifier_view(anonymized)),
                labels,
                self.data.channel,
                self.data.correction,
            )
        # Disjoint parameters: one backward pass serves both optimizers.
        self.scaler.scale(verifier_loss + classifier_loss).backward()
        self.scaler.step(self.optimizers["verifier"])
        self.scaler.step(self.optimizers["classifier"])
        return {
            "verifier_loss": float(verifier_loss.detach()),
            "classifier_loss": float(classifier_loss.detach()),
        }

    # --- validation --------------------------------------------------------------------------------------

    def _validation_chunks(self) -> Iterator[tuple[torch.Tensor, list[int]]]:
        batch = self.config.eval_batch_size
        for start in range(0, len(self.val_rows), batch):
            part = slice(start, start + batch)
            yield self.data.bank.batch(self.val_rows[part]), self.val_seeds[part]

    def anonymize_validation(self, anonymizer: Anonymizer | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The validation films anonymized (rounded to the bank's grey levels, as a release would store
        them) [n, 1, S, S], and each film's displacement [n, 2, S, S]; no gradients, eval mode."""
        anonymizer = anonymizer or self.anonymizer
        was_training = anonymizer.training
        anonymizer.eval()
        films, fields = [], []
        scale = self.data.bank.scale
        with torch.no_grad(), self.accelerator.autocast():
            for images, seeds in self._validation_chunks():
                noise = anonymizer.seeded_noise(seeds, images) if anonymizer.noise_channels else None
                warped, displacement = anonymizer(images, noise=noise)
                films.append((warped.float().clamp(0, 1) * scale).round() / scale)
                fields.append(displacement.float())
        anonymizer.train(was_training)
        return torch.cat(films), torch.cat(fields)

    def _film_set(self, images: torch.Tensor) -> FilmSet:
        with torch.no_grad():
            viewed = torch.cat(
                [
                    self.data.verifier_view(images[i : i + self.config.eval_batch_size])
                    for i in range(0, len(images), self.config.eval_batch_size)
                ]
            )
        bank = ImageBank(viewed[:, 0].float(), 1.0)
        return FilmSet(bank, np.arange(len(images)), self.val_patients, self.val_ids)

    def originals(self) -> torch.Tensor:
        return torch.cat([images for images, _ in self._validation_chunks()])

    def evaluate(self, films: torch.Tensor, n_boot: int = 0) -> tuple[dict[str, float], Any]:
        """Attack ``films`` (anonymized validation films, or the originals) against the original validation
        films with the frozen verifier, and classify them with the frozen classifier."""
        if self._gallery is None:
            self._gallery = self._film_set(self.originals())
        settings = self.settings if n_boot == 0 else _with_boot(self.settings, n_boot)
        result = attack(
            self.data.verifier,
            self._film_set(films),
            settings,
            gallery=self._gallery,
            accelerator=self.accelerator,
            purpose="validation",
        )
        classifier_auc, utility_loss = self._utility(films)
        reid_auc = float(result.verification["auc"]["value"])
        metrics = {
            "score": validation_score(self.config, classifier_auc, reid_auc),
            "reid_auc": reid_auc,
            "reid_auc_distance": abs(reid_auc - 0.5),
            "reid_precision_at_1": float(result.retrieval["precision_at_1"]),
            "reid_map_at_r": float(result.retrieval["map_at_r"]),
            "classifier_auc": classifier_auc,
            "utility_loss": utility_loss,
        }
        return metrics, result

    def _utility(self, films: torch.Tensor) -> tuple[float, float]:
        classifier = self.data.classifier
        batch = self.config.eval_batch_size
        with torch.no_grad(), self.accelerator.autocast():
            logits = torch.cat(
                [
                    classifier(self.data.classifier_view(films[i : i + batch])).float()
                    for i in range(0, len(films), batch)
                ]
            )
        labels = self.data.labels[torch.as_tensor(self.val_rows, device=logits.device)]
        loss = float(finding_loss(logits, labels, self.data.channel, self.data.correction))
        probabilities = torch.sigmoid(logits).cpu().numpy()
        truth = labels.cpu().numpy()
        aucs = [roc_auc(truth[:, j], probabilities[:, j]) for j in range(truth.shape[1])]
        aucs = [a for a in aucs if not math.isnan(a)]
        return (float(np.mean(aucs)) if aucs else math.nan), loss

    def validate(self) -> dict[str, float]:
        films, fields = self.anonymize_validation()
        metrics, _ = self.evaluate(films)
        return {**metrics, **displacement_summary(fields, self.data.size)}


def displacement_summary(fields: torch.Tensor, size: int) -> dict[str, float]:
    """Largest displacement component and mean displacement length of the fields, in pixels."""
    length = (fields * (size / 2)).square().sum(dim=1).sqrt()
    return {
        "displacement_max_px": displacement_pixels(fields, size),
        "displacement_mean_px": float(length.mean()) if length.numel() else 0.0,
    }


def _with_boot(settings: AttackSettings, n_boot: int) -> AttackSettings:
    return dataclasses.replace(settings, n_boot=n_boot)
