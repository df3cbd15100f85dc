"""Typed configuration of the ``evaluate`` stage (the datasets, models and output paths are CLI options)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cxrpriv.config import ConfigError, help_field


@dataclass(frozen=True)
class EvaluateConfig:
    attacker_profiles: tuple[str, ...] = help_field(
        "Attacker families retrained on the anonymized train/validation films, each a train_reid profile of "
        "params.yaml (default: the verifier stage's own config, the metric embedding the anonymizer trained "
        "against; siamese: a family it never saw). The first is 'the retrained verifier'."
    )
    attacker_seeds: tuple[int, ...] = help_field(
        "Training seeds of the first attacker family (mean, sd and the worst seed are reported)."
    )
    other_attacker_seeds: tuple[int, ...] = help_field("Training seeds of every other attacker family.")
    retrain_classifier: bool = help_field(
        "Also train a fresh classifier (the train_classifier config) on the anonymized training films and "
        "report its test AUC: utility for people who train models on the release."
    )
    examples: int = help_field("Test films (of different patients) in the example grid.")
    max_attacker_auc_mean: float = help_field(
        "Gate: most mean AUC (over seeds) of the strongest retrained attacker family. 0.60: an attacker "
        "retrained on the release should be close to chance (0.5) on average."
    )
    max_attacker_auc_worst: float = help_field(
        "Gate: most AUC of any single retrained attacker seed (seeds spread by 0.03-0.08 AUC; the worst "
        "seed is what a lucky attacker gets). 0.65."
    )
    max_utility_drop: float = help_field(
        "Gate: most drop of the frozen classifier's mean test AUC on anonymized films against the original "
        "films. 0.03: the release must stay about as useful for reading findings as the original."
    )
    max_linkage_p_at_1: float = help_field(
        "Gate: most share of anonymized test films whose nearest original film (its own original left "
        "out) is another film of the same patient, for any retrained attacker seed (retrieval linkage P@1)."
    )

    def validate(self) -> None:
        checks = [
            (len(self.attacker_profiles) >= 1, "attacker_profiles needs at least one train_reid profile"),
            (len(set(self.attacker_profiles)) == len(self.attacker_profiles), "attacker_profiles repeat"),
            (len(self.attacker_seeds) >= 1, "attacker_seeds needs at least one seed"),
            (len(set(self.attacker_seeds)) == len(self.attacker_seeds), "attacker_seeds repeat"),
            (len(set(self.other_attacker_seeds)) == len(self.other_attacker_seeds), "other seeds repeat"),
            (
                len(self.attacker_profiles) == 1 or len(self.other_attacker_seeds) >= 1,
                "other_attacker_seeds needs a seed when there is more than one attacker family",
            ),
            (self.examples >= 0, "examples must be >= 0"),
        ]
        for name in (
            "max_attacker_auc_mean",
            "max_attacker_auc_worst",
            "max_utility_drop",
            "max_linkage_p_at_1",
        ):
            value = getattr(self, name)
            checks.append((math.isfinite(value), f"{name} must be a finite number"))
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"evaluate: {message}")

    def seeds_of(self, profile: str) -> tuple[int, ...]:
        return self.attacker_seeds if profile == self.attacker_profiles[0] else self.other_attacker_seeds
