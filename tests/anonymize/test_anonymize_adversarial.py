"""The anonymizer's training pieces: patient batches, the privacy term, the helper views."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrpriv.anonymize.adversarial import PatientBatches, balanced_pair_bce, privacy_term
from cxrpriv.anonymize.data import View
from cxrpriv.reid.embedding import build_embedder
from cxrpriv.reid.model import build_verifier
from tests.anonymize.conftest import tiny_anonymizer_config

IDENTITY = torch.tensor([0, 0, 1, 1, 2, 2])


def test_patient_batches_are_full_hold_same_patient_pairs_and_follow_the_epoch_seed():
    patients = np.repeat([f"p{i}" for i in range(10)], 5)  # 10 patients x 5 films
    rows = np.arange(100, 150)
    config = tiny_anonymizer_config(batch_size=8, films_per_patient=2)
    batches = PatientBatches(config, rows, patients, epoch=1)
    parts = [batch.rows for batch in batches]
    assert len(parts) == len(batches) == 20 // 8 and all(len(p) == 8 for p in parts)
    for part in parts:
        assert set(part) <= set(rows)
        _, counts = np.unique(patients[part - 100], return_counts=True)
        assert counts.max() <= 2 and (counts == 2).any()
    again = [b.rows for b in PatientBatches(config, rows, patients, epoch=1)]
    other = [b.rows for b in PatientBatches(config, rows, patients, epoch=2)]
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(parts, other, strict=True))
    capped = PatientBatches(tiny_anonymizer_config(max_steps_per_epoch=1), rows, patients, 1)
    assert len(capped) == 1


def test_the_rank_term_ignores_a_uniform_logit_shift_the_paper_term_does_not():
    torch.manual_seed(0)
    verifier = build_verifier("small_cnn", width=4, depth=2, feature_dim=8).eval()
    generator = torch.Generator().manual_seed(0)
    anon, orig = torch.randn(6, 8, generator=generator), torch.randn(6, 8, generator=generator)
    before = {kind: privacy_term(verifier, anon, orig, IDENTITY, kind) for kind in ("paper", "rank")}
    with torch.no_grad():
        verifier.classifier.bias -= 3.0  # every logit 3 lower
    after = {kind: privacy_term(verifier, anon, orig, IDENTITY, kind) for kind in ("paper", "rank")}
    assert after["paper"] < 0.5 * before["paper"]
    torch.testing.assert_close(after["rank"], before["rank"])


def test_the_rank_term_falls_when_same_patient_pairs_stop_being_the_most_similar():
    torch.manual_seed(0)
    embedder = build_embedder("small_cnn", width=4, depth=2, feature_dim=8, pool="average").eval()
    orig = F.normalize(torch.randn(6, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    partner = torch.tensor([1, 0, 3, 2, 5, 4])  # each film's same-patient film
    linked = orig[partner]  # anonymized film i looks exactly like its patient's other original
    unlinked = orig[partner.roll(2)]  # ... like another patient's
    high = privacy_term(embedder, linked, orig, IDENTITY, "rank")
    low = privacy_term(embedder, unlinked, orig, IDENTITY, "rank")
    assert low < high
    # A film is never scored against its own original (the diagonal, cosine 1 here, is left out), and
    # cosines are compared at temperature 0.1.
    similarities = orig @ orig.T
    same = IDENTITY[:, None] == IDENTITY[None, :]
    off = ~torch.eye(6, dtype=torch.bool)
    positive, negative = similarities[same & off], similarities[~same & off]
    expected = F.softplus((positive[:, None] - negative[None, :]) / 0.1).mean()
    torch.testing.assert_close(
        privacy_term(embedder, orig, orig, IDENTITY, "rank", surrogate="softplus"), expected
    )
    with pytest.raises(ValueError, match="paper or rank"):
        privacy_term(embedder, orig, orig, IDENTITY, "other")


def test_balanced_pair_bce_weighs_both_kinds_of_pair_equally():
    logits = torch.tensor([2.0, 0.0, 0.0, 0.0, 0.0])
    same = torch.tensor([True, False, False, False, False])
    expected = 0.5 * F.softplus(torch.tensor(-2.0)) + 0.5 * F.softplus(torch.tensor(0.0))
    torch.testing.assert_close(balanced_pair_bce(logits, same), expected)


def test_views_resize_and_center_crop_like_the_helpers_saw_their_films():
    images = torch.rand(2, 1, 32, 32)
    assert View(32, 32)(images) is images
    torch.testing.assert_close(View(16, 16)(images), F.avg_pool2d(images, 2))
    assert View(64, 56)(images).shape == (2, 1, 56, 56)
    grown = View(64, 64)(images.requires_grad_())
    grown.sum().backward()  # differentiable: the generator learns through the helpers' views
    assert images.grad is not None
