"""The verifier stage as a function: ingest output in, trained attacker and its attack metrics out.

``train_reid(config, ingest_dir, checkpoint_dir)`` trains the attacker family ``config.method`` chose on the
train split (the metric-learning embedder or the siamese verifier; early stopping on the validation split,
best weights kept, a checkpoint every epoch), then attacks the test split with it (cxrpriv.reid.attack):
verification of fixed test pairs and retrieval of every test image among the others. Nothing is written
here except the checkpoint; ``run.py`` writes the outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import resource
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrpriv.dataset import manifest_path
from cxrpriv.reid.attack import AttackResult, AttackSettings, attack
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.reid.data import ReidData, load_reid_data
from cxrpriv.reid.embedding import BUILDER as EMBEDDER_BUILDER
from cxrpriv.reid.metric import metric_trainer
from cxrpriv.reid.model import BUILDER as VERIFIER_BUILDER
from cxrpriv.reid.model import verifier_spec
from cxrpriv.reid.pair_model import PairModel
from cxrpriv.reid.siamese import siamese_trainer
from cxrpriv.reid.training import Trainer
from cxrpriv.training.accelerator import Accelerator, select_accelerator
from cxrpriv.training.checkpoint import CheckpointStore
from cxrpriv.training.loop import FitResult, LoopSettings, fit
from cxrpriv.training.seeding import seed_everything

# Each attacker family: how to set up its training, and the builder that rebuilds the saved model.
FAMILIES: dict[str, tuple[Callable[[TrainReidConfig, ReidData, dict[str, Any]], Trainer], str]] = {
    "metric": (metric_trainer, EMBEDDER_BUILDER),
    "siamese": (siamese_trainer, VERIFIER_BUILDER),
}


@dataclass
class ReidResult:
    model: PairModel
    spec: dict[str, Any]
    metrics: dict[str, Any]
    history: list[dict[str, float]]
    test_pairs: pd.DataFrame  # image ids, pseudonyms, label, probability of each test pair
    retrieval: pd.DataFrame  # one row per test query
    roc: tuple[np.ndarray, np.ndarray]  # false and true positive rates
    device: dict[str, str]


def model_kwargs(config: TrainReidConfig, image_size: int) -> dict[str, Any]:
    return {
        "backbone": config.backbone,
        "width": config.width,
        "depth": config.depth,
        "feature_dim": config.feature_dim,
        "pool": config.pool,
        "image_size": image_size,
    }


def run_fingerprint(config: TrainReidConfig, manifest_path: Path) -> str:
    """The config and the exact input data: a checkpoint of anything else is refused on resume."""
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    digest.update(Path(manifest_path).read_bytes())
    return digest.hexdigest()[:32]


def _peak_memory_mb(accelerator: Accelerator) -> dict[str, float]:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 1024**2)
    peak = {"peak_rss_mb": rss}
    if accelerator.device.type == "cuda":
        peak["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(accelerator.device) / 2**20
    return peak


def train_reid(
    config: TrainReidConfig,
    ingest_dir: Path,
    checkpoint_dir: Path | None = None,
    device: str = "auto",
    progress: bool = True,
    *,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
    test_seed: int | None = None,
) -> ReidResult:
    """``test_seed``: draw the test pairs and the bootstrap from this seed instead of ``config.seed``, so
    that runs with different training seeds are measured on the same pairs."""
    accelerator = select_accelerator(device, config.mixed_precision)
    seed_everything(config.seed)
    data = load_reid_data(config, ingest_dir, accelerator, progress)
    kwargs = model_kwargs(config, data.size)
    setup, builder = FAMILIES[config.method]
    trainer = setup(config, data, kwargs)
    store = None
    if checkpoint_dir is not None:
        store = CheckpointStore(Path(checkpoint_dir), run_fingerprint(config, manifest_path(ingest_dir)))
    fitted, history = _fit(
        config, trainer, accelerator, store=store, progress=progress, on_epoch_end=on_epoch_end
    )
    trainer.module.load_state_dict(fitted.best_state)
    trainer.module.eval()
    calibration = trainer.finish() if trainer.finish is not None else {}
    model = trainer.attacker.eval()
    settings = AttackSettings.of(config)
    if test_seed is not None:
        settings = dataclasses.replace(settings, seed=test_seed)
    result = attack(model, data.films("test"), settings, accelerator=accelerator)
    metrics = _metrics(
        config, data, trainer=trainer, fitted=fitted, history=history, result=result, calibration=calibration
    )
    spec = verifier_spec(kwargs, data.size, builder)
    return ReidResult(
        model.cpu(), spec, metrics, history, result.pairs, result.queries, result.roc, accelerator.describe()
    )


def _fit(
    config: TrainReidConfig,
    trainer: Trainer,
    accelerator: Accelerator,
    *,
    store: CheckpointStore | None,
    progress: bool,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None,
) -> tuple[FitResult, list[dict[str, float]]]:
    """The shared epoch loop over the family's trainer; each epoch's record gains its image throughput."""

    def with_throughput(record: dict[str, float]) -> dict[str, float]:
        images = trainer.batches(int(record["epoch"])).images  # seeded: the same count after a resume
        seconds = record["train_seconds"]
        return {
            **record,
            "train_images": float(images),
            "train_images_per_s": images / seconds if seconds > 0 else math.nan,
        }

    def epoch_done(epoch: int, record: dict[str, float]) -> None:
        if on_epoch_end is not None:
            on_epoch_end(epoch, with_throughput(record))

    settings = LoopSettings(
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=config.seed,
        monitor=trainer.monitor,
        mode=trainer.mode,
        progress=progress,
        description=f"train_reid ({config.method})",
    )
    fitted = fit(
        trainer.module,
        trainer.optimizer,
        train_batches=trainer.batches,
        training_loss=trainer.training_loss,
        validate=trainer.validate,
        accelerator=accelerator,
        settings=settings,
        checkpoint=store,
        on_epoch_end=epoch_done,
    )
    return fitted, [with_throughput(r) for r in fitted.history]


def _metrics(
    config: TrainReidConfig,
    data: ReidData,
    *,
    trainer: Trainer,
    fitted: FitResult,
    history: list[dict[str, float]],
    result: AttackResult,
    calibration: dict[str, float],
) -> dict[str, Any]:
    train_seconds = float(sum(r["train_seconds"] for r in history))
    data_seconds = float(sum(r["data_seconds"] for r in history))
    train_images = float(sum(r["train_images"] for r in history))
    return {
        "attacker": {"method": config.method, "backbone": config.backbone, "seed": config.seed},
        "verification": result.verification,
        "retrieval": result.retrieval,
        "training": {
            "epochs": len(history),
            "best_epoch": fitted.best_epoch,
            "monitor": f"val_{trainer.monitor}",
            "best_val_score": fitted.best_score,
            "stopped_early": int(fitted.stopped_early),
            "resumed_after_epoch": fitted.resumed_after_epoch,
            "train_seconds": train_seconds,
            "data_seconds": data_seconds,
            "data_fraction": data_seconds / train_seconds if train_seconds > 0 else math.nan,
            "train_images_per_s": train_images / train_seconds if train_seconds > 0 else math.nan,
            **calibration,
            **_peak_memory_mb(data.accelerator),
        },
        "data": {
            **data.summary(),
            **trainer.training_data,
            "validation_pairs": trainer.validation_pairs,
            "validation_on_train": int(trainer.validation_split == "train"),
        },
    }
