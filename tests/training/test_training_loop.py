"""The shared epoch loop: early stopping keeps the best weights, and resume after a crash changes nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cxrpriv.training.accelerator import select_accelerator
from cxrpriv.training.checkpoint import CheckpointMismatch, CheckpointStore
from cxrpriv.training.loop import LoopSettings, fit
from cxrpriv.training.seeding import epoch_rng, seed_everything

X = torch.linspace(-1, 1, 64).unsqueeze(1)
Y = 3 * X - 0.5


class Crash(RuntimeError):
    pass


def _train(
    checkpoint: CheckpointStore | None, epochs: int, crash_at_step: int | None = None, patience: int = 10
):
    seed_everything(7)
    model = nn.Sequential(nn.Linear(1, 8), nn.Dropout(0.2), nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    steps = {"n": 0}

    def batches(epoch: int) -> list[torch.Tensor]:
        order = epoch_rng(7, epoch, "shuffle").permutation(len(X))
        return [torch.as_tensor(order[i : i + 16]) for i in range(0, len(X), 16)]

    def loss(index: torch.Tensor) -> torch.Tensor:
        steps["n"] += 1
        if crash_at_step is not None and steps["n"] == crash_at_step:
            raise Crash("killed mid-epoch")
        return nn.functional.mse_loss(model(X[index]), Y[index])

    def validate() -> dict[str, float]:
        return {"loss": float(nn.functional.mse_loss(model(X), Y))}

    settings = LoopSettings(max_epochs=epochs, patience=patience, seed=7, progress=False)
    result = fit(
        model,
        optimizer,
        train_batches=batches,
        training_loss=loss,
        validate=validate,
        accelerator=select_accelerator("cpu"),
        settings=settings,
        checkpoint=checkpoint,
    )
    return model, result


def test_resume_after_a_crash_mid_epoch_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    reference, ref_result = _train(None, epochs=5)
    store = CheckpointStore(tmp_path, fingerprint="cfg")
    with pytest.raises(Crash):
        _train(store, epochs=5, crash_at_step=4 * 2 + 3)  # 4 steps per epoch: dies in epoch 3
    assert torch.load(store.path, weights_only=True)["epoch"] == 2
    resumed, result = _train(store, epochs=5)
    assert result.resumed_after_epoch == 2
    assert len(result.history) == 5
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert [h["val_loss"] for h in result.history] == [h["val_loss"] for h in ref_result.history]


def test_early_stopping_keeps_the_best_epoch_weights() -> None:
    model, result = _train(None, epochs=60, patience=2)
    losses = [h["val_loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1
    assert result.best_score == min(losses)
    if result.stopped_early:
        assert len(losses) - result.best_epoch == 2
    # best_state is the model of the best epoch, not the last one
    model.load_state_dict(result.best_state)
    model.eval()
    with torch.no_grad():
        assert float(nn.functional.mse_loss(model(X), Y)) == pytest.approx(result.best_score, rel=1e-6)


def test_a_checkpoint_of_another_config_is_refused(tmp_path: Path) -> None:
    _train(CheckpointStore(tmp_path, fingerprint="config-a"), epochs=1)
    with pytest.raises(CheckpointMismatch, match="another configuration"):
        _train(CheckpointStore(tmp_path, fingerprint="config-b"), epochs=2)


def test_a_finished_run_resumes_to_its_result_without_training(tmp_path: Path) -> None:
    store = CheckpointStore(tmp_path, fingerprint="cfg")
    _, first = _train(store, epochs=3)
    _, again = _train(store, epochs=3, crash_at_step=1)  # would crash if it trained a single step
    assert again.resumed_after_epoch == 3
    assert again.history == first.history


# --- a stage that owns its step: two players, two optimizers ---------------------------------------------


def _train_two_players(checkpoint: CheckpointStore | None, epochs: int, crash_at_step: int | None = None):
    from cxrpriv.training.loop import StateGroup

    seed_everything(7)
    players = nn.ModuleDict(
        {"first": nn.Linear(1, 1), "second": nn.Sequential(nn.Linear(1, 4), nn.Linear(4, 1))}
    )
    optimizers = StateGroup(
        first=torch.optim.Adam(players["first"].parameters(), lr=0.05),
        second=torch.optim.SGD(players["second"].parameters(), lr=0.05, momentum=0.9),
    )
    steps = {"n": 0}

    def batches(epoch: int) -> list[torch.Tensor]:
        order = epoch_rng(7, epoch, "shuffle").permutation(len(X))
        return [torch.as_tensor(order[i : i + 16]) for i in range(0, len(X), 16)]

    def step(index: torch.Tensor) -> dict[str, float]:
        steps["n"] += 1
        if crash_at_step is not None and steps["n"] == crash_at_step:
            raise Crash("killed mid-epoch")
        # the second player fits what the first one leaves over, after the first has stepped
        optimizers["first"].zero_grad()
        first = nn.functional.mse_loss(players["first"](X[index]), Y[index])
        first.backward()
        optimizers["first"].step()
        optimizers["second"].zero_grad()
        residual = (Y[index] - players["first"](X[index])).detach()
        second = nn.functional.mse_loss(players["second"](X[index]), residual)
        second.backward()
        optimizers["second"].step()
        return {"loss": float(first.detach()), "second": float(second.detach())}

    def validate() -> dict[str, float]:
        return {"loss": float(nn.functional.mse_loss(players["first"](X), Y))}

    settings = LoopSettings(max_epochs=epochs, patience=10, seed=7, progress=False)
    result = fit(
        players,
        optimizers,
        train_batches=batches,
        step=step,
        validate=validate,
        accelerator=select_accelerator("cpu"),
        settings=settings,
        checkpoint=checkpoint,
    )
    return players, result


def test_a_stage_owned_step_resumes_every_player_and_optimizer(tmp_path: Path) -> None:
    reference, ref_result = _train_two_players(None, epochs=4)
    assert all("train_second" in r and r["train_loss"] > 0 for r in ref_result.history)
    store = CheckpointStore(tmp_path, fingerprint="cfg")
    with pytest.raises(Crash):
        _train_two_players(store, epochs=4, crash_at_step=4 * 2 + 2)  # 4 steps per epoch: dies in epoch 3
    resumed, result = _train_two_players(store, epochs=4)
    assert result.resumed_after_epoch == 2
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the SGD momentum and the Adam moments came back too
    assert [h["train_second"] for h in result.history] == [h["train_second"] for h in ref_result.history]


def test_the_loop_takes_exactly_one_of_training_loss_and_step() -> None:
    model = nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    settings = LoopSettings(max_epochs=1, patience=1, seed=0, progress=False)
    common = {"train_batches": lambda epoch: [], "validate": lambda: {"loss": 0.0}}
    with pytest.raises(ValueError, match="exactly one"):
        fit(model, optimizer, accelerator=select_accelerator("cpu"), settings=settings, **common)
    with pytest.raises(ValueError, match="exactly one"):
        fit(
            model,
            optimizer,
            training_loss=lambda b: b,
            step=lambda b: {"loss": 0.0},
            accelerator=select_accelerator("cpu"),
            settings=settings,
            **common,
        )
