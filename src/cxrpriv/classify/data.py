"""The classifier's inputs, read once: ingest manifest and splits, text-mined labels, priors, and (when given)
clean labels and anatomy masks.

Clean labels come from the synthetic answer key (``--answer-key``) or, for real data, from a re-read table in
ChestX-ray14 format (``--clean-labels``), matched to ingested images by file name (the ingest report's
source path stem against ``Image Index`` without extension); test images without a re-read are then left
out of the clean evaluation. Without either, the stage trains and reports the text-mined evaluation only.

Unlabeled images (ingested without a labels-table row: ``labeled`` False) are in no split's rows here, so
they are neither trained on nor evaluated; their ``mined`` rows hold NaN.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxrpriv.classify import ClassifierInputError
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.classify.losses import NoiseChannel
from cxrpriv.dataset import IMAGE_COLUMNS, Dataset, DatasetError, open_dataset

if TYPE_CHECKING:
    from cxrpriv.synth.answer_key import CleanLabels

log = logging.getLogger(__name__)

PRIORS_SCHEMA = "cxrpriv.priors/1"


@dataclass
class ClassifierData:
    manifest: pd.DataFrame
    findings: tuple[str, ...]
    mined: np.ndarray  # (n, k) float32 text-mined labels, manifest order; NaN on unlabeled rows
    train: np.ndarray  # manifest rows (labeled ones only, as validation and test)
    validation: np.ndarray
    test: np.ndarray
    clean: np.ndarray | None  # (n, k) uint8 true labels; rows without one hold 255
    clean_source: str  # answer_key | reread_table | none
    channel: NoiseChannel | None  # from priors.json and the training split's text-mined prevalence
    comorbidity: np.ndarray | None  # (k, k) P(j | i) from priors.json
    masks: np.ndarray | None  # (n_train, 3, s, s) uint8 of the training rows, in `train` order
    priors_summary: dict[str, Any]

    @property
    def has_clean(self) -> bool:
        return self.clean is not None


def load_data(
    config: ClassifierConfig,
    ingest_dir: Path,
    priors_path: Path | None,
    answer_key_dir: Path | None,
    clean_labels_table: Path | None,
    *,
    mask_size: int,
) -> ClassifierData:
    """Read and check every input; ``mask_size`` is the size the training images are banked at."""
    findings = config.finding_names
    try:
        dataset = open_dataset(ingest_dir, (*IMAGE_COLUMNS, *findings))
        mined, rows = _labeled_splits(dataset, findings)
    except DatasetError as exc:
        raise ClassifierInputError(str(exc)) from exc
    _check_splits(rows, dataset.manifest_path)
    channel, comorbidity, summary = _priors_inputs(config, priors_path, mined[rows["train"]].mean(axis=0))
    key_labels, clean_values, source = _clean_labels(
        dataset, findings, ingest_dir, answer_key_dir, clean_labels_table
    )
    masks = None
    if config.anatomy_weight > 0:
        masks = _train_masks(answer_key_dir, key_labels, rows["train"], mask_size)
    return ClassifierData(
        manifest=dataset.manifest,
        findings=findings,
        mined=mined,
        train=rows["train"],
        validation=rows["validation"],
        test=rows["test"],
        clean=clean_values,
        clean_source=source,
        channel=channel,
        comorbidity=comorbidity,
        masks=masks,
        priors_summary=summary,
    )


def _check_splits(rows: dict[str, np.ndarray], manifest_path: Path) -> None:
    """Refuse a dataset without labeled training images; stand the training rows in for an empty
    validation split (in place)."""
    if len(rows["train"]) == 0:
        raise ClassifierInputError(f"{manifest_path}: the train split has no labeled image")
    if len(rows["validation"]) == 0:
        # A tiny cohort can leave a split empty; model selection then watches the training images (flagged).
        log.warning(
            "%s: the validation split is empty; early stopping watches the training split", manifest_path
        )
        rows["validation"] = rows["train"]
    if len(rows["test"]) == 0:
        log.warning("%s: the test split is empty; nothing to evaluate", manifest_path)


def _priors_inputs(
    config: ClassifierConfig, priors_path: Path | None, mined_prevalence: np.ndarray
) -> tuple[NoiseChannel | None, np.ndarray | None, dict[str, Any]]:
    """The noise channel, the comorbidity matrix and the priors summary the config asks for (none without
    a prior correction or comorbidity penalty)."""
    if config.prior_correction == "none" and config.comorbidity_weight <= 0:
        return None, None, {"source": "none"}
    if priors_path is None:
        raise ClassifierInputError(
            f"prior_correction: {config.prior_correction!r} / comorbidity_weight "
            f"{config.comorbidity_weight} need --priors"
        )
    path = Path(priors_path)
    document = _read_priors(path)
    channel, summary = _channel(document, config.finding_names, mined_prevalence, path)
    comorbidity = None
    if config.comorbidity_weight > 0:
        comorbidity = _comorbidity(document, config.finding_names, path)
    return channel, comorbidity, summary


def _clean_labels(
    dataset: Dataset,
    findings: tuple[str, ...],
    ingest_dir: Path,
    answer_key_dir: Path | None,
    clean_labels_table: Path | None,
) -> tuple[CleanLabels | None, np.ndarray | None, str]:
    """(the answer key's labels object or None, the (n, k) clean labels or None, their source)."""
    if answer_key_dir is not None:
        from cxrpriv.synth.answer_key import AnswerKeyError, clean_labels

        try:
            key_labels = clean_labels(
                ingest_dir, answer_key_dir, dataset.manifest["image_id"].astype(str).tolist(), findings
            )
        except AnswerKeyError as exc:
            raise ClassifierInputError(str(exc)) from exc
        return key_labels, key_labels.labels, "answer_key"
    if clean_labels_table is not None:
        return None, *_clean_from_table(dataset, Path(clean_labels_table), findings)
    return None, None, "none"


def _train_masks(
    answer_key_dir: Path | None, key_labels: CleanLabels | None, train: np.ndarray, mask_size: int
) -> np.ndarray:
    """The training rows' anatomy masks from the answer key (``anatomy_weight > 0`` needs them)."""
    from cxrpriv.synth.answer_key import anatomy_masks, has_masks

    if not has_masks(answer_key_dir):
        raise ClassifierInputError(
            "anatomy_weight > 0 needs lung/heart masks: give --answer-key with a masks/ folder, or set "
            "anatomy_weight 0 (real data has no masks)"
        )
    assert key_labels is not None and answer_key_dir is not None
    return anatomy_masks(answer_key_dir, key_labels.image_index[train], mask_size)


def _labeled_splits(dataset: Dataset, findings: tuple[str, ...]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(n, k) text-mined labels with NaN on unlabeled rows, and each split's labeled rows."""
    labeled = dataset.labeled_rows()
    mined = np.full((len(dataset.manifest), len(findings)), np.nan, dtype=np.float32)
    mined[labeled] = dataset.labels(findings, labeled)
    unlabeled = len(dataset.manifest) - len(labeled)
    if unlabeled:
        log.info(
            "%s: %d unlabeled images left out of training and evaluation", dataset.manifest_path, unlabeled
        )
    return mined, {split: dataset.labeled_rows(rows) for split, rows in dataset.split_rows().items()}


def noise_channel_from_priors(
    priors_path: Path, findings: tuple[str, ...], mined_prevalence: np.ndarray
) -> tuple[NoiseChannel, dict[str, Any]]:
    """The text-mining noise channel of ``findings`` from a ``priors.json`` and the training split's
    text-mined prevalence, as the classifier builds it (and a summary of what was used, per finding);
    findings without a usable prior get the noise-free channel. ClassifierInputError names the file."""
    return _channel(_read_priors(Path(priors_path)), findings, mined_prevalence, Path(priors_path))


def _read_priors(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ClassifierInputError(f"{path}: not found (run `cxrpriv priors` first)")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ClassifierInputError(f"{path}: not valid JSON ({exc})") from exc
    if document.get("schema") != PRIORS_SCHEMA:
        raise ClassifierInputError(f"{path}: schema {document.get('schema')!r}, expected {PRIORS_SCHEMA!r}")
    return document


def _channel(
    document: dict[str, Any], findings: tuple[str, ...], prevalence: np.ndarray, path: Path
) -> tuple[NoiseChannel, dict[str, Any]]:
    a, b, used = [], [], {}
    for finding in findings:
        entry = document.get("findings", {}).get(finding)
        if entry is None:
            raise ClassifierInputError(f"{path}: no entry for finding {finding}")
        pos, neg = entry.get("p_true_given_mined_pos"), entry.get("p_true_given_mined_neg")
        flags = []
        if pos is None or neg is None:
            flags.append("no_prior")
        elif not 0 <= neg < pos <= 1:
            flags.append("uninformative_prior")  # P(true | mined=1) <= P(true | mined=0): nothing to invert
        if flags:
            # No correction for this finding: a = 1, b = 0 is the noise-free channel (s = 1, f = 0), so the
            # forward loss is plain BCE and the soft targets are the text-mined labels.
            log.warning(
                "%s: finding %s has no usable P(true | text-mined) (%s); trained on its text-mined "
                "labels as they are",
                path,
                finding,
                flags[0],
            )
            pos, neg = 1.0, 0.0
        a.append(pos)
        b.append(neg)
        used[finding] = {
            "p_true_given_mined_pos": pos,
            "p_true_given_mined_neg": neg,
            "status": entry.get("status"),
            "flags": flags,
        }
    channel = NoiseChannel.from_priors(a, b, prevalence)
    for j, finding in enumerate(findings):
        used[finding].update(
            mined_prevalence_train=float(prevalence[j]),
            implied_sensitivity=float(channel.sensitivity[j]),
            implied_false_positive_rate=float(channel.false_positive_rate[j]),
        )
    return channel, {"source": str(path), "findings": used}


def _comorbidity(document: dict[str, Any], findings: tuple[str, ...], path: Path) -> np.ndarray:
    block = document.get("comorbidity")
    if not block:
        raise ClassifierInputError(f"{path}: no comorbidity matrix; set comorbidity_weight 0")
    names = list(block["findings"])
    matrix = np.asarray(block["matrix"], dtype=np.float64)
    missing = [f for f in findings if f not in names]
    if missing:
        raise ClassifierInputError(f"{path}: comorbidity matrix lacks {', '.join(missing)}")
    index = [names.index(f) for f in findings]
    out = matrix[np.ix_(index, index)]
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


def _clean_from_table(dataset: Dataset, table: Path, findings: tuple[str, ...]) -> tuple[np.ndarray, str]:
    from cxrpriv.priors import PriorsInputError
    from cxrpriv.priors.tables import read_mined_labels
    from cxrpriv.synth.stats import FINDINGS as ALL

    try:
        labels = read_mined_labels(table)
    except PriorsInputError as exc:
        raise ClassifierInputError(f"--clean-labels: {exc}") from exc
    try:
        report = dataset.files_report(("path", "image_id")).dropna(subset=["image_id"])
    except DatasetError as exc:
        raise ClassifierInputError(f"{exc}; needed to match --clean-labels to images") from exc
    manifest = dataset.manifest
    stem_of = {
        str(i): Path(str(p)).name.split(".")[0]
        for p, i in zip(report["path"], report["image_id"], strict=True)
    }
    by_stem = {Path(str(i)).name.split(".")[0]: r for r, i in enumerate(labels.image_ids)}
    columns = [list(ALL).index(f) for f in findings]
    out = np.full((len(manifest), len(findings)), 255, dtype=np.uint8)
    matched = 0
    for row, image_id in enumerate(manifest["image_id"].astype(str)):
        r = by_stem.get(stem_of.get(image_id, ""))
        if r is not None:
            out[row] = labels.values[r, columns]
            matched += 1
    if matched == 0:
        raise ClassifierInputError(f"{table}: no image matches an ingested file name")
    return out, "reread_table"
