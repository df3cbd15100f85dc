"""The linkage attack as a search: every query image against a gallery, by feature distance, then the
verification head.

1. **Shortlist**: the k gallery images nearest to each query in Euclidean feature distance. Queries go in
   chunks; a chunk's squared distances to the whole gallery are one matrix product
   (|g|^2 - 2 q.g, the query's own |q|^2 does not change its ranking), followed by a top-k. Memory is
   chunk x gallery x 4 bytes, whatever the number of queries; time is one pass of matrix products.
2. **Re-score**: the head scores |f_q - f_g| of the k shortlisted images; they are ranked by that score
   (the distance order breaks exact ties).

With the query set equal to the gallery (the test set against itself) a query's own image is excluded.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from cxrpriv.reid.metrics import ranking_metrics, summarize_ranking

Head = Callable[[torch.Tensor], torch.Tensor]


def shortlist(
    queries: torch.Tensor,
    gallery: torch.Tensor,
    k: int,
    chunk: int = 1024,
    exclude_self: bool = False,
) -> torch.Tensor:
    """[n_queries, k'] gallery indices, nearest first (k' = k, or fewer if the gallery is smaller).

    ``exclude_self``: query i is gallery item i (same set) and must not be returned for itself.
    """
    queries = queries.float()
    gallery = gallery.float()
    available = len(gallery) - (1 if exclude_self else 0)
    k = max(0, min(k, available))
    out = torch.empty((len(queries), k), dtype=torch.long, device=queries.device)
    if k == 0 or len(queries) == 0:
        return out
    gallery_norms = (gallery * gallery).sum(dim=1).unsqueeze(0)
    gallery_t = gallery.t().contiguous()
    for start in range(0, len(queries), chunk):
        block = queries[start : start + chunk]
        distances = torch.addmm(gallery_norms, block, gallery_t, beta=1.0, alpha=-2.0)
        if exclude_self:
            rows = torch.arange(len(block), device=block.device)
            distances[rows, rows + start] = float("inf")
        out[start : start + len(block)] = distances.topk(k, dim=1, largest=False, sorted=True).indices
    return out


def rescore(
    queries: torch.Tensor, gallery: torch.Tensor, candidates: torch.Tensor, head: Head, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank each query's candidates by head score: ([n, k] gallery indices, [n, k] scores), best first."""
    ranked = torch.empty_like(candidates)
    scores = torch.empty(candidates.shape, dtype=torch.float32, device=candidates.device)
    for start in range(0, len(queries), chunk):
        index = candidates[start : start + chunk]
        difference = (queries[start : start + chunk].unsqueeze(1) - gallery[index]).abs()
        score = head(difference).float()
        # A stable sort keeps the distance order among equal scores.
        order = torch.sort(score, dim=1, descending=True, stable=True).indices
        ranked[start : start + chunk] = index.gather(1, order)
        scores[start : start + chunk] = score.gather(1, order)
    return ranked, scores


def search(
    features: torch.Tensor,
    head: Head | None,
    k: int,
    *,
    chunk: int = 1024,
    gallery: torch.Tensor | None = None,
    aligned: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Shortlist by distance, re-score with ``head``: ([n, k] gallery indices, [n, k] scores), best first.

    ``gallery=None`` searches the set against itself (self excluded). With a separate ``gallery``,
    ``aligned`` says gallery item i is another version of query i's film (an original beside its anonymized
    copy): it is excluded, as the film itself is. ``head=None`` ranks by distance alone (negated distances).
    """
    exclude_self = gallery is None or aligned
    gallery = features if gallery is None else gallery
    candidates = shortlist(features, gallery, k, chunk, exclude_self=exclude_self)
    if head is None:
        distance = (features.unsqueeze(1) - gallery[candidates]).norm(dim=-1) if candidates.numel() else None
        scores = -distance if distance is not None else torch.empty(candidates.shape)
        return candidates, scores
    # Re-scoring gathers chunk x k x dim values; smaller chunks than the distance blocks stay in cache.
    return rescore(features, gallery, candidates, head, max(1, chunk // 4))


def retrieval_metrics(
    features: torch.Tensor | np.ndarray,
    identities: np.ndarray,
    head: Head | None,
    *,
    k: int = 100,
    chunk: int = 1024,
    gallery: torch.Tensor | np.ndarray | None = None,
    gallery_identities: np.ndarray | None = None,
    aligned: bool = False,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """mAP@R, R-precision and precision@1 of the queries ``features`` searched (see cxrpriv.reid.metrics).

    Without ``gallery`` the set is searched against itself; with one, queries (for example anonymized
    films) search that gallery (for example the original films), ``aligned`` as in :func:`search`.
    Returns the summary and per-query arrays (``n_relevant``, ``ap_at_r``, ``r_precision``,
    ``precision_at_1``, ``top1``: the index of the best-ranked gallery image or -1).
    """
    features = torch.as_tensor(features)
    device = _head_device(head)
    if device is not None:  # the search runs where the head's weights are (features may come from the CPU)
        features = features.to(device)
    identities = np.asarray(identities)
    if gallery is not None:
        gallery = torch.as_tensor(gallery).to(features.device)
        if gallery_identities is None or len(gallery_identities) != len(gallery):
            raise ValueError("a gallery needs one identity per gallery item")
        if aligned and len(gallery) != len(features):
            raise ValueError("an aligned gallery holds one item per query")
    with torch.no_grad():
        ranked, _ = search(features, head, k, chunk=chunk, gallery=gallery, aligned=aligned)
    ranked_np = ranked.cpu().numpy()
    codes, gallery_codes = _identity_codes(
        identities, identities if gallery is None else np.asarray(gallery_identities)
    )
    n_relevant = np.bincount(gallery_codes, minlength=codes.max(initial=-1) + 1)[codes]
    if gallery is None or aligned:
        n_relevant = n_relevant - 1  # the query's own film is not there to be found
    relevant = (
        gallery_codes[ranked_np] == codes[:, None] if ranked_np.size else np.zeros((len(codes), 0), bool)
    )
    if relevant.shape[1] == 0:  # a gallery of one: nothing ranked, every query misses
        relevant = np.zeros((len(codes), 1), dtype=bool)
    per_query = ranking_metrics(relevant, n_relevant)
    summary = summarize_ranking(per_query, n_relevant, ranked_np.shape[1])
    top1 = ranked_np[:, 0] if ranked_np.shape[1] else np.full(len(codes), -1)
    return summary, {"n_relevant": n_relevant, "top1": top1, **per_query}


def _identity_codes(queries: np.ndarray, gallery: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of query and gallery identities in one shared vocabulary."""
    _, codes = np.unique(np.concatenate([queries, gallery]).astype(str), return_inverse=True)
    return codes[: len(queries)], codes[len(queries) :]


def _head_device(head: Head | None) -> torch.device | None:
    """The device of the module a head belongs to (``model.head`` is a bound method), if any."""
    owner = getattr(head, "__self__", head)
    parameters = getattr(owner, "parameters", None)
    if not callable(parameters):
        return None
    first = next(iter(parameters()), None)
    return None if first is None else first.device
