"""Majority vote, Fleiss' kappa and Dawid-Skene on hand-made and simulated readings."""

from __future__ import annotations

import numpy as np
import pytest

from cxrpriv.priors.readers import binary_counts, dawid_skene, fleiss_kappa, majority_vote

# -1: that reader did not read that image
READINGS = np.array(
    [
        [1, 1, 0, -1],  # 2 of 3 positive
        [1, 0, -1, -1],  # tie
        [0, 0, 1, -1],  # 1 of 3 positive
        [1, 0, 1, 0],  # tie
        [0, -1, -1, -1],  # one reader
    ]
)


def test_majority_vote_resolves_ties_as_configured():
    labels, ties = majority_vote(READINGS, "positive")
    assert labels.tolist() == [1, 1, 0, 1, 0] and ties == 2
    labels, ties = majority_vote(READINGS, "negative")
    assert labels.tolist() == [1, 0, 0, 0, 0] and ties == 2


@pytest.mark.parametrize(
    ("readings", "message"),
    [
        (np.array([[1, 0], [-1, -1]]), "at least one reading"),
        (np.array([[1, 2]]), "1, 0 or -1"),
        (np.array([1, 0]), "n_images, n_readers"),
    ],
)
def test_readings_are_checked(readings, message):
    with pytest.raises(ValueError, match=message):
        majority_vote(readings, "positive")


def test_fleiss_kappa_textbook_example():
    # Fleiss (1971) as worked on Wikipedia: 10 subjects, 14 raters, 5 categories.
    counts = np.array(
        [
            [0, 0, 0, 0, 14],
            [0, 2, 6, 4, 2],
            [0, 0, 3, 5, 6],
            [0, 3, 9, 2, 0],
            [2, 2, 8, 1, 1],
            [7, 7, 0, 0, 0],
            [3, 2, 6, 3, 0],
            [2, 5, 3, 2, 2],
            [6, 5, 2, 1, 0],
            [0, 2, 2, 3, 7],
        ]
    )
    # By hand: column sums (20, 28, 39, 21, 32) of 140 ratings, so
    # P_e = (400 + 784 + 1521 + 441 + 1024) / 140^2 = 0.212755; the sum of n_ij^2 over the table is 828, so
    # mean P_i = (828 - 10 * 14) / (10 * 14 * 13) = 0.378022;
    # kappa = (0.378022 - 0.212755) / (1 - 0.212755) = 0.209930 (Wikipedia: 0.210).
    assert fleiss_kappa(counts) == pytest.approx(0.209930, abs=1e-6)


def test_fleiss_kappa_binary_hand_example_and_varying_raters():
    # 4 images, 3 readers, counts (negative, positive): agreement per image 1, 1, 1, (0 + 2) / 6 = 1/3,
    # mean 5/6; shares 7/12 and 5/12, chance 74/144; kappa = (120 - 74) / (144 - 74) = 23/35.
    counts = np.array([[3, 0], [0, 3], [3, 0], [1, 2]])
    assert fleiss_kappa(counts) == pytest.approx(23 / 35)
    # an image with one reading carries no agreement and changes nothing
    assert fleiss_kappa(np.vstack([counts, [[0, 1]]])) == pytest.approx(23 / 35)
    assert binary_counts(READINGS).tolist() == [[1, 2], [1, 1], [2, 1], [2, 2], [1, 0]]


def test_fleiss_kappa_is_nan_when_there_is_nothing_to_agree_on():
    assert np.isnan(fleiss_kappa(np.array([[3, 0], [3, 0], [3, 0]])))  # one category only
    assert np.isnan(fleiss_kappa(np.array([[2, 1]])))  # one image
    assert fleiss_kappa(np.array([[3, 0], [0, 3]])) == pytest.approx(1.0)  # perfect agreement


def _simulate(
    n_images: int, prevalence: float, sens: np.ndarray, spec: np.ndarray, per_image: int, *, seed: int
):
    rng = np.random.default_rng(seed)
    truth = rng.random(n_images) < prevalence
    u = rng.random((n_images, len(sens)))
    readings = np.where(truth[:, None], u < sens, u >= spec).astype(np.int8)
    # each image is read by `per_image` readers drawn at random, like VinDr-CXR's 3 of 17
    chosen = np.argsort(rng.random((n_images, len(sens))), axis=1)[:, :per_image]
    read = np.zeros(readings.shape, dtype=bool)
    read[np.arange(n_images)[:, None], chosen] = True
    readings[~read] = -1
    return truth, readings


def test_dawid_skene_recovers_known_reader_rates_with_missing_readings():
    sens = np.array([0.9, 0.8, 0.7, 0.85, 0.6])
    spec = np.array([0.95, 0.9, 0.97, 0.85, 0.99])
    truth, readings = _simulate(6000, 0.3, sens, spec, per_image=3, seed=7)
    assert ((readings >= 0).sum(axis=1) == 3).all()
    model = dawid_skene(readings)
    assert model.converged and model.better_than_chance
    n_pos = (truth[:, None] & (readings >= 0)).sum(axis=0)
    n_neg = (~truth[:, None] & (readings >= 0)).sum(axis=0)
    # 4 binomial standard errors (each rate rests on ~1000 to ~2500 readings) plus 0.01 for the latent labels
    assert np.all(np.abs(model.sensitivity - sens) < 4 * np.sqrt(sens * (1 - sens) / n_pos) + 0.01)
    assert np.all(np.abs(model.specificity - spec) < 4 * np.sqrt(spec * (1 - spec) / n_neg) + 0.01)
    assert model.prevalence == pytest.approx(truth.mean(), abs=0.02)
    assert model.n_read.tolist() == (readings >= 0).sum(axis=0).tolist()
    # with three readers per image, most positives a reader saw were called by someone else too
    assert np.all(model.corroborated_positive > 0.8 * model.positive_weight)
    assert np.all(model.corroborated_positive <= model.positive_weight)
    # the posteriors mean what they say
    assert truth[model.posterior > 0.9].mean() > 0.9
    assert truth[model.posterior < 0.1].mean() < 0.1


def test_dawid_skene_is_deterministic_and_stops_at_the_iteration_cap():
    _, readings = _simulate(500, 0.2, np.full(4, 0.8), np.full(4, 0.95), per_image=4, seed=1)
    first, again = dawid_skene(readings), dawid_skene(readings)
    assert np.array_equal(first.posterior, again.posterior)
    capped = dawid_skene(readings, max_iter=2)
    assert capped.iterations == 2 and not capped.converged


def test_dawid_skene_with_unanimous_readers_keeps_their_labels():
    readings = np.array([[1, 1, 1], [0, 0, 0], [1, 1, 1], [0, 0, 0], [0, 0, 0]])
    model = dawid_skene(readings)
    assert model.labels.tolist() == [1, 0, 1, 0, 0]
    # the pseudocount keeps rates off exactly 1
    assert np.all(model.sensitivity < 1) and np.all(model.sensitivity > 0.7)
