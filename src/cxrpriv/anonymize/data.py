"""The anonymizer's inputs, read once: the ingest output's train and validation films (one image bank at the
generator's size), the trained verifier and classifier, and the label-noise channel from ``priors.json``.

Sizes: the generator works at ``image_size`` (0: the verifier's input size). The verifier and the classifier
see an anonymized film the way they saw films in training: resized to their own input size (area when
shrinking, as the image bank resizes; bilinear when enlarging), and for a classifier trained on center crops,
resized to its image size and center-cropped. Both views are differentiable, so the generator learns
through them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cxrpriv.anonymize import AnonymizerInputError
from cxrpriv.anonymize.config import TrainAnonymizerConfig
from cxrpriv.classify import ClassifierInputError
from cxrpriv.classify.losses import NoiseChannel
from cxrpriv.config import config_to_dict
from cxrpriv.dataset import IMAGE_COLUMNS, DatasetError, open_dataset
from cxrpriv.reid.pairs import fixed_pairs
from cxrpriv.training.accelerator import Accelerator
from cxrpriv.training.artifacts import model_files
from cxrpriv.training.image_bank import ImageBank

if TYPE_CHECKING:  # for the annotation only: the verifier's code loads lazily, in _load_helpers
    from cxrpriv.reid.pair_model import PairModel

log = logging.getLogger(__name__)

SPLITS = ("train", "validation")  # the test split is the evaluate stage's
VALIDATION_PAIRS_PER_PATIENT = 6  # the verifier stage's default: same-patient validation pairs per patient


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """[B, C, H, W] to size x size: area when shrinking (as the image bank does), bilinear when enlarging."""
    if images.shape[-2:] == (size, size):
        return images
    mode = "area" if size < images.shape[-1] else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(images, size=(size, size), mode=mode, **kwargs)


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size:
        return images
    start = (images.shape[-1] - size) // 2
    return images[..., start : start + size, start : start + size]


@dataclass(frozen=True)
class View:
    """How a helper network sees a film: resized to ``resize_to``, then center-cropped to ``crop_to``."""

    resize_to: int
    crop_to: int

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return center_crop(resize(images, self.resize_to), self.crop_to)


@dataclass
class AnonymizerData:
    manifest: pd.DataFrame
    findings: tuple[str, ...]  # the classifier's, in its logit order
    split_rows: dict[str, np.ndarray]  # manifest rows of train and validation
    in_bank: dict[str, np.ndarray]  # bank rows of train and validation
    bank: ImageBank  # original films at the generator's size: train, then validation
    labels: torch.Tensor  # [n_bank, k] float32 text-mined labels of the bank's films, on the device
    bank_patients: np.ndarray  # patient pseudonym of each bank film
    size: int
    verifier: PairModel  # eval mode, on the device
    verifier_spec: dict[str, Any]
    classifier: torch.nn.Module
    classifier_spec: dict[str, Any]
    verifier_view: View
    classifier_view: View
    channel: NoiseChannel | None
    correction: str  # the utility loss's prior correction: forward (with priors) or none
    priors_summary: dict[str, Any]
    accelerator: Accelerator
    validation_split: str  # "validation", or "train" on a cohort too small for validation pairs
    fingerprint: str = field(default="")

    def patients(self, split: str) -> np.ndarray:
        return self.manifest["patient_id"].astype(str).to_numpy()[self.split_rows[split]]

    def image_ids(self, split: str) -> np.ndarray:
        return self.manifest["image_id"].astype(str).to_numpy()[self.split_rows[split]]

    def summary(self) -> dict[str, Any]:
        return {
            "image_size": self.size,
            "verifier_input_size": self.verifier_view.crop_to,
            "classifier_input_size": self.classifier_view.crop_to,
            **{f"{s}_images": len(self.split_rows[s]) for s in SPLITS},
            **{f"{s}_patients": len(np.unique(self.patients(s))) for s in SPLITS},
            "validation_on_train": int(self.validation_split == "train"),
            "utility_correction": self.correction,
        }


def _load_helpers(
    verifier_dir: Path, classifier_dir: Path, device: torch.device
) -> tuple[PairModel, dict[str, Any], torch.nn.Module, dict[str, Any]]:
    from cxrpriv.classify.model import load_classifier
    from cxrpriv.reid.model import load_verifier

    try:
        verifier, verifier_spec = load_verifier(verifier_dir, device)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise AnonymizerInputError(f"--verifier: {exc}") from exc
    try:
        classifier, classifier_spec = load_classifier(classifier_dir, device)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        raise AnonymizerInputError(f"--classifier: {exc}") from exc
    for module in (verifier, classifier):
        module.requires_grad_(False)  # frozen judges; the stage copies them when helpers are updated
    return verifier, verifier_spec, classifier, classifier_spec


def fingerprint(config: TrainAnonymizerConfig, files: list[Path]) -> str:
    """The config and the exact inputs (manifest, both helpers' weights and specs, the priors)."""
    digest = hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True).encode())
    for path in files:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def load_anonymizer_data(
    config: TrainAnonymizerConfig,
    ingest_dir: Path,
    verifier_dir: Path,
    classifier_dir: Path,
    priors_path: Path | None,
    *,
    accelerator: Accelerator,
    progress: bool = True,
) -> AnonymizerData:
    device = accelerator.device
    verifier, verifier_spec, classifier, classifier_spec = _load_helpers(
        Path(verifier_dir), Path(classifier_dir), device
    )
    findings = tuple(classifier_spec.get("findings", ()))
    if not findings:
        raise AnonymizerInputError(f"{classifier_dir}/spec.json: names no findings")
    try:
        dataset = open_dataset(ingest_dir, (*IMAGE_COLUMNS, *findings))
        mined = dataset.labels(findings)
    except DatasetError as exc:
        raise AnonymizerInputError(str(exc)) from exc
    manifest, rows = dataset.manifest, dataset.split_rows()
    rows = {s: rows[s] for s in SPLITS}
    train_patients = manifest["patient_id"].astype(str).to_numpy()[rows["train"]]
    if len(np.unique(train_patients)) < 2 or len(train_patients) == len(np.unique(train_patients)):
        raise AnonymizerInputError(
            f"{dataset.manifest_path}: the train split needs at least two patients and one patient with two "
            "or more films (same-patient pairs for the privacy term)"
        )

    verifier_size = int(verifier_spec["image_size"])
    size = config.image_size or verifier_size
    multiple = 2 ** (len(config.widths) - 1)
    if size % multiple:
        raise AnonymizerInputError(
            f"image_size {size} is not a multiple of {multiple}, which a U-Net of {len(config.widths)} "
            "levels (widths) needs; change image_size or widths"
        )
    classifier_input = int(classifier_spec["input_size"])
    classifier_view = View(int(classifier_spec.get("image_size", classifier_input)), classifier_input)

    channel, summary, correction = None, {"source": "none"}, "none"
    if priors_path is not None:
        from cxrpriv.classify.data import noise_channel_from_priors

        try:
            channel, summary = noise_channel_from_priors(
                Path(priors_path), findings, mined[rows["train"]].mean(axis=0)
            )
        except ClassifierInputError as exc:
            raise AnonymizerInputError(str(exc)) from exc
        correction = "forward"

    reader = dataset.images()
    native = int(reader[int(rows["train"][0])].shape[-1])
    if size > native:
        log.warning("train_anonymizer: image_size %d is larger than the ingest's %d: upsampled", size, native)
    bank = ImageBank.from_shards(
        reader,
        np.concatenate([rows[s] for s in SPLITS]),
        device,
        size=None if size == native else size,
        progress=progress,
    )
    bounds = np.cumsum([0] + [len(rows[s]) for s in SPLITS])
    in_bank = {s: np.arange(bounds[i], bounds[i + 1]) for i, s in enumerate(SPLITS)}

    validation_split = "validation"
    patients = manifest["patient_id"].astype(str).to_numpy()
    _, same = fixed_pairs(
        patients[rows["validation"]], VALIDATION_PAIRS_PER_PATIENT, config.seed, "validation"
    )
    if len(same) == 0 or same.min() == same.max():
        # Tiny cohorts only: without both kinds of validation pair the re-ID AUC is undefined.
        log.warning("train_anonymizer: the validation split has no usable pairs; validating on train films")
        validation_split = "train"

    files = [dataset.manifest_path]
    for directory in (Path(verifier_dir), Path(classifier_dir)):
        files += model_files(directory)
    files += [Path(priors_path)] if priors_path is not None else []
    return AnonymizerData(
        manifest=manifest,
        findings=findings,
        split_rows=rows,
        in_bank=in_bank,
        bank=bank,
        labels=torch.as_tensor(mined[np.concatenate([rows[s] for s in SPLITS])], device=device),
        bank_patients=patients[np.concatenate([rows[s] for s in SPLITS])],
        size=size,
        verifier=verifier,
        verifier_spec=verifier_spec,
        classifier=classifier,
        classifier_spec=classifier_spec,
        verifier_view=View(verifier_size, verifier_size),
        classifier_view=classifier_view,
        channel=channel,
        correction=correction,
        priors_summary=summary,
        accelerator=accelerator,
        validation_split=validation_split,
        fingerprint=fingerprint(config, files),
    )
