"""Link an ingest output to the synthetic cohort's answer key: true labels and lung/heart masks per image.

The ingest manifest knows images only by keyed pseudonyms and carries the text-mined labels. The answer key
knows them by the generator's ``image_index``. The bridge is the file path: the ingest report
(``report/files.parquet``: path relative to ``dataset/dicom`` -> ``image_id``) and the answer key's
``files.parquet`` (``dicom/<path>`` -> ``image_index``). Nothing here needs the de-identification key.

Masks are stored at the cohort's render size (``image_size``, square) with bit 1 right lung, 2 left lung,
4 heart. Ingest scales the long side to its size and pads the short one (``aspect: pad``); synthetic films
are square, so the mask only needs the same resize: area-averaged, then thresholded at one half.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.dataset import DatasetError, read_files_report

MASK_BITS = {"right_lung": 1, "left_lung": 2, "heart": 4}


class AnswerKeyError(ValueError):
    """The answer key or the ingest report is missing, malformed or does not cover the images asked for."""


@dataclass(frozen=True)
class CleanLabels:
    image_ids: np.ndarray  # the ingest image_id of each row, in the order asked for
    image_index: np.ndarray  # the answer key's image_index of each row
    labels: np.ndarray  # (n, n_findings) uint8 true labels


def _read(path: Path, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not path.is_file():
        raise AnswerKeyError(f"{path}: not found ({what})")
    frame = pd.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise AnswerKeyError(f"{path}: missing column(s) {', '.join(missing)} ({what})")
    return frame


def image_index_of(ingest_dir: Path, answer_key_dir: Path, image_ids: Sequence[str]) -> np.ndarray:
    """The answer key's ``image_index`` of each ingest ``image_id`` (error naming the first unmatched)."""
    try:  # through the dataset format: a keyed report (log_paths: keyed) is refused there, by name
        report = read_files_report(ingest_dir, ("path", "image_id"))
    except DatasetError as exc:
        raise AnswerKeyError(str(exc)) from exc
    files = _read(Path(answer_key_dir) / "files.parquet", ["path", "image_index"], "the answer key's files")
    report = report.dropna(subset=["image_id"])
    report = report[report["image_id"].astype(str) != ""]
    # The ingest report's paths are relative to dataset/dicom; the answer key's start with 'dicom/'.
    index_by_path = dict(zip(files["path"].astype(str), files["image_index"].astype(str), strict=True))
    # The last report row of an image wins: a re-ingested (changed) file keeps its image_id.
    id_to_index: dict[str, str] = {}
    for path, image_id in zip(report["path"].astype(str), report["image_id"].astype(str), strict=True):
        index = index_by_path.get(f"dicom/{path}")
        if index is not None:
            id_to_index[image_id] = index
    out = np.empty(len(image_ids), dtype=object)
    for i, image_id in enumerate(image_ids):
        if image_id not in id_to_index:
            raise AnswerKeyError(
                f"{answer_key_dir}: image {image_id} of {ingest_dir} has no answer key entry; check that the "
                "ingest output was made from this synthetic cohort"
            )
        out[i] = id_to_index[image_id]
    return out


def clean_labels(
    ingest_dir: Path,
    answer_key_dir: Path,
    image_ids: Sequence[str],
    findings: Sequence[str] = FINDINGS,
) -> CleanLabels:
    """The true labels (``true_<finding>``) of ingested images, in the order of ``image_ids``."""
    index = image_index_of(ingest_dir, answer_key_dir, image_ids)
    columns = [f"true_{f}" for f in findings]
    images = _read(
        Path(answer_key_dir) / "images.parquet", ["image_index", *columns], "the answer key's images"
    )
    by_index = images.set_index(images["image_index"].astype(str))[columns]
    missing = [i for i in index if i not in by_index.index]
    if missing:
        raise AnswerKeyError(f"{answer_key_dir}/images.parquet: no row for image_index {missing[0]}")
    labels = by_index.loc[list(index)].to_numpy().astype(np.uint8)
    return CleanLabels(np.asarray(image_ids, dtype=object), index, labels)


def has_masks(answer_key_dir: Path | None) -> bool:
    return answer_key_dir is not None and any((Path(answer_key_dir) / "masks").glob("shard-*.npz"))


def anatomy_masks(answer_key_dir: Path, image_index: Sequence[str], size: int) -> np.ndarray:
    """Masks of the given answer-key images at ``size`` x ``size``: uint8 [n, 3, size, size] holding
    right lung, left lung and heart (0/1), resized from the render size like ingest resizes the films."""
    wanted = {str(i): row for row, i in enumerate(image_index)}
    out = np.zeros((len(wanted), 3, size, size), dtype=np.uint8)
    found = np.zeros(len(wanted), dtype=bool)
    shards = sorted((Path(answer_key_dir) / "masks").glob("shard-*.npz"))
    if not shards:
        raise AnswerKeyError(f"{answer_key_dir}/masks: no mask shard (shard-*.npz)")
    bits = np.array(list(MASK_BITS.values()), dtype=np.uint8).reshape(1, 3, 1, 1)
    for shard in shards:
        with np.load(shard, allow_pickle=False) as data:
            if "image_index" not in data or "masks" not in data:
                raise AnswerKeyError(f"{shard}: expected arrays 'image_index' and 'masks'")
            ids = data["image_index"].astype(str)
            take = [k for k, i in enumerate(ids) if i in wanted]
            if not take:
                continue
            masks = data["masks"][take]
        channels = ((masks[:, None] & bits) > 0).astype(np.float32)
        resized = _resize_masks(channels, size)
        rows = [wanted[ids[k]] for k in take]
        out[rows] = resized
        found[rows] = True
    if not found.all():
        first = next(i for i, row in wanted.items() if not found[row])
        raise AnswerKeyError(f"{answer_key_dir}/masks: no mask for image_index {first}")
    return out


def _resize_masks(channels: np.ndarray, size: int) -> np.ndarray:
    h, w = channels.shape[-2:]
    tensor = torch.from_numpy(channels)
    if (h, w) != (size, size):
        if h != w:
            # Pad to square like ingest's 'pad' aspect, so the geometry matches the ingested film.
            side = max(h, w)
            top, left = (side - h) // 2, (side - w) // 2
            tensor = F.pad(tensor, (left, side - w - left, top, side - h - top))
        tensor = F.interpolate(tensor, size=(size, size), mode="area")
    return (tensor >= 0.5).numpy().astype(np.uint8)
