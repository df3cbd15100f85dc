"""Percentile bootstrap intervals, optionally resampling whole clusters (patients) instead of rows.

Films of one patient are not independent (same anatomy, often the same findings), so resampling rows
understates the uncertainty; with ``groups`` the bootstrap draws patients with replacement and takes all of
their rows, which is the usual fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    confidence: float
    n_boot: int  # resamples on which the metric was defined (e.g. both classes present for an AUC)

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}


def bootstrap(
    metric: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: np.ndarray | None = None,
) -> Estimate:
    """``metric(*arrays)`` on the data, and a percentile interval over ``n_boot`` resamples.

    Resamples on which the metric is undefined (it raises ``ValueError`` or returns NaN, e.g. an AUC on a
    resample with one class only) are skipped and not counted in ``n_boot``.
    """
    arrays = tuple(np.asarray(a) for a in arrays)
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("all arrays must have the same length")
    value = _safe(metric, arrays)
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = (rng.integers(0, n, n) for _ in range(n_boot))
    else:
        codes, members = _clusters(np.asarray(groups))
        draws = (np.concatenate([members[c] for c in rng.integers(0, codes, codes)]) for _ in range(n_boot))
    draw_values = [_safe(metric, tuple(a[idx] for a in arrays)) for idx in draws]
    stats = np.array([s for s in draw_values if not np.isnan(s)])
    if len(stats) == 0:
        return Estimate(value, float("nan"), float("nan"), confidence, 0)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(stats, [tail, 100 - tail])
    return Estimate(value, float(low), float(high), confidence, len(stats))


def _clusters(groups: np.ndarray) -> tuple[int, list[np.ndarray]]:
    _, inverse = np.unique(groups, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    members = np.split(order, bounds)
    return len(members), members


def _safe(metric: Callable[..., float], arrays: tuple[np.ndarray, ...]) -> float:
    try:
        return float(metric(*arrays))
    except ValueError:
        return float("nan")
