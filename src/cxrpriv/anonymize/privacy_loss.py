"""Privacy terms of the anonymizer: what the generator minimizes so that an attacker cannot link its output
to the original film.

The published term, mean -log(1 - sigmoid(s)) over all (anonymized, original) pairs, asks every verifier
logit to go down. Shifting all logits by one constant does that and leaves the ranking, hence the attacker's
AUC, unchanged (the audit saw this term vary 9x while the AUC stayed ~0.90). :func:`paper_privacy_loss` keeps
it for comparison only.

:func:`rank_privacy_loss` and :func:`similarity_privacy_loss` are smooth surrogates of the attacker's AUC:
the mean over (same-patient, different-patient) pairs of sigmoid((s_pos - s_neg) / t) (or softplus). They
depend on score *differences* only, so a uniform shift does nothing, and they fall only when same-patient
scores drop below different-patient scores. With sigmoid and a small t the value is close to the AUC itself;
sigmoid saturates when the attacker is very sure (gradient ~ 1 / t * sigmoid'), softplus keeps a gradient
there. Note that an AUC far below 0.5 is as identifying as one far above it once an attacker flips its
decision; in the adversarial loop the retrained verifier does that, which keeps the optimum near 0.5.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SURROGATES = ("sigmoid", "softplus")


def _zero_with_grad(*tensors: torch.Tensor) -> torch.Tensor:
    """A zero that stays in the autograd graph of ``tensors`` (so ``backward`` works on every batch)."""
    return sum((tensor.sum() * 0.0 for tensor in tensors), start=torch.zeros((), device=tensors[0].device))


def paper_privacy_loss(logits: torch.Tensor) -> torch.Tensor:
    """PriCheXy-Net's term: mean of -log(1 - sigmoid(s)) = softplus(s) over all pairs (stable form)."""
    if logits.numel() == 0:
        return _zero_with_grad(logits)
    return F.softplus(logits).mean()


def pairwise_auc_surrogate(
    positive: torch.Tensor,
    negative: torch.Tensor,
    temperature: float = 1.0,
    surrogate: str = "sigmoid",
) -> torch.Tensor:
    """Mean over all (positive, negative) score pairs of surrogate((pos - neg) / temperature).

    Zero (in the graph) when either side is empty: such a batch says nothing about the ranking.
    """
    if surrogate not in SURROGATES:
        raise ValueError(f"surrogate must be one of {', '.join(SURROGATES)}, not {surrogate!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    positive, negative = positive.reshape(-1), negative.reshape(-1)
    if positive.numel() == 0 or negative.numel() == 0:
        return _zero_with_grad(positive, negative)
    margins = (positive[:, None] - negative[None, :]) / temperature
    values = torch.sigmoid(margins) if surrogate == "sigmoid" else F.softplus(margins)
    return values.mean()


def _split(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if scores.shape != labels.shape:
        raise ValueError(f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} differ in shape")
    same = labels.to(device=scores.device).bool()
    return scores[same], scores[~same]


def rank_privacy_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 1.0,
    surrogate: str = "sigmoid",
) -> torch.Tensor:
    """A smooth AUC of verifier ``logits`` of (anonymized, original) pairs; ``labels``: same patient.

    Invariant to adding a constant to all logits; lower only when same-patient pairs score below
    different-patient ones.
    """
    positive, negative = _split(logits, labels)
    return pairwise_auc_surrogate(positive, negative, temperature, surrogate)


def cosine_similarities(emb_anon: torch.Tensor, emb_orig: torch.Tensor, pairwise: bool) -> torch.Tensor:
    """Cosine similarity of row i with row i ([B]), or of every row with every row ([Ba, Bo])."""
    if pairwise:
        return F.normalize(emb_anon, dim=-1) @ F.normalize(emb_orig, dim=-1).T
    return F.cosine_similarity(emb_anon, emb_orig, dim=-1)


def similarity_privacy_loss(
    emb_anon: torch.Tensor,
    emb_orig: torch.Tensor,
    same: torch.Tensor,
    temperature: float = 0.1,
    surrogate: str = "sigmoid",
) -> torch.Tensor:
    """A smooth AUC of a cosine-embedding attacker: same-patient pairs should not be the most similar.

    ``emb_anon`` [Ba, D] (anonymized films) and ``emb_orig`` [Bo, D] (original films). ``same`` is either
    [B] (pair i is row i of both, Ba = Bo = B) or [Ba, Bo] (every anonymized film against every original, as
    a retrieval attacker sees them). Cosine similarities lie in [-1, 1], hence the smaller default t.
    """
    if emb_anon.ndim != 2 or emb_orig.ndim != 2:
        raise ValueError(
            f"expected embeddings [B, D], got {tuple(emb_anon.shape)} and {tuple(emb_orig.shape)}"
        )
    if same.ndim not in (1, 2):
        raise ValueError(f"same must be [B] or [Ba, Bo], got shape {tuple(same.shape)}")
    similarities = cosine_similarities(emb_anon, emb_orig, pairwise=same.ndim == 2)
    positive, negative = _split(similarities, same)
    return pairwise_auc_surrogate(positive, negative, temperature, surrogate)
