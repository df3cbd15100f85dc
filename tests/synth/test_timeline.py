"""Timelines reproduce the real ChestX-ray14 statistics they were drawn from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from cxrpriv.synth.stats import FINDINGS, load_cohort_stats
from cxrpriv.synth.timeline import (
    TimelineSampler,
    combos_to_matrix,
    labels_to_string,
    raised_combination_probs,
)

CAP = 12


@pytest.fixture(scope="module")
def sampled():
    stats = load_cohort_stats()
    sampler = TimelineSampler(stats, CAP)
    rng = np.random.default_rng(7)
    return stats, [sampler.sample(rng) for _ in range(6000)]


def test_prevalence_and_views_match_real_table(sampled):
    stats, timelines = sampled
    labels = np.array([s.labels for t in timelines for s in t.studies])
    n = len(labels)
    for i, name in enumerate(FINDINGS):
        p = stats.prevalence[name]
        # binomial standard error, inflated 3x for the within-patient correlation of follow-ups
        tolerance = 4 * 3 * np.sqrt(p * (1 - p) / n) + 1e-3
        assert abs(labels[:, i].mean() - p) < tolerance, name
    ap = np.mean([s.view == "AP" for t in timelines for s in t.studies])
    assert abs(ap - stats.view_position["AP"]) < 0.03
    male = np.mean([t.sex == "M" for t in timelines])
    assert abs(male - stats.sex["M"]) < 0.03


def test_images_per_patient_follow_real_histogram_up_to_the_cap(sampled):
    stats, timelines = sampled
    counts = np.array([len(t.studies) for t in timelines])
    assert counts.max() <= CAP
    values = np.asarray(stats.images_per_patient.values)
    probs = stats.images_per_patient.probabilities
    assert abs((counts == 1).mean() - probs[values == 1][0]) < 0.03
    expected_mean = float((np.minimum(values, CAP) * probs).sum())
    assert abs(counts.mean() - expected_mean) < 0.1


def test_label_sets_persist_like_real_follow_ups(sampled):
    stats, timelines = sampled
    same = [np.array_equal(a.labels, b.labels) for t in timelines for a, b in itertools.pairwise(t.studies)]
    assert abs(np.mean(same) - stats.p_same_labels_as_previous) < 0.03
    # findings persist far more often than they would if each follow-up were drawn independently
    pairs = np.array([(a.labels, b.labels) for t in timelines for a, b in itertools.pairwise(t.studies)])
    eff = FINDINGS.index("Effusion")
    before, after = pairs[:, 0, eff], pairs[:, 1, eff]
    assert after[before == 1].mean() > 2 * stats.prevalence["Effusion"]


def test_ages_and_dates_move_forward(sampled):
    _, timelines = sampled
    for t in timelines[:500]:
        ages = [s.age_years for s in t.studies]
        days = [s.days_from_first for s in t.studies]
        assert ages == sorted(ages) and days == sorted(days)
        assert [s.follow_up for s in t.studies] == list(range(len(t.studies)))


def test_label_strings_round_trip():
    values = ["No Finding", "Atelectasis|Effusion", "Hernia"]
    matrix = combos_to_matrix(values)
    assert [labels_to_string(row) for row in matrix] == values


def test_prevalence_floor_raises_rare_findings_and_keeps_their_company():
    combos = combos_to_matrix(["No Finding", "Hernia", "Hernia|Effusion", "Effusion", "Nodule"])
    probs = np.array([0.80, 0.002, 0.002, 0.146, 0.05])
    raised = raised_combination_probs(combos, probs, 0.03)
    marginal = combos.T.astype(float) @ raised
    hernia = FINDINGS.index("Hernia")
    assert raised.sum() == pytest.approx(1.0)
    assert marginal[hernia] == pytest.approx(0.03, rel=1e-4)
    assert (marginal[combos.any(axis=0)] >= 0.03 * (1 - 1e-4)).all()
    # Both Hernia sets scaled by the same factor: P(Effusion | Hernia) is the real table's 0.5.
    assert raised[2] / raised[1] == pytest.approx(1.0)
    # Sets without a raised finding keep their ratios.
    assert raised[3] / raised[0] == pytest.approx(probs[3] / probs[0])


def test_no_floor_is_the_real_distribution():
    stats = load_cohort_stats()
    plain = TimelineSampler(stats, CAP)
    assert plain.combo_probs == pytest.approx(
        np.asarray(stats.label_combinations.probabilities) / np.sum(stats.label_combinations.probabilities)
    )
    floored = TimelineSampler(stats, CAP, min_prevalence=0.03)
    assert (floored.combos.T.astype(float) @ floored.combo_probs).min() >= 0.03 * (1 - 1e-4)
