"""Typed configuration of the ``train_anonymizer`` stage (input/output paths and the device are CLI
options)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from cxrpriv.config import ConfigError, help_field


@dataclass(frozen=True)
class TrainAnonymizerConfig:
    seed: int = help_field("Seed of the weights, the batch draws and the noise channels.")
    widths: tuple[int, ...] = help_field(
        "U-Net channels per level, comma-separated (one stride-2 level per width after the first; image "
        "sides must be multiples of 2^(levels-1)). PriCheXy-Net: 32,64,128,256,512."
    )
    mu: float = help_field(
        "Bound of every displacement component, in normalized units (align_corners=False: mu * size / 2 "
        "pixels; PriCheXy-Net's 0.01 is 1.28 px at 256 px). 0: the identity."
    )
    smoothing_sigma: float = help_field(
        "Gaussian smoothing of the raw displacement field (not the grid), s.d. in pixels (0: none)."
    )
    smoothing_kernel: int = help_field("Length of the (odd) Gaussian smoothing kernel, in pixels.")
    noise_channels: int = help_field(
        "Noise channels fed to the generator beside the film (0: a deterministic warp, as published); at "
        "validation and release image i's noise comes from its own seed."
    )
    image_size: int = help_field(
        "Side in pixels the generator works at (and the anonymized films have); 0: the verifier's input "
        "size. The verifier and classifier get the anonymized film resized to their own input sizes."
    )
    batch_size: int = help_field("Films per training step (patients x films_per_patient).")
    films_per_patient: int = help_field(
        "Most films of one patient in a batch (>= 2), so that same-patient pairs exist inside every batch."
    )
    learning_rate: float = help_field(
        "Adam learning rate of the generator (and of the verifier when helpers are updated; the "
        "classifier then takes SGD steps at this rate, as published)."
    )
    pretrain_epochs: int = help_field(
        "Identity pretraining epochs before the adversarial ones: the generator's raw field is pulled to "
        "zero (MSE), so training starts from the identity (PriCheXy-Net: 200; 0: none)."
    )
    max_epochs: int = help_field("Most adversarial epochs; early stopping usually ends training before.")
    patience: int = help_field("Adversarial epochs without a better validation score before stopping.")
    max_steps_per_epoch: int = help_field(
        "Cap on training steps per epoch (0: every batch of the epoch); for short runs and timing."
    )
    privacy_loss: Literal["paper", "rank"] = help_field(
        "Privacy term on the verifier's scores of (anonymized film, original film) pairs in the batch: "
        "paper (PriCheXy-Net: mean -log(1 - sigmoid(logit)) over all pairs; a uniform shift of the logits "
        "satisfies it without changing the AUC) or rank (a smooth AUC of same- vs different-patient pairs: "
        "only a lower AUC satisfies it; cosines for the metric attacker, logits for the siamese one)."
    )
    privacy_surrogate: Literal["sigmoid", "softplus"] = help_field(
        "rank only: the smooth step of the AUC surrogate; sigmoid is closest to the AUC but gives almost "
        "no gradient while the attacker is sure, softplus keeps one there."
    )
    privacy_weight: float = help_field(
        "Weight of the privacy term in the generator's loss, and of |validation re-ID AUC - 0.5| in the "
        "validation score that picks the kept epoch."
    )
    utility_weight: float = help_field(
        "Weight of the utility term (the classifier's label-noise-corrected loss on anonymized films) in "
        "the generator's loss, and of the classifier's validation mean AUC in the validation score."
    )
    helpers: Literal["frozen", "updated"] = help_field(
        "frozen: the trained verifier and classifier stay fixed; updated (as published): after every "
        "generator step the verifier takes an Adam step on (anonymized, original) pairs with their true "
        "labels and the classifier an SGD step on the anonymized films. Validation always uses the frozen "
        "trained models."
    )
    mixed_precision: bool = help_field("Mixed precision on CUDA (bfloat16, else float16); ignored on CPU.")
    eval_batch_size: int = help_field("Films per forward pass at validation (no gradients).")

    def validate(self) -> None:
        checks = [
            (len(self.widths) >= 2 and min(self.widths) >= 1, "widths needs at least two levels, each >= 1"),
            (math.isfinite(self.mu) and self.mu >= 0, "mu must be a finite bound >= 0"),
            (self.smoothing_sigma >= 0, "smoothing_sigma must be >= 0 (0: no smoothing)"),
            (
                self.smoothing_kernel >= 1 and self.smoothing_kernel % 2 == 1,
                "smoothing_kernel must be an odd length >= 1",
            ),
            (self.noise_channels >= 0, "noise_channels must be >= 0"),
            (self.image_size == 0 or self.image_size >= 16, "image_size must be 0 (verifier size) or >= 16"),
            (self.films_per_patient >= 2, "films_per_patient must be at least 2"),
            (
                self.batch_size >= 2 * self.films_per_patient,
                "batch_size must hold at least two patients' films (2 x films_per_patient)",
            ),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.pretrain_epochs >= 0, "pretrain_epochs must be >= 0"),
            (self.max_epochs >= 1, "max_epochs must be at least 1"),
            (self.patience >= 1, "patience must be at least 1"),
            (self.max_steps_per_epoch >= 0, "max_steps_per_epoch must be >= 0 (0: no cap)"),
            (self.privacy_weight >= 0 and self.utility_weight >= 0, "loss weights must be >= 0"),
            (self.privacy_weight + self.utility_weight > 0, "at least one loss weight must be positive"),
            (self.eval_batch_size >= 1, "eval_batch_size must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"train_anonymizer: {message}")
