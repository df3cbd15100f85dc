"""Per-finding ROC AUC and their mean, with patient-cluster bootstrap intervals.

A finding enters the mean (and the worst-finding number) only when the evaluated split holds at least
``min_positives`` positive images of it: an AUC over one or two positives is a coin toss with a label, not a
measurement (at ChestX-ray14's Hernia rate a 1,000-patient cohort has about one Hernia image in its test
split). Those findings are still reported, flagged ``too_few_positives``. Each finding also reports how many
patients its positives come from: follow-ups share findings, so 21 positive images can be 3 patients, and
the interval (resampled by patient) is as wide as that suggests.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrpriv.evaluation.bootstrap import bootstrap
from cxrpriv.evaluation.roc import roc_auc


def _mean_auc(columns: Sequence[int]):
    def metric(labels: np.ndarray, scores: np.ndarray) -> float:
        values = [roc_auc(labels[:, j], scores[:, j]) for j in columns]
        values = [v for v in values if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    return metric


def auc_report(
    labels: np.ndarray,
    scores: np.ndarray,
    findings: Sequence[str],
    patients: np.ndarray,
    *,
    min_positives: int,
    n_boot: int,
    confidence: float,
    seed: int,
) -> dict[str, Any]:
    """Per-finding AUC with intervals, the mean over findings with enough positives, and the worst one."""
    labels = np.asarray(labels).astype(np.uint8)
    patients = np.asarray(patients)
    scores = np.asarray(scores, dtype=np.float64)
    per_finding: dict[str, Any] = {}
    evaluated = []
    for j, finding in enumerate(findings):
        n_pos = int(labels[:, j].sum())
        enough = n_pos >= min_positives and n_pos < len(labels)
        if enough:
            evaluated.append(j)
        estimate = bootstrap(
            roc_auc,
            labels[:, j],
            scores[:, j],
            n_boot=n_boot,
            confidence=confidence,
            seed=seed,
            groups=patients,
        )
        per_finding[finding] = {
            "auc": _nan_to_none(estimate.value),
            "ci": [_nan_to_none(estimate.low), _nan_to_none(estimate.high)] if n_boot else None,
            "n_positive": n_pos,
            "n_positive_patients": int(np.unique(patients[labels[:, j] == 1]).size),
            "n": len(labels),
            "flags": [] if enough else ["too_few_positives"],
        }
    mean = bootstrap(
        _mean_auc(evaluated), labels, scores, n_boot=n_boot, confidence=confidence, seed=seed, groups=patients
    )
    worst = min(evaluated, key=lambda j: per_finding[findings[j]]["auc"], default=None)
    return {
        "mean_auc": _nan_to_none(mean.value),
        "mean_auc_ci": [_nan_to_none(mean.low), _nan_to_none(mean.high)] if n_boot else None,
        "n_findings_in_mean": len(evaluated),
        "excluded_from_mean": [f for j, f in enumerate(findings) if j not in evaluated],
        "worst_finding": None if worst is None else findings[worst],
        "worst_auc": None if worst is None else per_finding[findings[worst]]["auc"],
        "findings": per_finding,
    }


def _nan_to_none(value: float) -> float | None:
    return None if value is None or np.isnan(value) else float(value)
