"""AUCs and the report that averages only findings with enough positives."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrpriv.classify.evaluation import auc_report, roc_auc


def test_roc_auc_matches_scikit_learn_with_ties():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.normal(labels * 0.7, 1.0), 1)  # rounded: many ties
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    assert math.isnan(roc_auc(np.zeros(5), np.arange(5)))


def test_auc_report_leaves_rare_findings_out_of_the_mean():
    rng = np.random.default_rng(1)
    n = 120
    labels = np.zeros((n, 2), dtype=np.uint8)
    labels[:40, 0] = 1
    labels[0, 1] = 1  # one positive only
    scores = np.column_stack([labels[:, 0] + rng.normal(0, 0.5, n), rng.random(n)])
    patients = np.repeat(np.arange(40), 3)
    report = auc_report(
        labels, scores, ["A", "B"], patients, min_positives=5, n_boot=50, confidence=0.95, seed=0
    )
    assert report["excluded_from_mean"] == ["B"]
    assert report["findings"]["B"]["flags"] == ["too_few_positives"]
    assert report["mean_auc"] == pytest.approx(report["findings"]["A"]["auc"])
    low, high = report["mean_auc_ci"]
    assert low <= report["mean_auc"] <= high
    assert report["worst_finding"] == "A"
    # 40 positive images of A come from 14 patients (three images each, the last patient's first only).
    assert report["findings"]["A"]["n_positive"] == 40
    assert report["findings"]["A"]["n_positive_patients"] == 14
    assert report["findings"]["B"]["n_positive_patients"] == 1
