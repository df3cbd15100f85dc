"""A trained model as a stage writes it: ``model.pt`` (a state dict) beside ``spec.json`` (the registry
builder that rebuilds the network, its arguments and input size), and the one way to load it back; and the
training stages' JSON (metrics, history) with NaN written as null.

Loading never unpickles code: the spec names a builder, which must be one the caller allows, and the
weights load with ``weights_only=True``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from cxrpriv.training.checkpoint import load_state_dict

MODEL_FILE = "model.pt"
SPEC_FILE = "spec.json"


def model_files(directory: Path) -> list[Path]:
    """The two files of a trained model in ``directory``."""
    return [Path(directory) / MODEL_FILE, Path(directory) / SPEC_FILE]


def model_digest(directory: Path) -> str:
    """The content digest of the trained model in ``directory`` (its state dict and spec): what a stage
    that uses the model records, and what its registered version is tagged with, so that one can be found
    from the other (:mod:`cxrpriv.tracking`)."""
    from cxrpriv.tracking import hash_inputs

    return hash_inputs(model_files(directory))


def load_model(
    directory: Path,
    builders: Mapping[str, Callable[..., torch.nn.Module]],
    kind: str,
    stage: str,
    device: torch.device | str = "cpu",
) -> tuple[Any, dict[str, Any]]:
    """The model saved in ``directory`` by ``stage``, rebuilt by the spec's builder (one of ``builders``:
    builder name -> function), with its weights, in eval mode on ``device``; and its spec.
    ``kind`` ("verifier", ...) names the model in the errors."""
    directory = Path(directory)
    spec_path = directory / SPEC_FILE
    if not spec_path.is_file():
        raise FileNotFoundError(f"{spec_path}: no {kind} spec here (is {directory} a {stage} output?)")
    spec = json.loads(spec_path.read_text())
    builder = builders.get(spec.get("builder", ""))
    if builder is None:
        raise ValueError(
            f"{spec_path}: builder {spec.get('builder')!r} is not the {kind}'s "
            f"({', '.join(sorted(builders))})"
        )
    model = builder(**spec["kwargs"])
    model.load_state_dict(load_state_dict(directory / MODEL_FILE))
    return model.to(device).eval(), spec


def finite(values: Any) -> Any:
    """NaN and infinities (e.g. an AUC on a split without both kinds of pair) as None, at any depth of
    dicts and lists: JSON null, not the non-standard NaN that strict readers refuse."""
    if isinstance(values, dict):
        return {k: finite(v) for k, v in values.items()}
    if isinstance(values, list):
        return [finite(v) for v in values]
    if isinstance(values, float) and not math.isfinite(values):
        return None
    return values


def write_metrics(path: Path, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The stage's metrics JSON (keys sorted, NaN as null), parent folders made; returns what was written."""
    written = finite(dict(metrics))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(written, indent=1, sort_keys=True) + "\n")
    return written
