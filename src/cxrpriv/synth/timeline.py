"""A patient's sequence of studies: how many, when, which view, and which findings are truly present.

Everything is drawn from statistics of the real ChestX-ray14 table (``chestxray14_stats.json``): the number
of images per patient, age at the first image and between follow-ups, sex, AP/PA, and the label sets.

Label sets follow a Markov chain whose stationary distribution is exactly the real label-set distribution
P(c), so per-image prevalence and co-occurrence match the real table whatever the number of follow-ups.
A follow-up keeps its set with probability ``p_keep``; otherwise it takes a Metropolis-Hastings step whose
proposal favours sets that follow each finding's real persistence/onset rates,
q(c'|c) ~ P(c') prod_f T_f(c'_f | c_f) / P(c'_f), so findings appear and resolve at realistic rates.
``p_keep`` is solved so that the chance of an unchanged set matches the real table's.
Views follow the same construction: keep the view or redraw it from the real AP/PA split.

An optional prevalence floor reweights the label sets (``raised_combination_probs``) so that no finding is
rarer than the floor: ChestX-ray14's rarest findings (Hernia 0.2%) leave a 1,000-patient test split with one
or two positives, too few to measure an AUC. Sets holding a raised finding are scaled up together, so the
co-occurrence *given* a finding keeps the real table's pattern.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logsumexp

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
    """Precomputes the chain's matrices once (per worker process); then one patient per call."""

    def __init__(self, stats: CohortStats, max_images: int, min_prevalence: float = 0.0) -> None:
        self.stats = stats
        n_values = np.asarray(stats.images_per_patient.values, dtype=int)
        n_counts = np.asarray(stats.images_per_patient.counts, dtype=float)
        keep = n_values <= max_images
        # The long tail is folded onto the cap: the share of multi-image patients stays as in the real table.
        capped = n_counts[keep].copy()
        capped[-1] += n_counts[~keep].sum()
        self.n_values = n_values[keep]
        self.n_probs = capped / capped.sum()
        self.age_values = np.asarray(stats.age_first_image.values, dtype=float)
        self.age_probs = stats.age_first_image.probabilities
        self.step_values = np.asarray(stats.age_step_years.values, dtype=float)
        self.step_probs = stats.age_step_years.probabilities
        self.combos = combos_to_matrix([str(v) for v in stats.label_combinations.values])
        self.combo_probs = raised_combination_probs(
            self.combos, np.asarray(stats.label_combinations.probabilities, dtype=float), min_prevalence
        )
        self._build_label_chain()
        p_ap = stats.view_position["AP"]
        # Keep-or-redraw preserves the AP fraction; the keep rate matches the real P(AP next | AP now).
        self.view_keep = float(np.clip((stats.p_ap_given_previous["AP"] - p_ap) / (1 - p_ap), 0, 1))

    def _build_label_chain(self) -> None:
        log_p = np.log(self.combo_probs)
        marginal = np.clip(self.combos.T.astype(float) @ self.combo_probs, 1e-6, 1 - 1e-6)
        persist = np.array([self.stats.transition[f].p_persist for f in FINDINGS])
        onset = np.array([self.stats.transition[f].p_onset for f in FINDINGS])
        # gain[f, a, b] = log T_f(b | a) - log P(f = b): what moving finding f from a to b adds to the weight
        trans = np.clip(np.array([[1 - onset, onset], [1 - persist, persist]]), 1e-6, 1)  # [a, b, f]
        gain = np.log(trans) - np.log(np.stack([1 - marginal, marginal]))[None, :, :]
        x = [1.0 - self.combos, self.combos.astype(float)]
        score = sum((x[a] * gain[a, b]) @ x[b].T for a in (0, 1) for b in (0, 1))  # score[c, c']
        log_w = log_p[None, :] + score
        np.fill_diagonal(log_w, -np.inf)  # staying put is the other branch
        log_z = logsumexp(log_w, axis=1)
        self.proposal = np.exp(log_w - log_z[:, None])
        self.log_accept = np.minimum(0.0, score.T - score + log_z[:, None] - log_z[None, :])
        reject = float(self.combo_probs @ (self.proposal * (1 - np.exp(self.log_accept))).sum(axis=1))
        target = self.stats.p_same_labels_as_previous
        self.label_keep = float(np.clip((target - reject) / (1 - reject), 0, 1))

    def sample(self, rng: np.random.Generator) -> PatientTimeline:
        stats = self.stats
        n = int(rng.choice(self.n_values, p=self.n_probs))
        sex = "M" if rng.random() < stats.sex["M"] else "F"
        age = float(rng.choice(self.age_values, p=self.age_probs)) + rng.random()
        p_ap = stats.view_position["AP"]
        view = "AP" if rng.random() < p_ap else "PA"
        combo = int(rng.choice(len(self.combos), p=self.combo_probs))
        studies = []
        days = 0
        for follow_up in range(n):
            if follow_up > 0:
                step_years = float(rng.choice(self.step_values, p=self.step_probs))
                # Real follow-ups in one year are days to months apart: spread them within the year step.
                step_days = int(step_years * 365 + rng.integers(1, 120))
                days += step_days
                age += step_days / 365.25
                if rng.random() >= self.view_keep:
                    view = "AP" if rng.random() < p_ap else "PA"
                if rng.random() >= self.label_keep:
                    combo = self._step(combo, rng)
            studies.append(Study(follow_up, round(age, 2), days, view, self.combos[combo].copy()))
        return PatientTimeline(sex=sex, studies=tuple(studies))

    def _step(self, combo: int, rng: np.random.Generator) -> int:
        proposed = int(rng.choice(len(self.combos), p=self.proposal[combo]))
        return proposed if np.log(rng.random()) < self.log_accept[combo, proposed] else combo


def raised_combination_probs(
    combos: np.ndarray, probs: np.ndarray, min_prevalence: float, rounds: int = 200
) -> np.ndarray:
    """Label-set probabilities reweighted so that every finding's marginal is at least ``min_prevalence``.

    Iterative proportional fitting on the findings below the floor: each round scales the sets that hold
    such a finding by the factor that brings it to the floor, then renormalizes (which lowers the others a
    little, hence the rounds). Findings already above the floor are never scaled directly.
    """
    if min_prevalence <= 0:
        return probs / probs.sum()
    has = combos.astype(bool)
    p = probs / probs.sum()
    present = has.any(axis=0)  # a finding in no set cannot be raised
    for _ in range(rounds):
        marginal = has.T.astype(float) @ p
        low = np.nonzero(present & (marginal < min_prevalence * (1 - 1e-6)))[0]
        if len(low) == 0:
            break
        for f in low:
            m = float(has[:, f] @ p)
            # odds scaling: sets with f get factor a, so that a*m / (a*m + 1 - m) = floor
            a = min_prevalence * (1 - m) / (m * (1 - min_prevalence))
            p = np.where(has[:, f], p * a, p)
            p /= p.sum()
    return p


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
