from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from cxrpriv.evaluation.bootstrap import bootstrap


def test_interval_contains_the_value_and_narrows_with_more_data() -> None:
    rng = np.random.default_rng(0)
    small = rng.normal(size=50)
    large = rng.normal(size=5000)
    a = bootstrap(np.mean, small, n_boot=500)
    b = bootstrap(np.mean, large, n_boot=500)
    assert a.low <= a.value <= a.high
    assert (b.high - b.low) < (a.high - a.low) / 5
    # the standard error of a mean of 5000 N(0, 1) draws is 0.0141: a 95% interval is about 0.055 wide
    assert b.high - b.low == pytest.approx(2 * 1.96 / np.sqrt(5000), rel=0.15)


def test_undefined_resamples_are_skipped() -> None:
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1])
    s = np.linspace(0, 1, 8)
    est = bootstrap(roc_auc_score, y, s, n_boot=200, seed=1)
    assert est.value == 1.0
    assert 0 < est.n_boot < 200  # resamples without the single positive have no AUC


def test_cluster_bootstrap_is_wider_for_correlated_rows() -> None:
    rng = np.random.default_rng(2)
    patient_effect = rng.normal(size=40)
    groups = np.repeat(np.arange(40), 10)
    values = patient_effect[groups] + 0.1 * rng.normal(size=400)
    rows = bootstrap(np.mean, values, n_boot=400, seed=3)
    clusters = bootstrap(np.mean, values, n_boot=400, seed=3, groups=groups)
    assert (clusters.high - clusters.low) > 2 * (rows.high - rows.low)


def test_same_seed_same_interval() -> None:
    x = np.arange(30.0)
    assert bootstrap(np.median, x, seed=5) == bootstrap(np.median, x, seed=5)
