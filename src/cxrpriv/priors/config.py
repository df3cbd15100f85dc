"""Typed configuration of the ``priors`` stage (input paths are CLI options, not params)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from cxrpriv.config import ConfigError, help_field


@dataclass(frozen=True)
class PriorsConfig:
    min_cases: int = help_field(
        "Fewest re-read images behind a rate (e.g. text-mined positives for P(true|mined=1)); below it the "
        "rate is flagged and the fallback is used."
    )
    confidence: float = help_field("Coverage of the Wilson intervals (0.95: 95 percent).")
    max_unmatched_fraction: float = help_field(
        "Re-read images missing from the labels table: up to this fraction of a table is dropped (and "
        "flagged), more is an error; 0: any missing image is an error. A table sharing no image with the "
        "labels table gives no 2x2 tables (flagged) but still reader models, kappa and comorbidity."
    )
    truth: Literal["dawid_skene", "majority"] = help_field(
        "Re-read label of a multi-reader table: Dawid-Skene posterior (needs 3+ readers; else majority "
        "vote, flagged) or majority vote."
    )
    majority_tie: Literal["positive", "negative"] = help_field(
        "Majority vote on a tie: radiologists miss findings more often than they invent them, so a split "
        "vote is more likely a positive."
    )
    dawid_skene_max_iter: int = help_field("Iteration cap of the Dawid-Skene EM.")
    dawid_skene_tol: float = help_field("Dawid-Skene EM stops when no rate moves by more than this.")
    comorbidity_alpha: float = help_field(
        "Pseudo-images that pull P(j|i) toward the marginal P(j) (0: raw ratios)."
    )
    prior_basis: Literal["subset", "labels_prevalence"] = help_field(
        "Which P(true|mined) the classifier gets: as measured on the re-read subset (right when it is a "
        "random sample), or transferred to the labels table's text-mined prevalence (for an enriched subset)."
    )

    def validate(self) -> None:
        checks = [
            (self.min_cases >= 1, "min_cases must be at least 1"),
            (0.5 <= self.confidence < 1, "confidence must be within 0.5..1 (exclusive)"),
            (0 <= self.max_unmatched_fraction < 1, "max_unmatched_fraction must be within 0..1 (exclusive)"),
            (self.dawid_skene_max_iter >= 1, "dawid_skene_max_iter must be at least 1"),
            (0 < self.dawid_skene_tol < 0.1, "dawid_skene_tol must be within 0..0.1 (exclusive)"),
            (self.comorbidity_alpha >= 0, "comorbidity_alpha must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"priors: {message}")
