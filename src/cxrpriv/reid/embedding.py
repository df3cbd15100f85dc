"""The metric-learning attacker: one trunk -> a unit-length embedding per image; a pair's score is the cosine
similarity of its two embeddings.

It is trained as a patient classifier over the training patients with a large-margin cosine loss (CosFace,
Wang et al. 2018): the class weights are unit vectors too, and the true patient's cosine must beat every other
patient's by ``margin`` before the loss lets go. That asks each film to lie *closer to its own patient than to
anyone else*, which is exactly what retrieval needs; a pairwise verifier only asks each pair to be on the
right side of one threshold (docs/verifier.md compares the two).

The saved attacker is the embedder alone (the class weights name training patients and are not needed to
attack anyone else). Its ``head`` maps the difference of two embeddings to a same-patient logit: for unit
vectors |a - b|^2 = 2 - 2 cos(a, b), so ``slope * cos + intercept`` is a function of the difference, and the
retrieval search (shortlist by distance, re-score with the head) ranks exactly by cosine. Slope and intercept
are fitted on validation pairs after training (a one-feature logistic regression), so the logit is a
calibrated probability and accuracy at 0.5 means something.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cxrpriv.networks.backbones import Backbone, build_backbone
from cxrpriv.reid.pair_model import PairModel

BUILDER = "cxrpriv.reid.embedding:build_embedder"


class CosineEmbedder(PairModel):
    # Buffers (register_buffer below), declared so that they type as tensors rather than as submodules.
    slope: torch.Tensor
    intercept: torch.Tensor

    def __init__(
        self, trunk: Backbone, feature_dim: int = 128, pool: str = "flatten", image_size: int = 0
    ) -> None:
        super().__init__(trunk, feature_dim, pool, image_size)
        # Batch-normalizing the features before the unit-length projection keeps every dimension in use.
        self.neck = nn.BatchNorm1d(feature_dim)
        self.register_buffer("slope", torch.tensor(10.0))
        self.register_buffer("intercept", torch.tensor(-5.0))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] images in [0, 1] -> [B, feature_dim] unit vectors."""
        return F.normalize(self.neck(self.pooled_features(images)).float(), dim=-1)

    def head(self, difference: torch.Tensor) -> torch.Tensor:
        """f_a - f_b (or its absolute value) [..., feature_dim] -> same-patient logits [...]."""
        cosine = 1.0 - 0.5 * (difference.float() ** 2).sum(dim=-1)
        return self.slope * cosine + self.intercept

    def score(self, features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
        return self.head(features_a - features_b)

    def calibrate(self, slope: float, intercept: float) -> None:
        self.slope.fill_(float(slope))
        self.intercept.fill_(float(intercept))


class CosFaceHead(nn.Module):
    """Large-margin cosine classification over the training patients (CosFace)."""

    def __init__(self, feature_dim: int, n_classes: int, scale: float, margin: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_classes, feature_dim) * 0.01)
        self.scale = scale
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        cosine = embeddings.float() @ F.normalize(self.weight.float(), dim=-1).t()
        target = F.one_hot(classes, cosine.shape[1]).to(cosine.dtype)
        return F.cross_entropy(self.scale * (cosine - self.margin * target), classes)


class MetricTrainer(nn.Module):
    """What the training loop optimizes and checkpoints: the embedder and the class weights together."""

    def __init__(self, embedder: CosineEmbedder, n_classes: int, scale: float, margin: float) -> None:
        super().__init__()
        self.embedder = embedder
        self.classes = CosFaceHead(embedder.features.out_features, n_classes, scale, margin)

    def forward(self, images: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        return self.classes(self.embedder.embed(images), classes)


def build_embedder(
    backbone: str = "small_cnn",
    *,
    width: int = 24,
    depth: int = 4,
    feature_dim: int = 128,
    pool: str = "flatten",
    image_size: int = 0,
) -> CosineEmbedder:
    """The registry builder (``cxrpriv.reid.embedding:build_embedder``): an untrained embedder."""
    return CosineEmbedder(build_backbone(backbone, width, depth), feature_dim, pool, image_size)
