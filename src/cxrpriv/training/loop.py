"""The epoch loop every training stage shares: mixed precision, validation, early stopping that keeps the
best weights, a checkpoint every epoch, resume, and timing that shows whether data loading keeps up.

A stage supplies three callables: ``train_batches(epoch)`` (an iterable of batches, seeded by the epoch),
``training_loss(batch)`` (called under autocast) and ``validate()`` (called in eval mode without gradients;
returns metrics including the monitored one). Because each epoch draws from streams seeded by
``(seed, epoch)``, a run killed at any point and resumed from its last checkpoint ends with the same weights
as a run that was never interrupted (on CPU bit for bit; on CUDA up to non-deterministic kernels).

A stage with more than one player (the anonymizer's generator against its verifier and classifier) owns its
optimizers: it passes ``step(batch) -> metrics`` instead of ``training_loss``. The loop then leaves the
backward passes, optimizer steps, autocast and loss scaling to ``step``, and only iterates, times, averages
the returned metrics (``"loss"`` is required: it becomes ``train_loss``; any other key ``k`` becomes
``train_k``), validates, stops early and checkpoints. The ``optimizer`` argument is then whatever holds the
stage's optimizer state, e.g. a :class:`StateGroup` of several optimizers and a gradient scaler: the loop
only calls its ``state_dict`` / ``load_state_dict``, and ``model`` should hold every module whose weights
change, so that the checkpoint and the best state cover them all.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from tqdm.auto import tqdm

from cxrpriv.training.accelerator import Accelerator
from cxrpriv.training.checkpoint import CheckpointStore
from cxrpriv.training.seeding import seed_torch_for_epoch


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class StateGroup:
    """Several stateful training objects (optimizers, gradient scalers) checkpointed as one, by name: what a
    stage that owns its ``step`` hands :func:`fit` as its ``optimizer``."""

    def __init__(self, **members: Stateful) -> None:
        self.members = members

    def __getitem__(self, name: str) -> Any:
        return self.members[name]

    def state_dict(self) -> dict[str, Any]:
        return {name: member.state_dict() for name, member in self.members.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != set(self.members):
            raise KeyError(f"checkpointed state holds {sorted(state)}, expected {sorted(self.members)}")
        for name, member in self.members.items():
            member.load_state_dict(state[name])


@dataclass(frozen=True)
class LoopSettings:
    max_epochs: int
    patience: int  # epochs without improvement of the monitored metric before stopping
    seed: int
    monitor: str = "loss"  # a key of validate()'s result, prefixed "val_" in the history
    mode: str = "min"  # "min" or "max"
    progress: bool = True
    description: str = "train"


@dataclass
class FitResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int  # 1-based; 0 if no epoch ran
    best_score: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False
    resumed_after_epoch: int = 0  # epochs that were already done when this process started


def _improved(score: float, best: float, mode: str) -> bool:
    if math.isnan(score):
        return False
    return score < best if mode == "min" else score > best


# One training step: a batch in, its metrics out ("loss" and whatever else the stage reports).
StepFn = Callable[[Any], Mapping[str, float | torch.Tensor]]


@dataclass
class _EpochTotals:
    """What one epoch's training steps add up to."""

    loss: float = 0.0
    steps: int = 0
    seconds: float = 0.0
    data_seconds: float = 0.0  # of ``seconds``, the time spent waiting for the next batch
    extra: dict[str, float] = field(default_factory=dict)  # sums of the other metrics a step returns

    def add(self, metrics: Mapping[str, float | torch.Tensor]) -> float:
        value = float(metrics["loss"])
        for key, metric in metrics.items():
            if key != "loss":
                self.extra[key] = self.extra.get(key, 0.0) + float(metric)
        self.loss += value
        self.steps += 1
        return value


# The keyword-only arguments are the loop's roles (what to iterate, how to step, how to validate, where to
# checkpoint); a dataclass of them would only rename them at the three call sites.
def fit(  # noqa: PLR0913
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | Stateful,
    *,
    train_batches: Callable[[int], Iterable[Any]],
    training_loss: Callable[[Any], torch.Tensor] | None = None,
    validate: Callable[[], dict[str, float]],
    accelerator: Accelerator,
    settings: LoopSettings,
    checkpoint: CheckpointStore | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    step: StepFn | None = None,
) -> FitResult:
    """Train ``model`` epoch by epoch; exactly one of ``training_loss`` (the loop steps ``optimizer``) and
    ``step`` (the stage steps its own optimizers) must be given."""
    if settings.mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', not {settings.mode!r}")
    if (training_loss is None) == (step is None):
        raise ValueError("give exactly one of training_loss (the loop steps the optimizer) and step")
    scaler = accelerator.grad_scaler()
    if step is None:
        assert training_loss is not None
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError("the loop steps a torch optimizer only: with a StateGroup, give the stage's step")
        step = _optimizer_step(training_loss, optimizer, accelerator, scaler)
    state = _initial_state(model, settings.mode)
    if checkpoint is not None:
        _resume(checkpoint, state, model, optimizer, scaler)
    resumed_after = int(state["epoch"])
    monitor = f"val_{settings.monitor}"

    while not state["stopped"] and state["epoch"] < settings.max_epochs:
        epoch = int(state["epoch"]) + 1
        seed_torch_for_epoch(settings.seed, epoch)
        model.train()
        totals = _train_epoch(train_batches(epoch), step, epoch, settings)
        val = _validate(model, validate, accelerator, settings.monitor)
        record = _epoch_record(epoch, totals, val)
        state["history"].append(record)
        _track_best(state, model, record[monitor], epoch, settings)
        state["epoch"] = epoch
        if checkpoint is not None:
            checkpoint.save(
                {
                    **state,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scaler": scaler.state_dict(),
                }
            )
        if on_epoch_end is not None:
            on_epoch_end(epoch, record)
        if settings.progress:
            tqdm.write(
                f"{settings.description} epoch {epoch}: train loss {record['train_loss']:.4f}, "
                f"{monitor} {record[monitor]:.4f} ({totals.steps} steps, {totals.seconds:.1f} s, "
                f"{totals.data_seconds:.1f} s waiting for data)"
            )

    return FitResult(
        best_state=state["best_state"],
        best_epoch=int(state["best_epoch"]),
        best_score=float(state["best_score"]),
        history=list(state["history"]),
        stopped_early=bool(state["stopped"]),
        resumed_after_epoch=resumed_after,
    )


def _optimizer_step(
    training_loss: Callable[[Any], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    accelerator: Accelerator,
    scaler: torch.amp.GradScaler,
) -> StepFn:
    """The step of a stage with one optimizer: the loss under autocast, a scaled backward pass, one step."""

    def step(batch: Any) -> dict[str, float]:
        optimizer.zero_grad(set_to_none=True)
        with accelerator.autocast():
            loss = training_loss(batch)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return {"loss": float(loss.detach())}

    return step


def _initial_state(model: torch.nn.Module, mode: str) -> dict[str, Any]:
    """The loop's state before its first epoch; the checkpoint holds these keys (plus the weights)."""
    return {
        "epoch": 0,
        "best_state": copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()}),
        "best_epoch": 0,
        "best_score": math.inf if mode == "min" else -math.inf,
        "bad_epochs": 0,
        "stopped": False,
        "history": [],
    }


def _resume(
    checkpoint: CheckpointStore,
    state: dict[str, Any],
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | Stateful,
    scaler: torch.amp.GradScaler,
) -> None:
    """Load the checkpoint, if there is one, into the weights, the optimizer, the scaler and ``state``."""
    resumed = checkpoint.load()
    if resumed is None:
        return
    model.load_state_dict(resumed["model"])
    optimizer.load_state_dict(resumed["optimizer"])
    scaler.load_state_dict(resumed["scaler"])
    state.update({k: resumed[k] for k in state})


def _train_epoch(batches: Iterable[Any], step: StepFn, epoch: int, settings: LoopSettings) -> _EpochTotals:
    """One pass over ``batches``, timing the wait for each batch apart from the step itself."""
    totals = _EpochTotals()
    start = time.perf_counter()
    length = len(batches) if isinstance(batches, Sized) else None
    bar = tqdm(
        total=length,
        desc=f"{settings.description} epoch {epoch}/{settings.max_epochs}",
        disable=not settings.progress,
        leave=False,
    )
    iterator = iter(batches)
    while True:
        fetch = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:
            break
        totals.data_seconds += time.perf_counter() - fetch
        value = totals.add(step(batch))
        bar.update(1)
        bar.set_postfix(loss=f"{value:.4f}")
    bar.close()
    totals.seconds = time.perf_counter() - start
    return totals


def _validate(
    model: torch.nn.Module, validate: Callable[[], dict[str, float]], accelerator: Accelerator, monitor: str
) -> dict[str, float]:
    model.eval()
    with torch.no_grad(), accelerator.autocast():
        val = validate()
    model.train()
    if monitor not in val:
        raise KeyError(f"validate() returned {sorted(val)}, without the monitored metric {monitor!r}")
    return val


def _epoch_record(epoch: int, totals: _EpochTotals, val: dict[str, float]) -> dict[str, float]:
    """One row of the history: training means over the epoch's steps, then the validation metrics."""
    steps = max(totals.steps, 1)
    return {
        "epoch": float(epoch),
        "train_loss": totals.loss / steps,
        **{f"train_{k}": v / steps for k, v in totals.extra.items()},
        "train_steps": float(totals.steps),
        "train_seconds": totals.seconds,
        "data_seconds": totals.data_seconds,
        **{f"val_{k}": float(v) for k, v in val.items()},
    }


def _track_best(
    state: dict[str, Any], model: torch.nn.Module, score: float, epoch: int, settings: LoopSettings
) -> None:
    """Keep the weights of an improved epoch; otherwise count towards early stopping."""
    if _improved(score, state["best_score"], settings.mode):
        state["best_state"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        state["best_epoch"], state["best_score"], state["bad_epochs"] = epoch, score, 0
    else:
        state["bad_epochs"] += 1
        state["stopped"] = state["bad_epochs"] >= settings.patience
