"""What an attacker family hands the shared epoch loop: the module to optimize and checkpoint, the attacker
inside it, its batches, loss, validation and the metric that picks the best epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from cxrpriv.reid.pair_model import PairModel


class EpochBatches(Iterable[Any], Protocol):
    """One epoch's training batches, with len() (steps) and the number of images they show."""

    def __len__(self) -> int: ...

    @property
    def images(self) -> int: ...


@dataclass
class Trainer:
    module: torch.nn.Module  # optimized and checkpointed (the attacker, or the attacker with training heads)
    attacker: PairModel  # what is saved and evaluated
    optimizer: torch.optim.Optimizer
    batches: Callable[[int], EpochBatches]  # epoch (1-based) -> that epoch's batches
    training_loss: Callable[[Any], torch.Tensor]
    validate: Callable[[], dict[str, float]]
    monitor: str  # a key of validate()'s result
    mode: str  # "min" or "max"
    training_data: dict[str, int]  # what one epoch shows the attacker, for the report
    validation_pairs: int
    validation_split: str
    # After the best weights are loaded: e.g. calibrating the metric attacker's logits.
    finish: Callable[[], dict[str, float]] | None = None
