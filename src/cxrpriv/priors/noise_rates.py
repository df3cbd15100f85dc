"""How often the text-mined labels are wrong: 2x2 tables against re-read labels, with Wilson intervals.

For one target on the re-read images, with ``mined`` the text-mined label and ``truth`` the re-read label::

                  truth=1   truth=0
    mined=1         tp        fp       P(true=1 | mined=1) = tp / (tp + fp)
    mined=0         fn        tn       P(true=1 | mined=0) = fn / (fn + tn)

Those two conditionals are what a classifier needs to soften its labels, but they depend on prevalence: they
hold for the full dataset only when the re-read subset is a random sample of it. The text-mining sensitivity
tp / (tp + fn) and false-positive rate fp / (fp + tn) are conditional on the truth and transfer; with the
text-mined prevalence m of the full labels table, :func:`at_mined_prevalence` inverts
m = s p + f (1 - p) for the true prevalence p and gives the conditionals at that prevalence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion k/n; ``None`` when n is 0."""
    if n <= 0:
        return None
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class TwoByTwo:
    tp: int
    fp: int
    fn: int
    tn: int

    @classmethod
    def from_labels(cls, mined: np.ndarray, truth: np.ndarray) -> TwoByTwo:
        mined, truth = np.asarray(mined).astype(bool), np.asarray(truth).astype(bool)
        if mined.shape != truth.shape:
            raise ValueError(f"mined {mined.shape} and truth {truth.shape} labels differ in shape")
        return cls(
            tp=int(np.sum(mined & truth)),
            fp=int(np.sum(mined & ~truth)),
            fn=int(np.sum(~mined & truth)),
            tn=int(np.sum(~mined & ~truth)),
        )

    def __add__(self, other: TwoByTwo) -> TwoByTwo:
        return TwoByTwo(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    @property
    def n(self) -> int:
        return self.tp + self.fp + self.fn + self.tn

    @property
    def mined_positive(self) -> int:
        return self.tp + self.fp

    @property
    def mined_negative(self) -> int:
        return self.fn + self.tn

    @property
    def true_positive(self) -> int:
        return self.tp + self.fn

    @property
    def true_negative(self) -> int:
        return self.fp + self.tn


def proportion(k: int, n: int, confidence: float) -> dict[str, Any]:
    """A proportion with its counts and Wilson interval, as written to the JSON."""
    return {"value": k / n if n else None, "k": k, "n": n, "ci": wilson_interval(k, n, confidence)}


def noise_rate_entry(table: TwoByTwo, min_cases: int, confidence: float) -> dict[str, Any]:
    """Counts, the two conditionals and the text-mining error rates of one target; flags when too few cases.

    A conditional whose denominator is below ``min_cases`` is still reported but flagged, and the caller
    replaces it by the fallback (see :mod:`cxrpriv.priors.stage`).
    """
    flags = []
    if table.mined_positive < min_cases:
        flags.append("too_few_mined_positive")
    if table.mined_negative < min_cases:
        flags.append("too_few_mined_negative")
    if table.true_positive < min_cases:
        flags.append("too_few_true_positive")
    if table.true_negative < min_cases:
        flags.append("too_few_true_negative")
    return {
        "counts": {"tp": table.tp, "fp": table.fp, "fn": table.fn, "tn": table.tn, "n": table.n},
        "p_true_given_mined_pos": proportion(table.tp, table.mined_positive, confidence),
        "p_true_given_mined_neg": proportion(table.fn, table.mined_negative, confidence),
        "mined_sensitivity": proportion(table.tp, table.true_positive, confidence),
        "mined_false_positive_rate": proportion(table.fp, table.true_negative, confidence),
        "flags": flags,
    }


@dataclass(frozen=True)
class PrevalenceTransfer:
    mined_prevalence: float
    implied_true_prevalence: float
    p_true_given_mined_pos: float | None
    p_true_given_mined_neg: float | None
    in_range: bool  # False: s, f and m admit no prevalence in [0, 1]; the values then rest on a clipped p


def at_mined_prevalence(
    sensitivity: float, false_positive_rate: float, mined_prevalence: float
) -> PrevalenceTransfer:
    """P(true | mined) at another text-mined prevalence m, from the mining sensitivity s and fp rate f.

    m = s p + f (1 - p) gives the true prevalence p = (m - f) / (s - f), clipped to [0, 1]; then
    P(true=1 | mined=1) = s p / m and P(true=1 | mined=0) = (1 - s) p / (1 - m). When no p in [0, 1] fits
    (``in_range`` False: e.g. a measured sensitivity below the prevalence allows), the rates contradict
    the prevalence and the values should not be used.
    """
    s, f, m = sensitivity, false_positive_rate, mined_prevalence
    raw = (m - f) / (s - f) if s > f else float("nan")
    p = min(1.0, max(0.0, raw)) if s > f else 0.0
    pos = min(1.0, s * p / m) if m > 0 else None
    neg = min(1.0, (1 - s) * p / (1 - m)) if m < 1 else None
    return PrevalenceTransfer(m, p, pos, neg, in_range=bool(0.0 <= raw <= 1.0))
