"""Several radiologists per image: majority vote, a reader-error model (Dawid-Skene), Fleiss' kappa.

Readings of one target come as an ``(n_images, n_readers)`` int array: 1 positive, 0 negative, -1 where that
reader did not read that image (VinDr-CXR: 3 of 17 radiologists per image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

TieRule = Literal["positive", "negative"]

MIN_READERS_FOR_DAWID_SKENE = 3
# Added to each reader's positive and negative counts in the M-step, so that a reader with no observed error
# does not get a rate of exactly 0 or 1: that would make their single reading overrule every other reader.
DAWID_SKENE_PSEUDOCOUNT = 0.5


def _check(readings: np.ndarray) -> np.ndarray:
    readings = np.asarray(readings)
    if readings.ndim != 2:
        raise ValueError(f"readings must be (n_images, n_readers), got shape {readings.shape}")
    if not np.isin(readings, (-1, 0, 1)).all():
        raise ValueError("readings must be 1, 0 or -1 (not read)")
    if len(readings) and ((readings >= 0).sum(axis=1) == 0).any():
        raise ValueError("every image needs at least one reading")
    return readings


def majority_vote(readings: np.ndarray, tie: TieRule) -> tuple[np.ndarray, int]:
    """The label most readers gave each image, and how many images were ties (resolved by ``tie``)."""
    readings = _check(readings)
    positive = (readings == 1).sum(axis=1)
    negative = (readings == 0).sum(axis=1)
    ties = positive == negative
    labels = np.where(ties, 1 if tie == "positive" else 0, positive > negative).astype(np.uint8)
    return labels, int(ties.sum())


@dataclass(frozen=True)
class ReaderModel:
    """A fitted binary Dawid-Skene model of one target."""

    prevalence: float
    sensitivity: np.ndarray  # (n_readers,)
    specificity: np.ndarray  # (n_readers,)
    posterior: np.ndarray  # (n_images,) P(true=1 | readings)
    iterations: int
    converged: bool
    log_likelihood: float
    n_read: np.ndarray  # (n_readers,) images each reader read
    positive_weight: np.ndarray  # (n_readers,) sum of posteriors over the images a reader read
    # Posterior weight of a reader's images on which another reader gave the same call (positive or
    # negative). A sensitivity rests on positives that someone else saw: a reader who only ever read
    # images nobody called positive has an unidentified sensitivity, however many images they read.
    corroborated_positive: np.ndarray  # (n_readers,)
    corroborated_negative: np.ndarray  # (n_readers,)

    @property
    def labels(self) -> np.ndarray:
        return (self.posterior >= 0.5).astype(np.uint8)

    @property
    def better_than_chance(self) -> bool:
        """EM can land on the mirror solution (labels flipped); then readers look worse than chance."""
        return bool(np.mean(self.sensitivity + self.specificity) > 1.0)


def dawid_skene(readings: np.ndarray, max_iter: int = 500, tol: float = 1e-7) -> ReaderModel:
    """Each reader's sensitivity and specificity and each image's posterior, by EM (Dawid & Skene 1979).

    Binary classes; readers err independently given the true label, and which readers read an image does
    not depend on its label. When it does (VinDr-CXR routed mostly normal images to some radiologists, who
    then never call a finding), those readers' sensitivity is not identified: see ``corroborated_positive``.
    Initialised from the soft majority vote
    (each image's fraction of positive readings), which makes the result deterministic and puts EM on the
    solution where readers are better than chance. Stops when no parameter moves by more than ``tol`` or
    after ``max_iter`` iterations. Readers who did not read an image contribute nothing to its posterior.
    """
    readings = _check(readings)
    read = (readings >= 0).astype(float)
    positive = (readings == 1).astype(float)
    negative = (readings == 0).astype(float)
    posterior = positive.sum(axis=1) / read.sum(axis=1)
    a = DAWID_SKENE_PSEUDOCOUNT
    params = np.zeros(0)
    converged = False
    iterations = 0
    log_likelihood = float("nan")
    sens = spec = np.zeros(readings.shape[1])
    prevalence = 0.5
    while iterations < max_iter:
        iterations += 1
        # M-step: rates from the current posteriors, counting only the images each reader read.
        sens = (posterior @ positive + a) / (posterior @ read + 2 * a)
        spec = ((1 - posterior) @ negative + a) / ((1 - posterior) @ read + 2 * a)
        prevalence = float(np.clip(posterior.mean(), 1e-6, 1 - 1e-6))
        # E-step: posterior of each image being truly positive.
        log_pos = np.log(prevalence) + positive @ np.log(sens) + negative @ np.log(1 - sens)
        log_neg = np.log(1 - prevalence) + positive @ np.log(1 - spec) + negative @ np.log(spec)
        posterior = 1.0 / (1.0 + np.exp(np.clip(log_neg - log_pos, -700, 700)))
        log_likelihood = float(np.logaddexp(log_pos, log_neg).sum())
        new_params = np.concatenate([[prevalence], sens, spec])
        if params.size and np.max(np.abs(new_params - params)) < tol:
            converged = True
            break
        params = new_params
    others_positive = (positive.sum(axis=1)[:, None] - positive) > 0
    others_negative = (negative.sum(axis=1)[:, None] - negative) > 0
    return ReaderModel(
        prevalence=prevalence,
        sensitivity=sens,
        specificity=spec,
        posterior=posterior,
        iterations=iterations,
        converged=converged,
        log_likelihood=log_likelihood,
        n_read=read.sum(axis=0).astype(int),
        positive_weight=posterior @ read,
        corroborated_positive=posterior @ (read * others_positive),
        corroborated_negative=(1 - posterior) @ (read * others_negative),
    )


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa from ``counts[item, category]`` (how many raters put each item in each category).

    Items may have different numbers of raters (the usual generalisation: per-item agreement over the pairs
    of that item's raters; category shares pooled over all ratings); items with fewer than two raters carry
    no agreement and are left out. NaN when there is nothing to agree on (fewer than two items with two
    raters, or every rating in one category: chance agreement is then 1).
    """
    counts = np.asarray(counts, dtype=float)
    raters = counts.sum(axis=1)
    counts = counts[raters >= 2]
    raters = raters[raters >= 2]
    if len(counts) < 2:
        return float("nan")
    agreement = ((counts * (counts - 1)).sum(axis=1) / (raters * (raters - 1))).mean()
    shares = counts.sum(axis=0) / raters.sum()
    chance = float((shares**2).sum())
    if chance >= 1.0 - 1e-12:
        return float("nan")
    return float((agreement - chance) / (1 - chance))


def binary_counts(readings: np.ndarray) -> np.ndarray:
    """``(n_images, 2)`` counts of negative and positive readings, for :func:`fleiss_kappa`."""
    readings = _check(readings)
    return np.stack([(readings == 0).sum(axis=1), (readings == 1).sum(axis=1)], axis=1)
