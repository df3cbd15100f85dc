"""Privacy terms: the published one is fooled by a uniform shift, the rank-based ones only by a lower AUC."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cxrpriv.anonymize.privacy_loss import (
    paper_privacy_loss,
    rank_privacy_loss,
    similarity_privacy_loss,
)

LOGITS = torch.tensor([2.5, 1.0, -0.5, 0.3, -2.0, 1.7])
LABELS = torch.tensor([True, True, False, False, False, True])


def _empirical_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    positive, negative = scores[labels], scores[~labels]
    return (positive[:, None] > negative[None, :]).float().mean().item()


def test_paper_loss_is_minus_log_one_minus_sigmoid_and_stable():
    naive = -torch.log(1 - torch.sigmoid(LOGITS)).mean()
    torch.testing.assert_close(paper_privacy_loss(LOGITS), naive)
    large = paper_privacy_loss(torch.tensor([100.0, 200.0]))
    assert torch.isfinite(large) and large.item() == pytest.approx(150.0)


def test_a_uniform_shift_fools_the_paper_loss_but_not_the_rank_loss():
    shifted = LOGITS - 5.0  # every score down, the ranking (and the AUC) unchanged
    assert paper_privacy_loss(shifted) < 0.1 * paper_privacy_loss(LOGITS)
    for surrogate in ("sigmoid", "softplus"):
        before = rank_privacy_loss(LOGITS, LABELS, surrogate=surrogate)
        torch.testing.assert_close(rank_privacy_loss(shifted, LABELS, surrogate=surrogate), before)
        torch.testing.assert_close(rank_privacy_loss(LOGITS + 40.0, LABELS, surrogate=surrogate), before)


@pytest.mark.parametrize("surrogate", ["sigmoid", "softplus"])
def test_the_rank_loss_falls_only_when_same_patient_scores_drop_below_others(surrogate):
    identifying = rank_privacy_loss(LOGITS, LABELS, surrogate=surrogate)
    flipped = rank_privacy_loss(-LOGITS, LABELS, surrogate=surrogate)
    assert flipped < identifying
    logits = LOGITS.clone().requires_grad_()
    rank_privacy_loss(logits, LABELS, surrogate=surrogate).backward()
    # Descent pushes same-patient scores down and the others up, and moves no score "on average".
    assert (logits.grad[LABELS] > 0).all() and (logits.grad[~LABELS] < 0).all()
    assert logits.grad.sum().abs() < 1e-6


def test_at_a_small_temperature_the_sigmoid_surrogate_is_the_auc():
    scores = torch.tensor([3.0, 1.0, 2.0, 0.0])
    labels = torch.tensor([1, 1, 0, 0])  # 0/1 labels work like booleans
    assert _empirical_auc(scores, labels.bool()) == pytest.approx(0.75)
    loss = rank_privacy_loss(scores, labels, temperature=1e-3)
    assert loss.item() == pytest.approx(0.75, abs=1e-6)
    # A large temperature flattens it towards 1/2 instead.
    assert abs(rank_privacy_loss(scores, labels, temperature=1e3).item() - 0.5) < 1e-3


@pytest.mark.parametrize("labels", [torch.ones(4, dtype=torch.bool), torch.zeros(4, dtype=torch.bool)])
def test_a_batch_without_positives_or_negatives_gives_zero_that_backpropagates(labels):
    logits = torch.randn(4).requires_grad_()
    loss = rank_privacy_loss(logits, labels)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros(4))
    empty = torch.zeros(0, requires_grad=True)
    assert paper_privacy_loss(empty).item() == 0.0 and paper_privacy_loss(empty).requires_grad


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="surrogate"):
        rank_privacy_loss(LOGITS, LABELS, surrogate="hinge")
    with pytest.raises(ValueError, match="temperature"):
        rank_privacy_loss(LOGITS, LABELS, temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        rank_privacy_loss(LOGITS, LABELS[:3])


def _embeddings(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)


def test_similarity_loss_uses_cosine_so_the_embedding_norm_does_not_matter():
    anon, orig = _embeddings()
    same = torch.tensor([1, 0, 1, 0, 0, 1]).bool()
    loss = similarity_privacy_loss(anon, orig, same)
    scale = torch.tensor([5.0, 0.2, 3.0, 1.0, 7.0, 0.5])[:, None]
    torch.testing.assert_close(similarity_privacy_loss(anon * scale, orig, same), loss)
    cosine = F.cosine_similarity(anon, orig, dim=-1)
    torch.testing.assert_close(loss, rank_privacy_loss(cosine, same, temperature=0.1))


def test_similarity_loss_is_high_when_anonymized_films_still_look_like_their_originals():
    _, orig = _embeddings()
    same = torch.tensor([1, 0, 1, 0, 0, 1]).bool()
    noise = torch.randn(6, 8, generator=torch.Generator().manual_seed(1))
    # Same-patient pairs: the original itself, barely changed; different-patient pairs: unrelated.
    anon = torch.where(same[:, None], orig + 0.01 * noise, noise)
    leaking = similarity_privacy_loss(anon, orig, same)
    hidden = similarity_privacy_loss(torch.where(same[:, None], -orig, noise), orig, same)
    assert leaking.item() > 0.9 and hidden < leaking


def test_the_all_pairs_form_scores_every_anonymized_film_against_every_original():
    anon, orig = _embeddings(2)
    same = torch.eye(6, dtype=torch.bool)
    same[0, 3] = True  # film 0 and film 3 are one patient
    rows, cols = torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij")
    flat = similarity_privacy_loss(anon[rows.flatten()], orig[cols.flatten()], same.flatten())
    torch.testing.assert_close(similarity_privacy_loss(anon, orig, same), flat)
    none_same = similarity_privacy_loss(anon.requires_grad_(), orig, torch.zeros(6, 6, dtype=torch.bool))
    assert none_same.item() == 0.0 and none_same.requires_grad
