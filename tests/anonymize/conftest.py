"""Fixtures of the anonymizer stage tests: tiny configs (the easy cohort with its trained verifier and
classifier is the session fixture ``trained`` of :mod:`tests.trained_models`, shared with evaluate)."""

from __future__ import annotations

from cxrpriv.anonymize.config import TrainAnonymizerConfig
from tests.trained_models import FINDING, SIZE, Trained  # noqa: F401


def tiny_anonymizer_config(**overrides: object) -> TrainAnonymizerConfig:
    """Seconds on one core: a three-level U-Net at 32 px, batches of four patients x two films."""
    values = {
        "seed": 7,
        "widths": (4, 8, 16),
        "mu": 0.1,
        "smoothing_sigma": 1.0,
        "smoothing_kernel": 5,
        "noise_channels": 0,
        "image_size": 0,
        "batch_size": 8,
        "films_per_patient": 2,
        "learning_rate": 1e-3,
        "pretrain_epochs": 1,
        "max_epochs": 2,
        "patience": 5,
        "max_steps_per_epoch": 0,
        "privacy_loss": "rank",
        "privacy_surrogate": "softplus",
        "privacy_weight": 1.0,
        "utility_weight": 1.0,
        "helpers": "frozen",
        "mixed_precision": True,
        "eval_batch_size": 16,
    }
    values.update(overrides)
    config = TrainAnonymizerConfig(**values)  # type: ignore[arg-type]
    config.validate()
    return config
