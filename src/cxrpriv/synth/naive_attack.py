"""The naive re-identification attacker: normalized cross-correlation of downsampled images.

It is the floor the benchmark must respect: identity in the synthetic cohort has to live in anatomy that
a learned verifier can find, not in pixels a thumbnail correlation can match. Pairs are scored by the
Pearson correlation of 32x32 block-mean thumbnails; the AUC separates same-patient from different-patient
pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_auc_score

THUMBNAIL = 32


def thumbnail(image: np.ndarray, size: int = THUMBNAIL) -> np.ndarray:
    """Block-mean downsample to size x size, then zero mean and unit norm (so a dot product is the NCC)."""
    n = image.shape[0] - image.shape[0] % size
    small = image[:n, :n].reshape(size, n // size, size, n // size).mean(axis=(1, 3)).ravel()
    small = small - small.mean()
    return (small / (np.linalg.norm(small) + 1e-8)).astype(np.float32)


@dataclass(frozen=True)
class AttackResult:
    auc: float
    n_positive: int
    n_negative: int
    scores: np.ndarray
    labels: np.ndarray


def pair_attack(
    thumbs: np.ndarray, patients: np.ndarray, n_pairs: int, rng: np.random.Generator
) -> AttackResult:
    """Score up to n_pairs/2 same-patient pairs and as many different-patient pairs."""
    by_patient: dict[int, list[int]] = {}
    for i, p in enumerate(patients):
        by_patient.setdefault(int(p), []).append(i)
    positives = [(a, b) for idx in by_patient.values() for k, a in enumerate(idx) for b in idx[k + 1 :]]
    if not positives:
        raise ValueError(
            "naive attack: no patient has two images; raise n_patients or max_images_per_patient"
        )
    half = n_pairs // 2
    if len(positives) > half:
        positives = [positives[i] for i in rng.choice(len(positives), half, replace=False)]
    n_neg = len(positives)
    a = rng.integers(0, len(patients), 4 * n_neg)
    b = rng.integers(0, len(patients), 4 * n_neg)
    keep = patients[a] != patients[b]
    negatives = list(zip(a[keep][:n_neg], b[keep][:n_neg], strict=True))
    pairs = np.array(positives + negatives)
    labels = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    scores = np.einsum("ij,ij->i", thumbs[pairs[:, 0]], thumbs[pairs[:, 1]])
    return AttackResult(float(roc_auc_score(labels, scores)), len(positives), len(negatives), scores, labels)
