"""The classifier's losses: plain BCE on text-mined labels, two prior-aware variants, a comorbidity term and
the anatomy (segmentation) term. Formulations and the reasons for them: docs/classifier.md.

Notation, per finding: y the text-mined label, t the true label, p = P(t=1 | x) the network's estimate,
a = P(t=1 | y=1) and b = P(t=1 | y=0) from priors.json, m = P(y=1) the text-mined prevalence of the training
split. Bayes gives the true prevalence pi = a m + b (1 - m) and the noise channel

    s = P(y=1 | t=1) = a m / pi                 (text-mining sensitivity)
    f = P(y=1 | t=0) = (1 - a) m / (1 - pi)     (text-mining false-positive rate)

* ``forward``: the network models the clean label; the loss is BCE between the implied mined probability
  q = s p + f (1 - p) and y (forward noise correction with the 2x2 noise matrix, Patrini et al. 2017).
* ``soft``: BCE between p and the soft target P(t=1 | y), i.e. a for y=1 and b for y=0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# Probabilities are kept this far from 0 and 1 inside logs.
EPS = 1e-6


@dataclass(frozen=True)
class NoiseChannel:
    """Per-finding text-mining channel: s = P(y=1 | t=1), f = P(y=1 | t=0); and the priors a, b."""

    sensitivity: np.ndarray
    false_positive_rate: np.ndarray
    p_true_given_pos: np.ndarray
    p_true_given_neg: np.ndarray

    @classmethod
    def from_priors(
        cls,
        p_true_given_pos: Sequence[float] | np.ndarray,
        p_true_given_neg: Sequence[float] | np.ndarray,
        mined_prevalence: Sequence[float] | np.ndarray,
    ) -> NoiseChannel:
        """Bayes: pi = a m + b (1 - m); s = a m / pi; f = (1 - a) m / (1 - pi). Requires b < a (an
        informative label); the result is clipped so that f < s, which keeps q monotone in p."""
        a = np.asarray(p_true_given_pos, dtype=np.float64)
        b = np.asarray(p_true_given_neg, dtype=np.float64)
        m = np.clip(np.asarray(mined_prevalence, dtype=np.float64), EPS, 1 - EPS)
        if not (a.shape == b.shape == m.shape):
            raise ValueError("priors and prevalence must have one value per finding")
        pi = np.clip(a * m + b * (1 - m), EPS, 1 - EPS)
        s = np.clip(a * m / pi, EPS, 1.0)
        f = np.clip((1 - a) * m / (1 - pi), 0.0, 1 - EPS)
        f = np.minimum(f, s - EPS)
        return cls(s, f, a, b)


def bce(logits: torch.Tensor, mined: torch.Tensor) -> torch.Tensor:
    """Plain binary cross-entropy on the text-mined labels, mean over images and findings."""
    return F.binary_cross_entropy_with_logits(logits, mined)


def forward_corrected(logits: torch.Tensor, mined: torch.Tensor, channel: NoiseChannel) -> torch.Tensor:
    """BCE of q = s p + f (1 - p) against the text-mined labels; p = sigmoid(logits) estimates P(t=1 | x)."""
    s = torch.as_tensor(channel.sensitivity, dtype=torch.float32, device=logits.device)
    f = torch.as_tensor(channel.false_positive_rate, dtype=torch.float32, device=logits.device)
    p = torch.sigmoid(logits.float())
    q = (f + (s - f) * p).clamp(EPS, 1 - EPS)
    y = mined.float()
    return -(y * torch.log(q) + (1 - y) * torch.log1p(-q)).mean()


def soft_targets(mined: torch.Tensor, channel: NoiseChannel) -> torch.Tensor:
    a = torch.as_tensor(channel.p_true_given_pos, dtype=torch.float32, device=mined.device)
    b = torch.as_tensor(channel.p_true_given_neg, dtype=torch.float32, device=mined.device)
    return torch.where(mined > 0.5, a, b)


def soft_target_bce(logits: torch.Tensor, mined: torch.Tensor, channel: NoiseChannel) -> torch.Tensor:
    """BCE of p against P(t=1 | y): a where y=1, b where y=0."""
    return F.binary_cross_entropy_with_logits(logits.float(), soft_targets(mined, channel))


PRIOR_CORRECTIONS = ("none", "forward", "soft")


def finding_loss(
    logits: torch.Tensor, mined: torch.Tensor, channel: NoiseChannel | None, correction: str
) -> torch.Tensor:
    """The classifier's loss on text-mined labels under a prior correction (``none``, ``forward`` or
    ``soft``; the last two need the ``channel`` from priors.json). The classifier trains with it, and the
    anonymizer scores its utility with it, so both mean the same thing by "the classifier's loss"."""
    if correction not in PRIOR_CORRECTIONS:
        raise ValueError(f"correction must be one of {', '.join(PRIOR_CORRECTIONS)}, not {correction!r}")
    if correction == "none":
        return bce(logits.float(), mined)
    if channel is None:
        raise ValueError(f"the {correction} correction needs the noise channel from priors.json")
    if correction == "forward":
        return forward_corrected(logits, mined, channel)
    return soft_target_bce(logits, mined, channel)


def comorbidity_penalty(probabilities: torch.Tensor, conditional: torch.Tensor) -> torch.Tensor:
    """How far the batch's predicted co-occurrence is from the priors' P(j | i).

    With p_bi the predicted probability of finding i on image b (findings independent given the image),
    the batch's predicted conditional is C^_ij = sum_b p_bi p_bj / sum_b p_bi. The penalty is the
    mean over i != j of (C^_ij - C_ij)^2, each row weighted by finding i's predicted mass w_i = mean_b p_bi
    (normalized to sum to 1): a finding the batch hardly predicts says little about its co-occurrence.
    """
    p = probabilities.float()
    c = conditional.to(p.device, torch.float32)
    k = p.shape[1]
    mass = p.sum(dim=0)  # [k]
    joint = p.T @ p  # [k, k]: sum_b p_bi p_bj
    predicted = joint / mass.clamp_min(EPS).unsqueeze(1)
    off_diagonal = 1.0 - torch.eye(k, device=p.device)
    squared = ((predicted - c) ** 2 * off_diagonal).sum(dim=1) / max(k - 1, 1)
    weight = mass / mass.sum().clamp_min(EPS)
    return (weight * squared).sum()


def dice_bce(mask_logits: torch.Tensor, masks: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """Anatomy term: BCE plus (1 - soft Dice), Dice averaged over the mask channels and images."""
    target = masks.float()
    logits = mask_logits.float()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dims = (2, 3)
    intersection = (p * target).sum(dims)
    dice = (2 * intersection + smooth) / (p.sum(dims) + target.sum(dims) + smooth)
    return cross_entropy + (1 - dice).mean()
