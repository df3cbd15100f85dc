"""The verifier stage as a function: ingest output in, trained verifier and its attack metrics out.

``train_reid(config, ingest_dir, checkpoint_dir)`` trains the siamese network on the train split's pairs
(early stopping on the validation pairs' loss, best weights kept, a checkpoint every epoch), then measures it
on the test split: verification of fixed test pairs and retrieval of every test image among the others.
Nothing is written here except the checkpoint; ``command.py`` writes the outputs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import resource
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cxrpriv.evaluation.roc import roc_auc
from cxrpriv.ingest.shards import ShardReader
from cxrpriv.reid import ReidInputError
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.reid.metrics import accuracy_at_half, verification_metrics
from cxrpriv.reid.model import Verifier, build_verifier, verifier_spec
from cxrpriv.reid.pairs import epoch_pairs, fixed_pairs
from cxrpriv.reid.retrieval import retrieval_metrics
from cxrpriv.training.accelerator import Accelerator, select_accelerator
from cxrpriv.training.checkpoint import CheckpointStore
from cxrpriv.training.image_bank import ImageBank
from cxrpriv.training.loop import LoopSettings, fit
from cxrpriv.training.seeding import epoch_rng, seed_everything

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("image_id", "patient_id", "split", "shard", "offset")
SPLITS = ("train", "validation", "test")


@dataclass
class ReidResult:
    model: Verifier
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


def read_manifest(ingest_dir: Path) -> ShardReader:
    path = Path(ingest_dir) / "manifest.parquet"
    if not path.is_file():
        raise ReidInputError(f"{path}: not found (run `cxrpriv preprocess` first, or pass --ingest)")
    reader = ShardReader(Path(ingest_dir))
    missing = [c for c in REQUIRED_COLUMNS if c not in reader.manifest.columns]
    if missing:
        raise ReidInputError(f"{path}: missing columns {missing}")
    reader.manifest = reader.manifest.reset_index(drop=True)
    return reader


def run_fingerprint(config: TrainReidConfig, manifest_path: Path) -> str:
    """The config and the exact input data: a checkpoint of anything else is refused on resume."""
    digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode())
    digest.update(Path(manifest_path).read_bytes())
    return digest.hexdigest()[:32]


def augment(
    images: torch.Tensor, rng: np.random.Generator, shift: float, scale: float, rotation_deg: float
) -> torch.Tensor:
    """Small random affine jitter of each image: without it the network learns films, not anatomy."""
    n = len(images)
    if n == 0 or shift == scale == rotation_deg == 0:
        return images
    angle = rng.normal(0.0, math.radians(rotation_deg), n)
    zoom = 1.0 + rng.normal(0.0, scale, n)
    offset = rng.normal(0.0, shift, (n, 2))
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = np.cos(angle) / zoom
    theta[:, 0, 1], theta[:, 1, 0] = -np.sin(angle) / zoom, np.sin(angle) / zoom
    theta[:, :, 2] = offset
    theta_t = torch.from_numpy(theta).to(images.device)
    grid = F.affine_grid(theta_t, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")


class PairBatches:
    """One epoch's training batches: the pairs drawn for the epoch, gathered from the bank and augmented."""

    def __init__(
        self, config: TrainReidConfig, bank: ImageBank, rows: np.ndarray, patients: np.ndarray, epoch: int
    ) -> None:
        self.config = config
        self.bank = bank
        self.rows = rows  # bank index of each train image
        self.epoch = epoch
        self.pairs, self.labels = epoch_pairs(patients, config.max_pairs_per_patient, config.seed, epoch)
        self.rng = epoch_rng(config.seed, epoch, "augment")
        steps = math.ceil(len(self.pairs) / config.batch_size)
        self.steps = min(steps, config.max_steps_per_epoch) if config.max_steps_per_epoch else steps

    def __len__(self) -> int:
        return self.steps

    @property
    def images(self) -> int:
        return 2 * min(len(self.pairs), self.steps * self.config.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        c = self.config
        for step in range(self.steps):
            part = slice(step * c.batch_size, (step + 1) * c.batch_size)
            index = self.rows[self.pairs[part].T.reshape(-1)]  # first images, then second images
            images = augment(
                self.bank.batch(index), self.rng, c.augment_shift, c.augment_scale, c.augment_rotation_deg
            )
            n = len(index) // 2
            pairs = torch.cat([images[:n], images[n:]], dim=1)
            labels = torch.from_numpy(self.labels[part]).to(self.bank.device)
            yield pairs, labels


def embed_bank(
    model: Verifier,
    bank: ImageBank,
    batch: int = 256,
    rows: np.ndarray | None = None,
    accelerator: Accelerator | None = None,
) -> torch.Tensor:
    """Features [n, feature_dim] (float32, on the bank's device) of the bank's images (or of ``rows``)."""
    rows = np.arange(len(bank)) if rows is None else np.asarray(rows)
    autocast = accelerator.autocast() if accelerator is not None else torch.autocast("cpu", enabled=False)
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad(), autocast:
        for start in range(0, len(rows), batch):
            out.append(model.embed(bank.batch(rows[start : start + batch])).float())
    model.train(was_training)
    if not out:
        return torch.zeros((0, model.features.out_features), device=bank.device)
    return torch.cat(out)


def pair_logits(model: Verifier, features: torch.Tensor, pairs: np.ndarray) -> torch.Tensor:
    index = torch.as_tensor(pairs, dtype=torch.long, device=features.device)
    with torch.no_grad():
        return model.score(features[index[:, 0]], features[index[:, 1]]).float()


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
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None,
) -> ReidResult:
    reader = read_manifest(ingest_dir)
    manifest = reader.manifest
    split_rows = {s: np.flatnonzero(manifest["split"].to_numpy() == s) for s in SPLITS}
    patients_all = manifest["patient_id"].astype(str).to_numpy()
    train_patients = patients_all[split_rows["train"]]
    if len(np.unique(train_patients)) < 2 or len(train_patients) == len(np.unique(train_patients)):
        raise ReidInputError(
            f"{Path(ingest_dir) / 'manifest.parquet'}: the train split needs at least two patients and one "
            "patient with two or more images to form same-patient pairs"
        )
    accelerator = select_accelerator(device, config.mixed_precision)
    seed_everything(config.seed)
    native = int(reader[int(split_rows["train"][0])].shape[-1])
    size = config.image_size or native
    if size > native:
        log.warning(
            "train_reid: image_size %d is larger than the ingest's %d: images are upsampled", size, native
        )
    rows = np.concatenate([split_rows[s] for s in SPLITS])
    bank = ImageBank.from_shards(
        reader, rows, accelerator.device, size=None if size == native else size, progress=progress
    )
    # Bank index of each split's images (the bank holds train, then validation, then test).
    bounds = np.cumsum([0] + [len(split_rows[s]) for s in SPLITS])
    in_bank = {s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(SPLITS)}

    kwargs = model_kwargs(config, size)
    model = build_verifier(**kwargs).to(accelerator.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)

    val_split = "validation"
    val_pairs, val_labels = fixed_pairs(
        patients_all[split_rows[val_split]], config.max_pairs_per_patient, config.seed, "validation"
    )
    if len(val_pairs) == 0 or val_labels.min() == val_labels.max():
        # Tiny cohorts only: a validation split without both kinds of pair cannot rank epochs.
        log.warning("train_reid: the validation split has no usable pairs; validating on train pairs")
        val_split = "train"
        val_pairs, val_labels = fixed_pairs(
            train_patients, config.max_pairs_per_patient, config.seed, "validation"
        )
    val_target = torch.from_numpy(val_labels).to(accelerator.device)

    def validate() -> dict[str, float]:
        features = embed_bank(model, bank, config.eval_batch_size, in_bank[val_split], accelerator)
        logits = pair_logits(model, features, val_pairs)
        loss = float(F.binary_cross_entropy_with_logits(logits, val_target))
        probabilities = torch.sigmoid(logits).cpu().numpy()
        # NaN when the validation pairs hold one class only
        auc = roc_auc(val_labels, probabilities)
        return {"loss": loss, "auc": auc, "accuracy": accuracy_at_half(val_labels, probabilities)}

    images_per_epoch: dict[int, int] = {}

    def train_batches(epoch: int) -> PairBatches:
        batches = PairBatches(config, bank, in_bank["train"], train_patients, epoch)
        images_per_epoch[epoch] = batches.images
        return batches

    def training_loss(batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        pairs, labels = batch
        return F.binary_cross_entropy_with_logits(model(pairs).float(), labels)

    def with_throughput(record: dict[str, float]) -> dict[str, float]:
        epoch = int(record["epoch"])
        images = images_per_epoch.get(epoch)
        if images is None:  # an epoch done before a resume: recount its pairs (they are seeded)
            images = PairBatches(config, bank, in_bank["train"], train_patients, epoch).images
        return {
            **record,
            "train_images": float(images),
            "train_images_per_s": images / record["train_seconds"]
            if record["train_seconds"] > 0
            else math.nan,
        }

    def epoch_done(epoch: int, record: dict[str, float]) -> None:
        if on_epoch_end is not None:
            on_epoch_end(epoch, with_throughput(record))

    store = None
    if checkpoint_dir is not None:
        store = CheckpointStore(
            Path(checkpoint_dir), run_fingerprint(config, Path(ingest_dir) / "manifest.parquet")
        )
    settings = LoopSettings(
        max_epochs=config.max_epochs,
        patience=config.patience,
        seed=config.seed,
        monitor="loss",
        mode="min",
        progress=progress,
        description="train_reid",
    )
    fitted = fit(
        model,
        optimizer,
        train_batches=train_batches,
        training_loss=training_loss,
        validate=validate,
        accelerator=accelerator,
        settings=settings,
        checkpoint=store,
        on_epoch_end=epoch_done,
    )
    history = [with_throughput(r) for r in fitted.history]
    model.load_state_dict(fitted.best_state)
    model.eval()

    # Verification: fixed test pairs, scored from each image's features (eval mode: same as pair forward).
    test_rows = split_rows["test"]
    test_patients = patients_all[test_rows]
    features = embed_bank(model, bank, config.eval_batch_size, in_bank["test"], accelerator)
    test_pairs, test_labels = fixed_pairs(test_patients, config.max_pairs_per_patient, config.seed, "test")
    probabilities = torch.sigmoid(pair_logits(model, features, test_pairs)).cpu().numpy().astype(float)
    verification = verification_metrics(
        test_labels,
        probabilities,
        groups=test_patients[test_pairs[:, 0]] if len(test_pairs) else None,
        n_boot=config.n_boot,
        confidence=config.confidence,
        seed=config.seed,
    )
    roc = _roc(test_labels, probabilities)
    image_ids = manifest["image_id"].astype(str).to_numpy()[test_rows]
    pairs_frame = pd.DataFrame(
        {
            "image_a": image_ids[test_pairs[:, 0]],
            "image_b": image_ids[test_pairs[:, 1]],
            "patient_a": test_patients[test_pairs[:, 0]],
            "patient_b": test_patients[test_pairs[:, 1]],
            "label": test_labels.astype(np.int8),
            "probability": probabilities,
        }
    )

    # Retrieval: every test image queries the other test images.
    summary, per_query = retrieval_metrics(
        # on the model's device: the head re-scores the shortlist there (on a GPU, so does the search)
        features.float(), test_patients, model.head, config.retrieval_k, config.retrieval_chunk
    )
    top1 = per_query["top1"]
    retrieval_frame = pd.DataFrame(
        {
            "image_id": image_ids,
            "patient_id": test_patients,
            "n_relevant": per_query["n_relevant"],
            "ap_at_r": per_query["ap_at_r"],
            "r_precision": per_query["r_precision"],
            "precision_at_1": per_query["precision_at_1"],
            "top1_image_id": np.where(top1 >= 0, image_ids[np.maximum(top1, 0)], ""),
        }
    )

    train_seconds = float(sum(r["train_seconds"] for r in history))
    data_seconds = float(sum(r["data_seconds"] for r in history))
    train_images = float(sum(r["train_images"] for r in history))
    device_info = accelerator.describe()
    metrics = {
        "verification": verification,
        "retrieval": summary,
        "training": {
            "epochs": len(history),
            "best_epoch": fitted.best_epoch,
            "best_val_loss": fitted.best_score,
            "stopped_early": int(fitted.stopped_early),
            "resumed_after_epoch": fitted.resumed_after_epoch,
            "train_seconds": train_seconds,
            "data_seconds": data_seconds,
            "data_fraction": data_seconds / train_seconds if train_seconds > 0 else math.nan,
            "train_images_per_s": train_images / train_seconds if train_seconds > 0 else math.nan,
            **_peak_memory_mb(accelerator),
        },
        "data": {
            "image_size": size,
            **{f"{s}_images": len(split_rows[s]) for s in SPLITS},
            **{f"{s}_patients": len(np.unique(patients_all[split_rows[s]])) for s in SPLITS},
            "train_pairs_per_epoch": len(
                PairBatches(config, bank, in_bank["train"], train_patients, 1).pairs
            ),
            "validation_pairs": len(val_pairs),
            "validation_on_train": int(val_split == "train"),
        },
    }
    spec = verifier_spec(kwargs, size)
    return ReidResult(model.cpu(), spec, metrics, history, pairs_frame, retrieval_frame, roc, device_info)


def _roc(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.metrics import roc_curve

    if len(labels) == 0 or labels.min() == labels.max():
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    fpr, tpr, _ = roc_curve(labels, probabilities)
    return fpr, tpr
