"""The classifier network: a trunk, global average pooling and one logit per finding, plus an optional
anatomy head (a small decoder from the trunk's feature map to right lung, left lung and heart masks).

``forward`` returns the finding logits only, so the registered MLflow model and every caller see one tensor;
training with the anatomy head calls :meth:`Classifier.forward_with_masks`.

Kept as a state dict (``model.pt``) plus ``spec.json`` (builder and its arguments, findings, input size,
priors used), so the anonymizer and the evaluate stage rebuild it with :func:`load_classifier` and never
unpickle code.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.networks.backbones import build_backbone
from cxrpriv.training.artifacts import load_model

ANATOMY_CHANNELS = 3  # right lung, left lung, heart
BUILDER = "cxrpriv.classify.model:build_classifier"


class AnatomyHead(nn.Module):
    """Two 3x3 conv + upsample steps and a 1x1 conv; the result is upsampled to the input size."""

    def __init__(self, channels: int, width: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(width, width, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(width, ANATOMY_CHANNELS, 1),
        )

    def forward(self, features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return F.interpolate(self.body(features), size=size, mode="bilinear", align_corners=False)


class Classifier(nn.Module):
    def __init__(
        self,
        backbone: str = "small_cnn",
        *,
        width: int = 24,
        depth: int = 4,
        n_findings: int = 14,
        anatomy_head: bool = False,
        dropout: float = 0.0,
        stem: int = 1,
    ) -> None:
        super().__init__()
        self.trunk = build_backbone(backbone, width, depth, stem)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self.trunk.channels, n_findings)
        self.anatomy = AnatomyHead(self.trunk.channels) if anatomy_head else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_masks(x, masks=False)[0]

    def forward_with_masks(
        self, x: torch.Tensor, masks: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.trunk(x)
        logits = self.head(self.dropout(features.mean(dim=(2, 3))))
        if not masks or self.anatomy is None:
            return logits, None
        return logits, self.anatomy(features, (x.shape[-2], x.shape[-1]))


def build_classifier(
    backbone: str = "small_cnn",
    *,
    width: int = 24,
    depth: int = 4,
    n_findings: int = 14,
    anatomy_head: bool = False,
    dropout: float = 0.0,
    stem: int = 1,
) -> Classifier:
    """The builder the MLflow model spec names (``cxrpriv.classify.model:build_classifier``)."""
    return Classifier(
        backbone,
        width=width,
        depth=depth,
        n_findings=n_findings,
        anatomy_head=anatomy_head,
        dropout=dropout,
        stem=stem,
    )


def model_spec(config: ClassifierConfig) -> dict[str, Any]:
    """How to rebuild the network of ``config``: its builder and the builder's arguments."""
    return {
        "builder": BUILDER,
        "kwargs": {
            "backbone": config.backbone,
            "width": config.width,
            "depth": config.depth,
            "n_findings": len(config.finding_names),
            "anatomy_head": config.anatomy_weight > 0,
            "dropout": config.dropout,
            "stem": config.stem,
        },
    }


def classifier_artifact_spec(
    model_spec: dict[str, Any],
    findings: Sequence[str],
    input_size: int,
    image_size: int,
    priors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``spec.json`` of a trained classifier: how to rebuild it (``model_spec``), the findings in logit
    order, the size it sees (``input_size``) and the size images are resized to before the center crop of
    ``input_size`` (``image_size``: readers that feed it other images, e.g. the anonymizer, reproduce its
    evaluation view from it), and the priors it was trained with."""
    return {
        **model_spec,
        "findings": list(findings),
        "input_size": int(input_size),
        "image_size": int(image_size),
        "priors": priors if priors is not None else {"source": "none"},
    }


def load_classifier(directory: Path, device: torch.device | str = "cpu") -> tuple[Classifier, dict[str, Any]]:
    """The trained classifier of a ``train_classifier`` output (``model.pt`` + ``spec.json``), in eval mode.

    The spec names the findings (``findings``, the order of the logits) and the size the network sees
    (``input_size``; ``image_size``, where present, is the size images were resized to before the center
    crop of ``input_size``).
    """
    return load_model(directory, {BUILDER: build_classifier}, "classifier", "train_classifier", device)
