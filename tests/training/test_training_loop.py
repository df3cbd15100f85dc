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
