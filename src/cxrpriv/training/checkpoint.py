"""One resumable checkpoint per training run, rewritten atomically at the end of every epoch.

Everything in it (model, optimizer and scaler state, best weights so far, early-stopping counters, the
metric history) is tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``: a
checkpoint from an untrusted place cannot run code. A fingerprint of the run's config is stored too; resuming
with a different config is refused instead of silently mixing two runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

FORMAT = "cxrpriv.checkpoint/1"
CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointMismatch(RuntimeError):
    pass


class CheckpointStore:
    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self.path = self.directory / CHECKPOINT_FILE

    def save(self, state: Mapping[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".pt.tmp")
        torch.save({"format": FORMAT, "fingerprint": self.fingerprint, **state}, tmp)
        os.replace(tmp, self.path)  # a kill during the write leaves the previous checkpoint intact

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none; raises if it belongs to another config."""
        if not self.path.is_file():
            return None
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("format") != FORMAT:
            raise CheckpointMismatch(
                f"{self.path}: not a {FORMAT} checkpoint (found {state.get('format')!r})"
            )
        if state.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatch(
                f"{self.path} was written by a run with another configuration; delete it (or pass --force "
                "to the stage) to start over"
            )
        return state

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def default_checkpoint_dir(out: Path) -> Path:
    """``<out>.checkpoint`` beside a stage's output: DVC deletes outputs before a rerun, not this."""
    return Path(out).with_name(Path(out).name + ".checkpoint")


def save_state_dict(model: torch.nn.Module | Mapping[str, torch.Tensor], path: Path) -> None:
    """Weights only, as a state dict (tensors on CPU), written atomically."""
    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({k: v.detach().cpu() for k, v in state.items()}, tmp)
    os.replace(tmp, path)


def load_state_dict(path: Path, map_location: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    return torch.load(Path(path), map_location=map_location, weights_only=True)
