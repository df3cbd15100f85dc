"""Typed configuration of the ``train_classifier`` stage (input paths are CLI options, not params)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.config import ConfigError, help_field
from cxrpriv.networks.backbones import BACKBONES


@dataclass(frozen=True)
class ClassifierConfig:
    seed: int = help_field("Seed of initialization, shuffling, augmentation and the bootstrap.")
    findings: tuple[str, ...] = help_field(
        "Findings to classify (manifest columns), comma-separated; empty: the 14 ChestX-ray14 findings."
    )
    backbone: str = help_field(f"Trunk: {', '.join(BACKBONES)}.")
    width: int = help_field("small_cnn: channels of the first block (doubling per block).")
    depth: int = help_field("small_cnn: number of conv blocks (each halves the resolution).")
    stem: int = help_field(
        "small_cnn: patchify stem stride in front of the blocks (1: none); 4 makes 128 px cost like 32 px."
    )
    dropout: float = help_field("Dropout before the finding layer.")
    image_size: int = help_field("Images are area-resized to this size (0: the ingest size).")
    crop_size: int = help_field(
        "Random crop of this size in training, center crop at evaluation (0: no crop)."
    )
    augment_shift: float = help_field(
        "Random translation, fraction of the image size (no flips: laterality matters, the heart is left)."
    )
    augment_scale: float = help_field("Random zoom, +- this fraction.")
    batch_size: int = help_field("Training batch size.")
    learning_rate: float = help_field("Adam learning rate.")
    weight_decay: float = help_field("Adam weight decay.")
    max_epochs: int = help_field("Most epochs.")
    max_steps_per_epoch: int = help_field("Cap on batches per epoch (0: the whole training split).")
    patience: int = help_field("Epochs without improvement of the monitored metric before stopping.")
    monitor: Literal["auc_mined", "loss"] = help_field(
        "Early stopping on the validation loss on the text-mined labels (min) or the validation mean AUC "
        "against them (max; noisy on a small validation split). Clean labels are for evaluation only."
    )
    prior_correction: Literal["none", "forward", "soft"] = help_field(
        "Prior-aware training from priors.json: none (plain BCE on text-mined labels), forward (noise "
        "correction with the 2x2 noise matrix; the network estimates P(true | image)) or soft (BCE toward "
        "P(true | text-mined label))."
    )
    comorbidity_weight: float = help_field(
        "Weight of the comorbidity term pulling the batch's predicted P(j|i) toward the priors' (0: off)."
    )
    anatomy_weight: float = help_field(
        "Weight of the auxiliary lung/heart segmentation term (0: off; needs masks from the answer key)."
    )
    mixed_precision: bool = help_field("Mixed precision on CUDA (bfloat16 or float16); ignored on CPU.")
    eval_batch_size: int = help_field("Batch size of prediction.")
    min_eval_positives: int = help_field(
        "A finding enters the mean AUC only with at least this many positive test images (fewer: reported "
        "and flagged, not averaged)."
    )
    n_boot: int = help_field("Bootstrap resamples (patients drawn with replacement) of the AUC intervals.")
    confidence: float = help_field("Coverage of the bootstrap intervals.")

    @property
    def finding_names(self) -> tuple[str, ...]:
        return tuple(self.findings) or FINDINGS

    @property
    def input_size(self) -> int | None:
        """The network's input size (the crop if any, else the image size; None: the ingest size)."""
        return self.crop_size or self.image_size or None

    def validate(self) -> None:
        checks = [
            (self.backbone in BACKBONES, f"backbone must be one of {', '.join(BACKBONES)}"),
            (self.width >= 1 and self.depth >= 1, "width and depth must be at least 1"),
            (self.stem >= 1, "stem must be at least 1"),
            (0 <= self.dropout < 1, "dropout must be within 0..1 (exclusive)"),
            (self.image_size >= 0 and self.crop_size >= 0, "image_size and crop_size must be >= 0"),
            (
                self.crop_size == 0 or self.image_size == 0 or self.crop_size <= self.image_size,
                "crop_size must not exceed image_size",
            ),
            (0 <= self.augment_shift < 0.5, "augment_shift must be within 0..0.5"),
            (0 <= self.augment_scale < 0.5, "augment_scale must be within 0..0.5"),
            (self.batch_size >= 2, "batch_size must be at least 2"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (self.max_epochs >= 1, "max_epochs must be at least 1"),
            (self.max_steps_per_epoch >= 0, "max_steps_per_epoch must be >= 0"),
            (self.patience >= 1, "patience must be at least 1"),
            (self.comorbidity_weight >= 0, "comorbidity_weight must be >= 0"),
            (self.anatomy_weight >= 0, "anatomy_weight must be >= 0"),
            (self.eval_batch_size >= 1, "eval_batch_size must be at least 1"),
            (self.n_boot >= 0, "n_boot must be >= 0"),
            (self.min_eval_positives >= 1, "min_eval_positives must be at least 1"),
            (0.5 <= self.confidence < 1, "confidence must be within 0.5..1 (exclusive)"),
            (len(set(self.finding_names)) == len(self.finding_names), "findings must not repeat"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"train_classifier: {message}")
