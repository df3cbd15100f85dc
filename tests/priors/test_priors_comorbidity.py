"""The smoothed conditional co-occurrence matrix on a hand-made label table."""

from __future__ import annotations

import numpy as np
import pytest

from cxrpriv.priors.comorbidity import conditional_cooccurrence

LABELS = np.array(
    [
        # A, B, C
        [1, 1, 0],
        [1, 0, 0],
        [1, 1, 1],
        [0, 1, 0],
        [0, 0, 0],
    ]
)
NAMES = ("A", "B", "C")


def test_raw_conditionals_without_smoothing():
    c = conditional_cooccurrence(LABELS, NAMES, alpha=0)
    assert c.counts.tolist() == [3, 3, 1]
    assert c.pair_counts[0].tolist() == [3, 2, 1]
    expected = [
        [1, 2 / 3, 1 / 3],
        [2 / 3, 1, 1 / 3],
        [1, 1, 1],
    ]
    assert c.conditional == pytest.approx(np.array(expected))


def test_smoothing_pulls_toward_the_marginal():
    # alpha = 1, marginals (0.6, 0.6, 0.2): P(B|A) = (2 + 0.6) / 4, P(C|A) = (1 + 0.2) / 4, P(A|C) = 1.6 / 2
    c = conditional_cooccurrence(LABELS, NAMES, alpha=1)
    assert c.conditional[0, 1] == pytest.approx(0.65)
    assert c.conditional[0, 2] == pytest.approx(0.3)
    assert c.conditional[2, 0] == pytest.approx(0.8)
    assert np.diag(c.conditional).tolist() == [1, 1, 1]
    strong = conditional_cooccurrence(LABELS, NAMES, alpha=1e6)
    assert strong.conditional[2, :2] == pytest.approx([0.6, 0.6], abs=1e-5)


def test_a_finding_never_seen_gives_the_marginal_or_none():
    labels = np.array([[1, 0], [0, 0], [1, 0]])
    smoothed = conditional_cooccurrence(labels, ("A", "B"), alpha=2)
    assert smoothed.conditional[1, 0] == pytest.approx(2 / 3)  # no B at all: P(A | B) falls back to P(A)
    raw = conditional_cooccurrence(labels, ("A", "B"), alpha=0)
    assert np.isnan(raw.conditional[1]).all()
    block = raw.as_json()
    assert block["matrix"][1] == [None, None] and block["findings"] == ["A", "B"]


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="no images"):
        conditional_cooccurrence(np.zeros((0, 2)), ("A", "B"), 1)
    with pytest.raises(ValueError, match="do not match"):
        conditional_cooccurrence(LABELS, ("A", "B"), 1)
    with pytest.raises(ValueError, match="alpha"):
        conditional_cooccurrence(LABELS, NAMES, -1)
