"""Text-mining noise on released labels, and simulated radiologist re-reads.

Noise model, per finding f and independently per image: a true positive is mined as positive with the
calibrated sensitivity s_f, a true negative with the calibrated false-positive rate fpr_f (both from
``label_noise.json``, measured on the real radiologist re-read table where a class has a measurement).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from cxrpriv.synth.stats import FINDINGS, NoiseRate


@dataclass(frozen=True)
class ReaderProfile:
    reader_id: str
    sensitivity: np.ndarray  # (14,)
    specificity: np.ndarray  # (14,)


def apply_text_mining_noise(
    clean: np.ndarray, noise: Mapping[str, NoiseRate], rng: np.random.Generator
) -> np.ndarray:
    """Mined labels (n, 14) from true labels (n, 14)."""
    sens = np.array([noise[f].sensitivity for f in FINDINGS])
    fpr = np.array([noise[f].false_positive_rate for f in FINDINGS])
    u = rng.random(clean.shape)
    return np.where(clean == 1, u < sens, u < fpr).astype(np.uint8)


def sample_readers(n_readers: int, rng: np.random.Generator) -> list[ReaderProfile]:
    """Radiologists differ: each gets their own per-finding sensitivity and specificity.

    Ranges follow reader studies of chest radiographs (experienced readers miss subtle findings more often
    than they call false ones): sensitivity 0.70-0.95, specificity 0.96-0.995.
    """
    readers = []
    for i in range(n_readers):
        skill = rng.uniform(-0.05, 0.05)  # a reader is better or worse across the board
        sens = np.clip(rng.uniform(0.70, 0.95, len(FINDINGS)) + skill, 0.5, 0.99)
        spec = np.clip(rng.uniform(0.96, 0.995, len(FINDINGS)) + skill / 5, 0.9, 0.999)
        readers.append(ReaderProfile(f"R{i + 1}", sens, spec))
    return readers


def reread(clean: np.ndarray, readers: list[ReaderProfile], rng: np.random.Generator) -> np.ndarray:
    """Readings (n_readers, n, 14) of the true labels (n, 14), each reader erring independently."""
    out = np.empty((len(readers), *clean.shape), dtype=np.uint8)
    for r, reader in enumerate(readers):
        u = rng.random(clean.shape)
        out[r] = np.where(clean == 1, u < reader.sensitivity, u >= reader.specificity)
    return out
