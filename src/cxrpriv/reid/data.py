"""What both attacker families train and test on: the ingest output's splits, gathered into one image bank.

The bank holds the train, then the validation, then the test images, at the attacker's input size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cxrpriv.dataset import IMAGE_COLUMNS, SPLITS, Dataset, DatasetError, open_dataset
from cxrpriv.reid import ReidInputError
from cxrpriv.reid.attack import FilmSet
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.reid.pairs import fixed_pairs
from cxrpriv.training.accelerator import Accelerator
from cxrpriv.training.image_bank import ImageBank

log = logging.getLogger(__name__)


def open_ingest(ingest_dir: Path) -> Dataset:
    """The ingest output, its manifest checked for what the attacker reads."""
    try:
        return open_dataset(ingest_dir, IMAGE_COLUMNS)
    except DatasetError as exc:
        raise ReidInputError(str(exc)) from exc


@dataclass(frozen=True)
class EvaluationPairs:
    split: str  # the split they come from ("train" only for tiny cohorts, see ReidData.validation_pairs)
    rows: np.ndarray  # bank rows of that split; the pairs index into them
    pairs: np.ndarray
    labels: np.ndarray


@dataclass
class ReidData:
    manifest: pd.DataFrame
    split_rows: dict[str, np.ndarray]  # manifest rows of each split
    in_bank: dict[str, np.ndarray]  # bank rows of each split
    bank: ImageBank
    size: int
    accelerator: Accelerator

    def patients(self, split: str) -> np.ndarray:
        return self.manifest["patient_id"].astype(str).to_numpy()[self.split_rows[split]]

    @property
    def train_patients(self) -> np.ndarray:
        return self.patients("train")

    def films(self, split: str) -> FilmSet:
        image_ids = self.manifest["image_id"].astype(str).to_numpy()[self.split_rows[split]]
        return FilmSet(self.bank, self.in_bank[split], self.patients(split), image_ids)

    def validation_pairs(self, config: TrainReidConfig) -> EvaluationPairs:
        """Fixed validation pairs; on a cohort too small for them, train-split pairs (with a warning)."""
        pairs, labels = fixed_pairs(
            self.patients("validation"), config.max_pairs_per_patient, config.seed, "validation"
        )
        if len(pairs) and labels.min() != labels.max():
            return EvaluationPairs("validation", self.in_bank["validation"], pairs, labels)
        # Tiny cohorts only: a validation split without both kinds of pair cannot rank epochs.
        log.warning("train_reid: the validation split has no usable pairs; validating on train pairs")
        pairs, labels = fixed_pairs(
            self.train_patients, config.max_pairs_per_patient, config.seed, "validation"
        )
        return EvaluationPairs("train", self.in_bank["train"], pairs, labels)

    def summary(self) -> dict[str, int]:
        return {
            "image_size": self.size,
            **{f"{s}_images": len(self.split_rows[s]) for s in SPLITS},
            **{f"{s}_patients": len(np.unique(self.patients(s))) for s in SPLITS},
        }


def load_reid_data(
    config: TrainReidConfig, ingest_dir: Path, accelerator: Accelerator, progress: bool = True
) -> ReidData:
    dataset = open_ingest(ingest_dir)
    reader, manifest = dataset.images(), dataset.manifest
    split_rows = dataset.split_rows()
    train_patients = manifest["patient_id"].astype(str).to_numpy()[split_rows["train"]]
    if len(np.unique(train_patients)) < 2 or len(train_patients) == len(np.unique(train_patients)):
        raise ReidInputError(
            f"{dataset.manifest_path}: the train split needs at least two patients and one "
            "patient with two or more images to form same-patient pairs"
        )
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
    bounds = np.cumsum([0] + [len(split_rows[s]) for s in SPLITS])
    in_bank = {s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(SPLITS)}
    return ReidData(manifest, split_rows, in_bank, bank, size, accelerator)
