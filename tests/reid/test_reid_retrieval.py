"""The chunked shortlist + re-scoring search against brute force over every pair."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cxrpriv.reid.metrics import ranking_metrics
from cxrpriv.reid.retrieval import retrieval_metrics, search, shortlist


def _planted(
    n_ids: int = 15, per_id: int = 4, dim: int = 8, seed: int = 0
) -> tuple[torch.Tensor, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_ids), rng.integers(1, per_id + 1, n_ids))
    centres = rng.normal(size=(n_ids, dim))
    features = centres[ids] + 0.7 * rng.normal(size=(len(ids), dim))
    return torch.tensor(features, dtype=torch.float32), ids


def _head(seed: int = 3, dim: int = 8) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(dim, 1)


@pytest.mark.parametrize("chunk", [1, 7, 1000])
def test_shortlist_is_the_brute_force_nearest_neighbours(chunk: int):
    features, _ = _planted()
    k = 6
    got = shortlist(features, features, k, chunk=chunk, exclude_self=True)
    distances = torch.cdist(features.double(), features.double())
    distances.fill_diagonal_(float("inf"))
    expected = distances.argsort(dim=1)[:, :k]
    assert torch.equal(got, expected)


def test_search_ranks_like_scoring_every_pair_with_the_head():
    features, _ = _planted()
    linear = _head()

    def head(difference: torch.Tensor) -> torch.Tensor:
        return linear(difference).squeeze(-1)

    n = len(features)
    with torch.no_grad():
        ranked, scores = search(features, head, k=n, chunk=5)  # shortlist = whole gallery
        every = head((features[:, None] - features[None]).abs())
    every.fill_diagonal_(-float("inf"))
    expected = every.argsort(dim=1, descending=True)[:, : n - 1]
    assert torch.equal(ranked, expected)
    assert torch.allclose(scores, every.gather(1, expected))


def test_retrieval_metrics_match_a_brute_force_reference():
    features, ids = _planted(seed=5)
    linear = _head(seed=6)

    def head(difference: torch.Tensor) -> torch.Tensor:
        return linear(difference).squeeze(-1)

    k = 5
    with torch.no_grad():
        summary, per_query = retrieval_metrics(features, ids, head, k=k, chunk=3)
        distance = torch.cdist(features.double(), features.double()).fill_diagonal_(float("inf"))
        scores = head((features[:, None] - features[None]).abs())
    n = len(ids)
    ap, p1 = [], []
    for q in range(n):
        r = int((ids == ids[q]).sum() - 1)
        candidates = distance[q].argsort()[:k].numpy()
        order = candidates[np.argsort(-scores[q, candidates].numpy(), kind="stable")]
        hits = [bool(ids[g] == ids[q]) for g in order]
        if r == 0:
            continue
        precision_sum = sum(sum(hits[: i + 1]) / (i + 1) for i in range(min(r, k)) if hits[i])
        ap.append(precision_sum / r)
        p1.append(float(hits[0]))
    assert summary["map_at_r"] == pytest.approx(np.mean(ap))
    assert summary["precision_at_1"] == pytest.approx(np.mean(p1))
    assert summary["n_queries_without_match"] == int(sum((ids == i).sum() == 1 for i in np.unique(ids)))
    reference = ranking_metrics(np.zeros((n, 1), bool), per_query["n_relevant"])
    assert np.array_equal(np.isnan(reference["ap_at_r"]), np.isnan(per_query["ap_at_r"]))


def test_perfectly_separated_identities_score_one():
    ids = np.repeat(np.arange(5), 3)
    features = torch.tensor(np.eye(5)[ids] * 10, dtype=torch.float32)
    summary, _ = retrieval_metrics(features, ids, head=None, k=10)
    assert summary["map_at_r"] == summary["precision_at_1"] == summary["r_precision"] == 1.0


@pytest.mark.parametrize("aligned", [True, False])
def test_queries_against_a_separate_gallery_match_brute_force(aligned: bool):
    """Anonymized queries against original films: a query's own film (its aligned gallery row) is left
    out and not counted as relevant; an unaligned gallery is searched whole."""
    features, ids = _planted(seed=7)
    gallery = features + 0.3 * torch.randn(features.shape, generator=torch.Generator().manual_seed(8))
    gallery_ids = ids if aligned else ids[::-1].copy()
    gallery = gallery if aligned else gallery.flip(0)
    linear = _head(seed=9)

    def head(difference: torch.Tensor) -> torch.Tensor:
        return linear(difference).squeeze(-1)

    k = len(ids)  # the whole gallery on the shortlist: ranking by the head alone
    with torch.no_grad():
        summary, per_query = retrieval_metrics(
            features,
            ids,
            head,
            k=k,
            chunk=4,
            gallery=gallery,
            gallery_identities=gallery_ids,
            aligned=aligned,
        )
        scores = head((features[:, None] - gallery[None]).abs())
    ap, p1 = [], []
    for q in range(len(ids)):
        candidates = [g for g in range(len(gallery)) if not (aligned and g == q)]
        order = sorted(candidates, key=lambda g: -float(scores[q, g]))
        hits = [bool(gallery_ids[g] == ids[q]) for g in order]
        r = sum(hits)
        assert per_query["n_relevant"][q] == r
        if r == 0:
            continue
        ap.append(sum(sum(hits[: i + 1]) / (i + 1) for i in range(r) if hits[i]) / r)
        p1.append(float(hits[0]))
    assert summary["map_at_r"] == pytest.approx(np.mean(ap))
    assert summary["precision_at_1"] == pytest.approx(np.mean(p1))


def test_a_gallery_needs_one_identity_per_item():
    features, ids = _planted()
    with pytest.raises(ValueError, match="one identity per gallery item"):
        retrieval_metrics(features, ids, None, gallery=features, gallery_identities=ids[:-1])
