"""Verification and retrieval metrics against values worked out by hand on toy cases."""

from __future__ import annotations

import numpy as np
import pytest

from cxrpriv.reid.metrics import ranking_metrics, summarize_ranking, verification_metrics


def test_verification_auc_and_accuracy_by_hand():
    labels = np.array([1, 1, 0, 0])
    probabilities = np.array([0.9, 0.4, 0.6, 0.1])
    # Positive-negative orderings: (0.9>0.6) (0.9>0.1) (0.4<0.6) (0.4>0.1) -> 3 of 4 correct.
    # At 0.5: 0.9 right, 0.4 wrong, 0.6 wrong, 0.1 right -> 2 of 4.
    result = verification_metrics(labels, probabilities, n_boot=50, seed=1)
    assert result["auc"]["value"] == pytest.approx(0.75)
    assert result["accuracy"]["value"] == pytest.approx(0.5)
    assert result["n_pairs"] == 4 and result["n_positive_pairs"] == 2
    assert result["auc"]["low"] <= 0.75 <= result["auc"]["high"]


def test_map_at_r_r_precision_and_precision_at_1_by_hand():
    relevant = np.array(
        [
            [True, False, True, False],  # R = 2: AP@R = (1/1 + 0) / 2 = 0.5; R-precision 1/2; P@1 1
            [False, True, True, True],  # R = 3: AP@R = (0 + 1/2 + 2/3) / 3 = 7/18; R-prec 2/3; P@1 0
            [True, True, False, False],  # R = 1: only rank 1 counts -> 1, 1, 1
            [False, False, False, False],  # R = 0: excluded
            [False, False, False, True],  # R = 6 > k = 4: AP@R = (1/4 at rank 4) / 6; R-prec 1/6; P@1 0
        ]
    )
    n_relevant = np.array([2, 3, 1, 0, 6])
    per_query = ranking_metrics(relevant, n_relevant)
    np.testing.assert_allclose(per_query["ap_at_r"][[0, 1, 2, 4]], [0.5, 7 / 18, 1.0, 0.25 / 6])
    np.testing.assert_allclose(per_query["r_precision"][[0, 1, 2, 4]], [0.5, 2 / 3, 1.0, 1 / 6])
    np.testing.assert_allclose(per_query["precision_at_1"][[0, 1, 2, 4]], [1, 0, 1, 0])
    assert np.isnan(per_query["ap_at_r"][3])
    summary = summarize_ranking(per_query, n_relevant, k=4)
    assert summary["map_at_r"] == pytest.approx((0.5 + 7 / 18 + 1 + 0.25 / 6) / 4)
    assert summary["precision_at_1"] == pytest.approx(0.5)
    assert summary["n_queries_without_match"] == 1 and summary["n_queries_scored"] == 4
    assert summary["n_queries_r_over_k"] == 1


def test_no_query_with_a_match_gives_nan_not_an_error():
    per_query = ranking_metrics(np.zeros((2, 1), bool), np.array([0, 0]))
    summary = summarize_ranking(per_query, np.array([0, 0]), k=1)
    assert np.isnan(summary["map_at_r"]) and summary["n_queries_without_match"] == 2
