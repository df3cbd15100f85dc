"""What both attacker families are: a trunk, a pooling step and a linear layer give each film a feature
vector; a family adds how a film's features are finished (``embed``) and how two are compared (``score``).
A pair ``forward`` on top lets the anonymizer and the MLflow model score image pairs directly."""

from __future__ import annotations

import torch
from torch import nn

from cxrpriv.networks.backbones import Backbone, pooled_size


class PairModel(nn.Module):
    def __init__(self, trunk: Backbone, feature_dim: int, pool: str, image_size: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.pool = pool
        self.features = nn.Linear(pooled_size(trunk, pool, image_size), feature_dim)

    def pooled_features(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] images in [0, 1] -> [B, feature_dim], before the family's finishing step."""
        maps = self.trunk(images)
        return self.features(maps.mean(dim=(2, 3)) if self.pool == "average" else maps.flatten(1))

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def head(self, difference: torch.Tensor) -> torch.Tensor:
        """The difference of two films' features [..., feature_dim] -> same-patient logits [...]."""
        raise NotImplementedError

    def score(self, features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """[B, 2, H, W] (the two images of each pair as channels) -> [B] logits."""
        if pairs.ndim != 4 or pairs.shape[1] != 2:
            raise ValueError(f"expected pairs as [B, 2, H, W], got shape {tuple(pairs.shape)}")
        features = self.embed(torch.cat([pairs[:, :1], pairs[:, 1:]], dim=0))
        first, second = features.chunk(2)
        return self.score(first, second)
