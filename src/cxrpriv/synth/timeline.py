"""A patient's sequence of studies: how many, when, which view, and which findings are truly present.

Everything is drawn from statistics of the real ChestX-ray14 table (``chestxray14_stats.json``): the number
of images per patient, age at the first image and between follow-ups, sex, AP/PA persistence, and the label
sets. Findings persist or change between follow-ups: a follow-up keeps the previous label set with the real
probability; otherwise a new set is drawn from the real label-set distribution, reweighted by each finding's
real persistence/onset rate so that findings appear and resolve at realistic rates while co-occurrence
stays that of real label sets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrpriv.synth.stats import FINDINGS, CohortStats


@dataclass(frozen=True)
class Study:
    follow_up: int
    age_years: float
    days_from_first: int
    view: str  # "PA" or "AP"
    labels: np.ndarray  # (14,) uint8, the true findings


@dataclass(frozen=True)
class PatientTimeline:
    sex: str
    studies: tuple[Study, ...]


class TimelineSampler:
    """Precomputes the arrays the per-patient draws need (built once per worker process)."""

    def __init__(self, stats: CohortStats, max_images: int) -> None:
        self.stats = stats
        n_values = np.asarray(stats.images_per_patient.values, dtype=int)
        n_counts = np.asarray(stats.images_per_patient.counts, dtype=float)
        keep = n_values <= max_images
        # The long tail is folded onto the cap, so the share of multi-image patients stays as in the real table.
        capped = n_counts[keep].copy()
        capped[-1] += n_counts[~keep].sum()
        self.n_values = n_values[keep]
        self.n_probs = capped / capped.sum()
        self.age_values = np.asarray(stats.age_first_image.values, dtype=float)
        self.age_probs = stats.age_first_image.probabilities
        self.step_values = np.asarray(stats.age_step_years.values, dtype=float)
        self.step_probs = stats.age_step_years.probabilities
        self.combos = combos_to_matrix([str(v) for v in stats.label_combinations.values])
        self.combo_probs = stats.label_combinations.probabilities
        marginal = np.clip(self.combos.T @ self.combo_probs, 1e-6, 1 - 1e-6)  # P(f) under the set distribution
        self.log_marginal = np.stack([np.log1p(-marginal), np.log(marginal)])  # [absent, present] x finding
        persist = np.array([stats.transition[f].p_persist for f in FINDINGS])
        onset = np.array([stats.transition[f].p_onset for f in FINDINGS])
        # log P(now | before) for before in {absent, present}, now in {absent, present}
        self.log_transition = np.log(np.clip(np.array([[1 - onset, onset], [1 - persist, persist]]), 1e-6, 1))

    def sample(self, rng: np.random.Generator) -> PatientTimeline:
        stats = self.stats
        n = int(rng.choice(self.n_values, p=self.n_probs))
        sex = "M" if rng.random() < stats.sex["M"] else "F"
        age = float(rng.choice(self.age_values, p=self.age_probs)) + rng.random()
        view = "AP" if rng.random() < stats.view_position["AP"] else "PA"
        labels = self.combos[rng.choice(len(self.combos), p=self.combo_probs)]
        studies = []
        days = 0
        for follow_up in range(n):
            if follow_up > 0:
                step_years = float(rng.choice(self.step_values, p=self.step_probs))
                # Real follow-ups in one year are days to months apart: spread them within the year step.
                step_days = int(step_years * 365 + rng.integers(1, 120))
                days += step_days
                age += step_days / 365.25
                view = "AP" if rng.random() < stats.p_ap_given_previous[view] else "PA"
                if rng.random() >= stats.p_same_labels_as_previous:
                    labels = self._next_labels(labels, rng)
            studies.append(Study(follow_up, round(age, 2), days, view, labels.copy()))
        return PatientTimeline(sex=sex, studies=tuple(studies))

    def _next_labels(self, previous: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # Weight each real label set by how well its findings follow the previous ones:
        # P(set) * prod_f P(f_now | f_before) / P(f_now). The unchanged set is excluded (that is the other branch).
        rows = np.arange(len(FINDINGS))
        before = previous.astype(int)
        log_t = self.log_transition[before[None, :], self.combos, rows[None, :]]
        log_m = self.log_marginal[self.combos, rows[None, :]]
        logw = np.log(self.combo_probs) + (log_t - log_m).sum(axis=1)
        logw[(self.combos == previous[None, :]).all(axis=1)] = -np.inf
        weights = np.exp(logw - logw.max())
        return self.combos[rng.choice(len(self.combos), p=weights / weights.sum())]


def combos_to_matrix(values: list[str]) -> np.ndarray:
    """'Atelectasis|Effusion' strings -> (n, 14) uint8 matrix in canonical finding order."""
    index = {name: i for i, name in enumerate(FINDINGS)}
    matrix = np.zeros((len(values), len(FINDINGS)), dtype=np.uint8)
    for row, value in enumerate(values):
        if value == "No Finding":
            continue
        for name in value.split("|"):
            matrix[row, index[name]] = 1
    return matrix


def labels_to_string(labels: np.ndarray) -> str:
    names = [name for name, present in zip(FINDINGS, labels, strict=True) if present]
    return "|".join(names) if names else "No Finding"

