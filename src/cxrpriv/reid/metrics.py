"""Verification and retrieval metrics, as plain functions over arrays (the evaluate stage reuses them).

Retrieval follows Musgrave et al. 2020 ("A metric learning reality check"): for a query with R relevant
gallery items (same patient, the query itself excluded), with rel(i) = 1 if the i-th ranked item is relevant,

- mAP@R = mean over queries of (1/R) * sum_{i<=R} rel(i) * P@i, where P@i = (relevant in the top i) / i;
- R-precision = mean over queries of (relevant in the top R) / R;
- precision@1 = mean over queries of rel(1).

Queries with R = 0 (patients with one image in the set) have nothing to find: they are excluded from all
three means and counted separately. Ranks beyond the search's shortlist of k count as misses (when R > k).
"""

from __future__ import annotations

import numpy as np

from cxrpriv.evaluation.bootstrap import bootstrap
from cxrpriv.evaluation.roc import roc_auc


def accuracy_at_half(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities) >= 0.5) == (np.asarray(labels) > 0.5)))


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC; ValueError (the bootstrap's 'undefined') when only one class is present."""
    value = roc_auc(labels, scores)
    if np.isnan(value):
        raise ValueError("ROC AUC needs both classes")
    return value


def verification_metrics(
    labels: np.ndarray,
    probabilities: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, object]:
    """AUC and accuracy at 0.5 of same-patient probabilities, with percentile bootstrap intervals
    (``groups``: resample clusters, e.g. the patient of each pair's first image, instead of pairs)."""
    labels = np.asarray(labels, dtype=float)
    probabilities = np.asarray(probabilities, dtype=float)
    result: dict[str, object] = {
        "n_pairs": len(labels),
        "n_positive_pairs": int(labels.sum()),
    }
    for name, metric in (("auc", auc), ("accuracy", accuracy_at_half)):
        if len(labels) == 0:
            result[name] = {"value": float("nan"), "low": float("nan"), "high": float("nan")}
            continue
        estimate = bootstrap(
            metric, labels, probabilities, n_boot=n_boot, confidence=confidence, seed=seed, groups=groups
        )
        result[name] = estimate.as_dict()
    return result


def ranking_metrics(relevant: np.ndarray, n_relevant: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query AP@R, R-precision and P@1 from the ranked relevance ([n, k] bool, best first) and R ([n]).

    Queries with R = 0 get NaN. Positions past the k ranked ones count as not relevant.
    """
    relevant = np.asarray(relevant, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    n, k = relevant.shape
    ranks = np.arange(1, k + 1)
    within_r = ranks[None, :] <= n_relevant[:, None]  # only the top R positions count
    hits = relevant & within_r
    precision_at_i = np.cumsum(relevant, axis=1) / ranks[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        ap_at_r = (precision_at_i * hits).sum(axis=1) / n_relevant
        r_precision = hits.sum(axis=1) / n_relevant
    p_at_1 = relevant[:, 0].astype(float) if k else np.zeros(n)
    none = n_relevant == 0
    for values in (ap_at_r, r_precision, p_at_1):
        values[none] = np.nan
    return {"ap_at_r": ap_at_r, "r_precision": r_precision, "precision_at_1": p_at_1}


def summarize_ranking(per_query: dict[str, np.ndarray], n_relevant: np.ndarray, k: int) -> dict[str, float]:
    with_match = np.asarray(n_relevant) > 0
    summary = {
        name: float(np.mean(values[with_match])) if with_match.any() else float("nan")
        for name, values in (
            ("map_at_r", per_query["ap_at_r"]),
            ("r_precision", per_query["r_precision"]),
            ("precision_at_1", per_query["precision_at_1"]),
        )
    }
    summary.update(
        n_queries=len(with_match),
        n_queries_scored=int(with_match.sum()),
        n_queries_without_match=int((~with_match).sum()),
        n_queries_r_over_k=int((np.asarray(n_relevant) > k).sum()),
        shortlist_k=int(k),
    )
    return summary
