"""Image pairs for training and verification, drawn from one split's patients.

- **Positives**: within-patient pairs. A patient with n images has n(n-1)/2 of them; at most
  ``max_pairs_per_patient`` are used per draw (a uniform sample without replacement), so a patient with 12
  films does not outweigh eleven patients with two.
- **Negatives**: as many as positives, each a uniform random image paired with a uniform random image of
  another patient. Patients with one image only ever appear here.
- **Training** redraws both every epoch from the stream seeded by ``(seed, epoch, "pairs")``, so a resumed
  run sees the pairs the uninterrupted one saw. **Validation/test** pairs are drawn once from a fixed seed.
"""

from __future__ import annotations

import numpy as np

from cxrpriv.training.seeding import epoch_rng


def patient_groups(patients: np.ndarray) -> list[np.ndarray]:
    """Row indices of each patient, patients in sorted pseudonym order (independent of row order)."""
    _, inverse = np.unique(np.asarray(patients), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(inverse[order])) + 1) if len(order) else []


def positive_pairs(patients: np.ndarray, max_per_patient: int, rng: np.random.Generator) -> np.ndarray:
    """[P, 2] within-patient index pairs (i < j), at most ``max_per_patient`` per patient."""
    chosen = []
    for rows in patient_groups(patients):
        if len(rows) < 2:
            continue
        first, second = np.triu_indices(len(rows), 1)
        pick = np.arange(len(first))
        if len(pick) > max_per_patient:
            pick = np.sort(rng.choice(len(pick), max_per_patient, replace=False))
        chosen.append(np.stack([rows[first[pick]], rows[second[pick]]], axis=1))
    return np.concatenate(chosen) if chosen else np.zeros((0, 2), dtype=np.int64)


def negative_pairs(patients: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """[n, 2] pairs of images of two different patients (uniform over images)."""
    patients = np.asarray(patients)
    if n == 0 or len(np.unique(patients)) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    found: list[np.ndarray] = []
    have = 0
    while have < n:
        draw = rng.integers(0, len(patients), size=(2 * (n - have) + 8, 2))
        draw = draw[patients[draw[:, 0]] != patients[draw[:, 1]]][: n - have]
        found.append(draw)
        have += len(draw)
    return np.concatenate(found).astype(np.int64)


def balanced_pairs(
    patients: np.ndarray, max_per_patient: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Positives and an equal number of negatives, shuffled: ([n, 2] pairs, [n] labels 1/0)."""
    positives = positive_pairs(patients, max_per_patient, rng)
    negatives = negative_pairs(patients, len(positives), rng)
    pairs = np.concatenate([positives, negatives])
    labels = np.concatenate([np.ones(len(positives)), np.zeros(len(negatives))]).astype(np.float32)
    order = rng.permutation(len(pairs))
    return pairs[order], labels[order]


def epoch_pairs(
    patients: np.ndarray, max_per_patient: int, seed: int, epoch: int
) -> tuple[np.ndarray, np.ndarray]:
    """The training pairs of one epoch (1-based), from that epoch's seeded stream."""
    return balanced_pairs(patients, max_per_patient, epoch_rng(seed, epoch, "pairs"))


def fixed_pairs(
    patients: np.ndarray, max_per_patient: int, seed: int, purpose: str
) -> tuple[np.ndarray, np.ndarray]:
    """Evaluation pairs (``purpose``: "validation" or "test"), the same every time for a seed."""
    return balanced_pairs(patients, max_per_patient, epoch_rng(seed, 0, purpose))
