"""The trained anonymizer as the stage writes it: ``model.pt`` (the :class:`Anonymizer`'s state dict) and
``spec.json`` (:func:`~cxrpriv.anonymize.generator.anonymizer_spec`: builder, its arguments, image size).
Later stages rebuild it with :func:`load_anonymizer`; nothing is unpickled (``weights_only=True``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cxrpriv.anonymize.generator import BUILDER, Anonymizer, build_anonymizer
from cxrpriv.training.checkpoint import load_state_dict

MODEL_FILE = "model.pt"
SPEC_FILE = "spec.json"


def load_anonymizer(directory: Path, device: torch.device | str = "cpu") -> tuple[Anonymizer, dict[str, Any]]:
    """The trained anonymizer of a ``train_anonymizer`` output, in eval mode, and its spec."""
    directory = Path(directory)
    spec_path = directory / SPEC_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(
            f"{spec_path}: no anonymizer spec here (is {directory} a train_anonymizer output?)"
        )
    spec = json.loads(spec_path.read_text())
    if spec.get("builder") != BUILDER:
        raise ValueError(f"{spec_path}: builder {spec.get('builder')!r} is not the anonymizer's ({BUILDER})")
    model = build_anonymizer(**spec["kwargs"])
    model.load_state_dict(load_state_dict(directory / MODEL_FILE))
    return model.to(device).eval(), spec
