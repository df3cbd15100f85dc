"""Typed configuration of the ``train_reid`` stage (input/output paths and the device are CLI options)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cxrpriv.config import ConfigError, help_field


@dataclass(frozen=True)
class TrainReidConfig:
    seed: int = help_field("Seed of the weights, the pair draws, the augmentation and the bootstrap.")
    method: Literal["metric", "siamese"] = help_field(
        "Attacker family: metric (an embedding trained as a patient classifier with the CosFace margin "
        "loss, compared by cosine similarity) or siamese (a pair network trained on same-/different-patient "
        "pairs, as published)."
    )
    backbone: Literal["small_cnn", "resnet18", "resnet50", "densenet121"] = help_field(
        "Shared trunk of the siamese network (small_cnn: default profile; resnet50: the published one)."
    )
    width: int = help_field("small_cnn only: channels of the first block (doubling per block).")
    depth: int = help_field("small_cnn only: number of convolution blocks (each halves the resolution).")
    image_size: int = help_field(
        "Side in pixels the network sees; the ingest images are area-resized to it (0: the ingest size)."
    )
    pool: Literal["average", "flatten"] = help_field(
        "How the trunk's last feature map becomes a vector: global average pool (as published) or "
        "flattened (keeps where structures are; the small default trunk learns identity much faster)."
    )
    feature_dim: int = help_field("Length of the feature vector of one image (128 as published).")
    batch_size: int = help_field("Training step size: films (metric) or pairs of films (siamese) per step.")
    learning_rate: float = help_field(
        "Adam learning rate (siamese: constant; metric: AdamW, the start of a cosine decay to 0 at "
        "max_epochs)."
    )
    weight_decay: float = help_field("metric only: AdamW decoupled weight decay.")
    margin: float = help_field(
        "metric only: CosFace margin, subtracted from the true patient's cosine before the softmax."
    )
    cosine_scale: float = help_field(
        "metric only: CosFace scale, multiplying the cosines before the softmax."
    )
    max_epochs: int = help_field("Most epochs; early stopping usually ends training before.")
    patience: int = help_field(
        "Epochs without a better validation score (siamese: pair loss; metric: retrieval mAP@R) before "
        "training stops."
    )
    max_steps_per_epoch: int = help_field(
        "Cap on training steps per epoch (0: every pair of the epoch); for short timing runs."
    )
    pair_sampling: Literal["balanced", "batch_all"] = help_field(
        "siamese only: balanced (independent same-/different-patient pairs, as published) or batch_all "
        "(batches of films_per_patient films of several patients, every pair in the batch scored)."
    )
    films_per_patient: int = help_field("siamese batch_all only: most films of one patient in a batch.")
    max_pairs_per_patient: int = help_field(
        "Most within-patient (positive) pairs a patient contributes per epoch, drawn afresh every epoch "
        "(a patient with n images has n(n-1)/2), so prolific patients do not dominate."
    )
    augment_shift: float = help_field(
        "Training augmentation: s.d. of the random shift, as a fraction of the half-width (0: off)."
    )
    augment_scale: float = help_field("Training augmentation: s.d. of the random relative zoom.")
    augment_rotation_deg: float = help_field("Training augmentation: s.d. of the random rotation, degrees.")
    mixed_precision: bool = help_field("Mixed precision on CUDA (bfloat16, else float16); ignored on CPU.")
    eval_batch_size: int = help_field("Images per forward pass when embedding (no gradients).")
    retrieval_k: int = help_field(
        "Retrieval shortlist: gallery images nearest to a query (Euclidean feature distance) that the "
        "verification head re-scores."
    )
    retrieval_chunk: int = help_field(
        "Queries per distance block in the retrieval search (memory ~ chunk x gallery x 4 bytes)."
    )
    n_boot: int = help_field("Bootstrap resamples (of patients) for the confidence intervals.")
    confidence: float = help_field("Coverage of the bootstrap intervals (0.95: 95 percent).")

    def validate(self) -> None:
        checks = [
            (self.width >= 1 and self.depth >= 1, "width and depth must be at least 1"),
            (self.image_size == 0 or self.image_size >= 16, "image_size must be 0 (ingest size) or >= 16"),
            (self.feature_dim >= 1, "feature_dim must be at least 1"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.learning_rate > 0, "learning_rate must be positive"),
            (self.weight_decay >= 0, "weight_decay must be >= 0"),
            (0 <= self.margin < 1, "margin must be within 0..1"),
            (self.cosine_scale > 0, "cosine_scale must be positive"),
            (self.max_epochs >= 1, "max_epochs must be at least 1"),
            (self.patience >= 1, "patience must be at least 1"),
            (self.max_steps_per_epoch >= 0, "max_steps_per_epoch must be >= 0 (0: no cap)"),
            (self.max_pairs_per_patient >= 1, "max_pairs_per_patient must be at least 1"),
            (self.films_per_patient >= 2, "films_per_patient must be at least 2"),
            (
                min(self.augment_shift, self.augment_scale, self.augment_rotation_deg) >= 0,
                "augmentation strengths must be >= 0",
            ),
            (self.eval_batch_size >= 1, "eval_batch_size must be at least 1"),
            (self.retrieval_k >= 1, "retrieval_k must be at least 1"),
            (self.retrieval_chunk >= 1, "retrieval_chunk must be at least 1"),
            (self.n_boot >= 0, "n_boot must be >= 0"),
            (0.5 <= self.confidence < 1, "confidence must be within 0.5..1 (exclusive)"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"train_reid: {message}")
