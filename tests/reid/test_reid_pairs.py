"""Pair sampling: capped positives, negatives across patients, equal numbers, seeded per epoch."""

from __future__ import annotations

import numpy as np

from cxrpriv.reid.pairs import epoch_pairs, fixed_pairs, positive_pairs

# patient a: 5 images (10 pairs), b: 2 images (1 pair), c: 1 image (only in negatives)
PATIENTS = np.array(["a", "b", "a", "c", "a", "b", "a", "a"])


def test_positives_are_within_patient_and_capped():
    pairs = positive_pairs(PATIENTS, max_per_patient=3, rng=np.random.default_rng(0))
    assert len(pairs) == 3 + 1
    assert (PATIENTS[pairs[:, 0]] == PATIENTS[pairs[:, 1]]).all()
    assert len({tuple(p) for p in pairs}) == len(pairs) and (pairs[:, 0] < pairs[:, 1]).all()
    assert len(positive_pairs(PATIENTS, 100, np.random.default_rng(0))) == 10 + 1


def test_epoch_pairs_are_balanced_seeded_and_redrawn_each_epoch():
    pairs, labels = epoch_pairs(PATIENTS, 3, seed=1, epoch=1)
    assert labels.sum() == len(labels) / 2 == 4
    same = PATIENTS[pairs[:, 0]] == PATIENTS[pairs[:, 1]]
    assert np.array_equal(same, labels == 1)
    again, _ = epoch_pairs(PATIENTS, 3, seed=1, epoch=1)
    assert np.array_equal(pairs, again)
    other, _ = epoch_pairs(PATIENTS, 3, seed=1, epoch=2)
    assert not np.array_equal(pairs, other)
    # the single-image patient shows up among negatives over a few epochs, never among positives
    draws = [epoch_pairs(PATIENTS, 3, 1, e) for e in range(1, 21)]
    negatives = np.concatenate([p[lab == 0] for p, lab in draws])
    positives = np.concatenate([p[lab == 1] for p, lab in draws])
    assert (PATIENTS[negatives] == "c").any() and not (PATIENTS[positives] == "c").any()


def test_evaluation_pairs_are_fixed():
    first = fixed_pairs(PATIENTS, 3, seed=1, purpose="test")
    second = fixed_pairs(PATIENTS, 3, seed=1, purpose="test")
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_no_pairs_from_a_single_patient_set():
    pairs, labels = epoch_pairs(np.array(["x"]), 3, 1, 1)
    assert pairs.shape == (0, 2) and len(labels) == 0
