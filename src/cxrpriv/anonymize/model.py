"""The trained anonymizer as the stage writes it: ``model.pt`` (the :class:`Anonymizer`'s state dict) and
``spec.json`` (:func:`~cxrpriv.anonymize.generator.anonymizer_spec`: builder, its arguments, image size).
Later stages rebuild it with :func:`load_anonymizer`; nothing is unpickled (``weights_only=True``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cxrpriv.anonymize.generator import BUILDER, Anonymizer, build_anonymizer
from cxrpriv.training.artifacts import load_model


def load_anonymizer(directory: Path, device: torch.device | str = "cpu") -> tuple[Anonymizer, dict[str, Any]]:
    """The trained anonymizer of a ``train_anonymizer`` output, in eval mode, and its spec."""
    return load_model(directory, {BUILDER: build_anonymizer}, "anonymizer", "train_anonymizer", device)
