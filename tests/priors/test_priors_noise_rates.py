"""2x2 tables, Wilson intervals and the transfer to another prevalence, on hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from cxrpriv.priors.noise_rates import TwoByTwo, at_mined_prevalence, noise_rate_entry, wilson_interval


@pytest.mark.parametrize(
    ("k", "n", "expected"),
    [
        # z = 1.959964; centre = (p + z^2/2n) / (1 + z^2/n); half = z/(1 + z^2/n) * sqrt(p(1-p)/n + z^2/4n^2)
        (5, 10, (0.236593, 0.763407)),  # centre 0.5, half 1.415998 * 0.186021
        (0, 10, (0.0, 0.277533)),  # centre 0.192073/1.384146 = 0.138766 = half
        (10, 10, (0.722467, 1.0)),
        (1, 4, (0.045587, 0.699358)),  # centre 0.372473, half 0.326886
    ],
)
def test_wilson_interval_matches_hand_computed_values(k, n, expected):
    low, high = wilson_interval(k, n)
    assert low == pytest.approx(expected[0], abs=1e-6)
    assert high == pytest.approx(expected[1], abs=1e-6)


def test_wilson_interval_of_nothing_is_none_and_wider_at_higher_confidence():
    assert wilson_interval(0, 0) is None
    low95, high95 = wilson_interval(3, 20, 0.95)
    low99, high99 = wilson_interval(3, 20, 0.99)
    assert low99 < low95 < 3 / 20 < high95 < high99


def test_two_by_two_counts_and_conditionals():
    mined = np.array([1, 1, 1, 0, 0, 0, 0, 0])
    truth = np.array([1, 1, 0, 1, 0, 0, 0, 0])
    table = TwoByTwo.from_labels(mined, truth)
    assert (table.tp, table.fp, table.fn, table.tn) == (2, 1, 1, 4)
    entry = noise_rate_entry(table, min_cases=4, confidence=0.95)
    assert entry["counts"] == {"tp": 2, "fp": 1, "fn": 1, "tn": 4, "n": 8}
    assert entry["p_true_given_mined_pos"]["value"] == pytest.approx(2 / 3)
    assert (entry["p_true_given_mined_pos"]["k"], entry["p_true_given_mined_pos"]["n"]) == (2, 3)
    assert entry["p_true_given_mined_neg"]["value"] == pytest.approx(1 / 5)
    assert entry["p_true_given_mined_neg"]["ci"] == pytest.approx(wilson_interval(1, 5))
    assert entry["mined_sensitivity"]["value"] == pytest.approx(2 / 3)
    assert entry["mined_false_positive_rate"]["value"] == pytest.approx(1 / 5)
    # 3 text-mined positives and 3 true positives are under min_cases=4; 5 negatives are not
    assert entry["flags"] == ["too_few_mined_positive", "too_few_true_positive"]


def test_a_conditional_without_cases_is_none_not_zero():
    entry = noise_rate_entry(TwoByTwo(tp=0, fp=0, fn=2, tn=8), min_cases=1, confidence=0.95)
    assert entry["p_true_given_mined_pos"] == {"value": None, "k": 0, "n": 0, "ci": None}
    assert "too_few_mined_positive" in entry["flags"]


def test_two_by_two_rejects_misaligned_labels():
    with pytest.raises(ValueError, match="differ in shape"):
        TwoByTwo.from_labels(np.zeros(3), np.zeros(4))


def test_transfer_inverts_the_mining_model():
    # s = 0.5, f = 0.1, m = 0.3: p = (0.3 - 0.1) / (0.5 - 0.1) = 0.5; P(T|M) = 0.25/0.3; P(T|not M) = 0.25/0.7
    moved = at_mined_prevalence(0.5, 0.1, 0.3)
    assert moved.implied_true_prevalence == pytest.approx(0.5)
    assert moved.p_true_given_mined_pos == pytest.approx(0.25 / 0.3)
    assert moved.p_true_given_mined_neg == pytest.approx(0.25 / 0.7)
    # the two conditionals average back to the true prevalence
    total = moved.p_true_given_mined_pos * 0.3 + moved.p_true_given_mined_neg * 0.7
    assert total == pytest.approx(0.5)


def test_transfer_agrees_with_a_simulated_population():
    rng = np.random.default_rng(3)
    truth = rng.random(400_000) < 0.08
    mined = np.where(truth, rng.random(truth.size) < 0.6, rng.random(truth.size) < 0.02)
    moved = at_mined_prevalence(0.6, 0.02, float(mined.mean()))
    assert moved.p_true_given_mined_pos == pytest.approx(truth[mined].mean(), abs=0.01)
    assert moved.p_true_given_mined_neg == pytest.approx(truth[~mined].mean(), abs=0.003)


def test_transfer_clips_an_impossible_prevalence():
    moved = at_mined_prevalence(0.5, 0.1, 0.05)  # fewer mined positives than false positives alone
    assert moved.implied_true_prevalence == 0.0 and not moved.in_range
    assert moved.p_true_given_mined_pos == 0.0 and moved.p_true_given_mined_neg == 0.0
    assert not at_mined_prevalence(0.04, 0.06, 0.1).in_range  # sensitivity below the false-positive rate
    assert at_mined_prevalence(0.5, 0.1, 0.3).in_range
