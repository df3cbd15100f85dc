"""The siamese verifier: one shared trunk -> global average pool -> 128 features per image; a pair's logit is
a linear layer over the absolute difference of its two feature vectors (Packhaeuser et al. 2022).

``pool="flatten"`` replaces the global average pool by flattening the trunk's (small) last feature map, so
the features keep *where* a structure is, not only *that* it is there. On the synthetic cohort identity is
mostly geometry (lung outlines, heart, ribs), and the small default trunk learns it much faster that way
(docs/verifier.md); the published ResNet-50 profile keeps the average pool.

Kept as a state dict (``model.pt``) plus ``spec.json`` (builder and its arguments, input size), so the
anonymizer and the evaluate stage rebuild it with :func:`load_verifier` and never unpickle code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrpriv.networks.backbones import Backbone, build_backbone
from cxrpriv.reid.pair_model import PairModel
from cxrpriv.training.artifacts import load_model

BUILDER = "cxrpriv.reid.model:build_verifier"
# Either attacker family (a Verifier or a reid.embedding.CosineEmbedder): same interface, see load_verifier.
Attacker = PairModel


class Verifier(PairModel):
    def __init__(
        self, trunk: Backbone, feature_dim: int = 128, pool: str = "average", image_size: int = 0
    ) -> None:
        super().__init__(trunk, feature_dim, pool, image_size)
        self.classifier = nn.Linear(feature_dim, 1)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 1, H, W] images in [0, 1] -> [B, feature_dim] features."""
        return self.pooled_features(images)

    def head(self, difference: torch.Tensor) -> torch.Tensor:
        """|f_a - f_b| [..., feature_dim] -> same-patient logits [...]."""
        return self.classifier(difference).squeeze(-1)

    def score(self, features_a: torch.Tensor, features_b: torch.Tensor) -> torch.Tensor:
        return self.head((features_a - features_b).abs())


def build_verifier(
    backbone: str = "small_cnn",
    *,
    width: int = 24,
    depth: int = 4,
    feature_dim: int = 128,
    pool: str = "average",
    image_size: int = 0,
) -> Verifier:
    """The registry builder (``cxrpriv.reid.model:build_verifier``): an untrained verifier.

    ``image_size`` matters only for ``pool="flatten"`` (the flattened map's length depends on it).
    """
    return Verifier(build_backbone(backbone, width, depth), feature_dim, pool, image_size)


BUILDERS: dict[str, Callable[..., Attacker]] = {}  # filled below: spec "builder" -> function


def verifier_spec(kwargs: Mapping[str, Any], image_size: int, builder: str = BUILDER) -> dict[str, Any]:
    return {
        "builder": builder,
        "kwargs": dict(kwargs),
        "image_size": int(image_size),
        "input": "float [B, 1, image_size, image_size] in [0, 1] per image; forward takes [B, 2, H, W] pairs",
    }


def load_verifier(directory: Path, device: torch.device | str = "cpu") -> tuple[Attacker, dict[str, Any]]:
    """The trained attacker of a ``train_reid`` output (``model.pt`` + ``spec.json``), in eval mode.

    Either family: the siamese :class:`Verifier` or the metric-learning
    :class:`~cxrpriv.reid.embedding.CosineEmbedder`; both offer ``embed``, ``head``, ``score`` and a pair
    ``forward`` and are differentiable in their input images.
    """
    return load_model(directory, BUILDERS, "verifier", "train_reid", device)


def _register_builders() -> None:
    from cxrpriv.reid.embedding import BUILDER as EMBEDDER
    from cxrpriv.reid.embedding import build_embedder

    BUILDERS.update({BUILDER: build_verifier, EMBEDDER: build_embedder})


_register_builders()
