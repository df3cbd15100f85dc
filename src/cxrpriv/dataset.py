"""The ingested-dataset format: what ``cxrpriv preprocess`` writes and every later stage reads.

Layout of an ingest output directory (written by :mod:`cxrpriv.ingest.stage`; shards by
:mod:`cxrpriv.ingest.shards`)::

    manifest.parquet              one row per ingested image (MANIFEST_COLUMNS): pseudonymous image and
                                  patient IDs, split, text-mined labels (missing where ``labeled`` is
                                  False: an image without a labels-table row), the shard and offset of
                                  its image
    images/shard-NNNNN.npy        normalized images, [n, size, size] uint8/uint16
    headers/shard-NNNNN.jsonl     de-identified DICOM JSON, line k <-> image k of the shard
    report/files.parquet          every input file ever seen (FILES_REPORT_COLUMNS): path relative to the
                                  source (or its keyed tag, under ``log_paths: keyed``), keyed checksum,
                                  outcome and reason, image_id when ingested
    report/validation.json        the Great Expectations report of the manifest
    report/phi_hashes.parquet     keyed hashes (HMAC, PHI_HASHES_COLUMNS) of the identifying values and
                                  tokens de-identification removed: what the release audit looks for
    state.json                    run count, key check value, and the settings shards depend on; in an
                                  anonymized dataset also "anonymizer": what ``cxrpriv anonymize`` applied

Readers open it with :func:`open_dataset`, which checks the manifest's columns with an error naming the file.
The files report is ingest's own account of its inputs; a reader that needs to link an image back to its
source file name (the classifier's re-read table, the synthetic answer key) goes through
:meth:`Dataset.files_report` or :func:`read_files_report`, not a path of its own: under ``log_paths: keyed``
the report names files by keyed tags, and only the operator's path map (kept apart from the dataset, like
the pseudonym map) turns them back into paths.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cxrpriv.chestxray14 import FINDINGS

if TYPE_CHECKING:
    from cxrpriv.ingest.shards import ShardReader

MANIFEST_FILE = "manifest.parquet"
REPORT_DIR = "report"
FILES_REPORT_FILE = "files.parquet"  # under REPORT_DIR
VALIDATION_REPORT_FILE = "validation.json"  # under REPORT_DIR
PHI_HASHES_FILE = "phi_hashes.parquet"  # under REPORT_DIR
STATE_FILE = "state.json"
ANONYMIZER_STATE = "anonymizer"  # key of state.json: the anonymizer an anonymized dataset went through

SPLITS = ("train", "validation", "test")

MANIFEST_COLUMNS = (
    "image_id",
    "patient_id",
    "split",
    "view",
    "age",
    "sex",
    *FINDINGS,
    "labeled",  # False: no labels-table row; the findings are then missing (never negatives)
    "study_date",
    "modality",
    "photometric",
    "source_format",
    "source_checksum",
    "shard",
    "offset",
    "pixel_mean",
    "pixel_std",
    "run",
)
# What a reader of the images needs: who, which split, and where the image is.
IMAGE_COLUMNS = ("image_id", "patient_id", "split", "shard", "offset")

FILES_REPORT_COLUMNS = (
    "path",
    "path_key",
    "size",
    "fingerprint",
    "checksum",
    "source_format",
    "outcome",
    "reason",
    "image_id",
    "run",
    "header_flag",
    "text_glyphs",
    "phi_blanked",
)

# kind: "value" (a whole normalized value) or "token" (one of its words); hash: hex HMAC under the key
# (cxrpriv.ingest.phi_hashes). No image linkage: the audit asks only whether a string is any patient's.
PHI_HASHES_COLUMNS = ("kind", "hash")
# The operator's path map under log_paths: keyed (written only where --path-map names it, outside the
# dataset): each keyed tag of the files report and the source path it stands for.
PATH_MAP_COLUMNS = ("path_key", "path")


class DatasetError(ValueError):
    """An ingest output that cannot be read as asked; the message names the file and what is wrong."""


def manifest_path(root: Path) -> Path:
    return Path(root) / MANIFEST_FILE


def dataset_digest(root: Path) -> str:
    """A content digest of the dataset at ``root`` (16 hex digits): its manifest and its state, which
    together name every image, its split and how its pixels were made; what MLflow records of it."""
    digest = hashlib.sha256()
    for path in (manifest_path(root), Path(root) / STATE_FILE):
        if path.is_file():
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def files_report_path(root: Path) -> Path:
    return Path(root) / REPORT_DIR / FILES_REPORT_FILE


def validation_report_path(root: Path) -> Path:
    return Path(root) / REPORT_DIR / VALIDATION_REPORT_FILE


def phi_hashes_path(root: Path) -> Path:
    return Path(root) / REPORT_DIR / PHI_HASHES_FILE


def find_manifest(root: Path) -> Path:
    """The manifest of the ingest output ``root``; DatasetError if it has none."""
    path = manifest_path(root)
    if not path.is_file():
        raise DatasetError(f"{path}: not found (run `cxrpriv preprocess` first, or pass --ingest)")
    return path


@dataclass
class Dataset:
    """An opened ingest output: its manifest (rows 0..n-1) and accessors for splits, labels, images and
    the files report."""

    root: Path
    manifest: pd.DataFrame

    @property
    def manifest_path(self) -> Path:
        return manifest_path(self.root)

    def split_rows(self) -> dict[str, np.ndarray]:
        """The manifest rows of each split, in ``SPLITS`` order (a split may be empty)."""
        split = self.manifest["split"].astype(str).to_numpy()
        return {name: np.flatnonzero(split == name) for name in SPLITS}

    def first_films(self, k: int, split: str | None = "test") -> np.ndarray:
        """Manifest rows of the first film of each of the first ``k`` patients of ``split`` (None: of the
        whole manifest), in manifest order: the few films a stage shows as examples."""
        rows = self.split_rows()[split] if split is not None else np.arange(len(self.manifest))
        _, first = np.unique(self.manifest["patient_id"].to_numpy()[rows], return_index=True)
        return np.sort(rows[first])[:k]

    def labeled(self) -> np.ndarray:
        """Whether each manifest row has labels (bool, manifest order); a manifest written before the
        ``labeled`` column existed has labels on every row."""
        if "labeled" not in self.manifest.columns:
            return np.ones(len(self.manifest), dtype=bool)
        return self.manifest["labeled"].fillna(False).to_numpy(dtype=bool)

    def labeled_rows(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The labeled rows among ``rows`` (default: all), in their order."""
        rows = np.arange(len(self.manifest)) if rows is None else np.asarray(rows, dtype=np.int64)
        return rows[self.labeled()[rows]]

    def labels(self, findings: Sequence[str], rows: np.ndarray | None = None) -> np.ndarray:
        """The text-mined labels of ``findings`` as float32 (len(rows), k) for ``rows`` (default: every
        row, manifest order); they must be 0/1. Refuses rows without labels (``labeled`` False): pick them
        out with :meth:`labeled_rows` first, since a missing label is not a negative."""
        missing = [f for f in findings if f not in self.manifest.columns]
        if missing:
            raise DatasetError(f"{self.manifest_path}: missing column(s) {', '.join(missing)}")
        rows = np.arange(len(self.manifest)) if rows is None else np.asarray(rows, dtype=np.int64)
        unlabeled = int((~self.labeled()[rows]).sum())
        if unlabeled:
            raise DatasetError(
                f"{self.manifest_path}: {unlabeled} of the {len(rows)} rows asked for have no labels "
                "(labeled is False); select Dataset.labeled_rows() first"
            )
        values = self.manifest[list(findings)].iloc[rows].to_numpy(dtype=np.float32, na_value=np.nan)
        if not np.isin(values, (0.0, 1.0)).all():
            raise DatasetError(f"{self.manifest_path}: finding columns must hold 0/1 labels")
        return values

    def images(self) -> ShardReader:
        """The images (and headers) by manifest row, memory-mapped from the shards."""
        from cxrpriv.ingest.shards import ShardReader

        return ShardReader(self.root, self.manifest)

    def files_report(
        self, columns: Sequence[str] = ("path", "image_id"), path_map: Path | None = None
    ) -> pd.DataFrame:
        """Ingest's report of every input file (``report/files.parquet``), checked for ``columns``; see
        :func:`read_files_report` for keyed paths and ``path_map``."""
        return read_files_report(self.root, columns, path_map)

    def phi_hashes(self) -> pd.DataFrame:
        """The keyed hashes of removed identifying values (``report/phi_hashes.parquet``)."""
        path = phi_hashes_path(self.root)
        if not path.is_file():
            raise DatasetError(
                f"{path}: not found (ingested before PHI hashes were recorded: ingest again with --force)"
            )
        frame = pd.read_parquet(path)
        missing = [c for c in PHI_HASHES_COLUMNS if c not in frame.columns]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}")
        return frame


def read_files_report(
    root: Path, columns: Sequence[str] = ("path", "image_id"), path_map: Path | None = None
) -> pd.DataFrame:
    """The files report of the ingest output ``root``, checked for ``columns``. Under ``log_paths: keyed``
    its ``path`` column holds keyed tags: asking for ``path`` then needs the operator's ``path_map`` (the
    CSV ``--path-map`` wrote), which turns the tags back into source paths (DatasetError without it, or
    for a tag the map lacks)."""
    path = files_report_path(root)
    if not path.is_file():
        raise DatasetError(f"{path}: not found (the ingest report of its input files)")
    report = pd.read_parquet(path)
    missing = [c for c in columns if c not in report.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}")
    if read_state(root).get("log_paths") != "keyed" or "path" not in columns:
        return report
    if path_map is None:
        raise DatasetError(
            f"{path}: its paths are keyed (log_paths: keyed); linking images to source file names needs "
            "the path map the ingest run wrote (--path-map)"
        )
    return _unkeyed(report, Path(path_map))


def _unkeyed(report: pd.DataFrame, path_map: Path) -> pd.DataFrame:
    if not path_map.is_file():
        raise DatasetError(f"{path_map}: not found (the path map of a keyed files report)")
    mapping = pd.read_csv(path_map, dtype=str, keep_default_na=False)
    if list(mapping.columns) != list(PATH_MAP_COLUMNS):
        raise DatasetError(f"{path_map}: expected the columns {', '.join(PATH_MAP_COLUMNS)}")
    paths = report["path"].map(dict(zip(mapping["path_key"], mapping["path"], strict=True)))
    if paths.isna().any():
        raise DatasetError(f"{path_map}: no path for {int(paths.isna().sum())} keyed report row(s)")
    return report.assign(path=paths)


def open_dataset(root: Path, columns: Sequence[str] = IMAGE_COLUMNS) -> Dataset:
    """Open the ingest output ``root``: read its manifest and check that it has ``columns``."""
    path = find_manifest(root)
    manifest = pd.read_parquet(path)
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}")
    return Dataset(Path(root), manifest.reset_index(drop=True))


def read_state(root: Path) -> dict[str, Any]:
    """``state.json`` of a dataset (empty for a directory without one)."""
    path = Path(root) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def anonymization(root: Path) -> dict[str, Any] | None:
    """What ``cxrpriv anonymize`` applied to the dataset ``root`` (method, description, settings, seed), or
    None for a dataset as ingest wrote it."""
    return read_state(root).get(ANONYMIZER_STATE)


def write_manifest(root: Path, manifest: pd.DataFrame, columns: Sequence[str] = IMAGE_COLUMNS) -> Path:
    """Write the manifest of a dataset, checked to hold ``columns`` (ingest: ``MANIFEST_COLUMNS``; a dataset
    derived image by image keeps its source's columns, whatever they are)."""
    path = manifest_path(root)
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise DatasetError(f"{path}: refusing to write a manifest without column(s) {', '.join(missing)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest.to_parquet(path, index=False)
    return path


def derive_dataset(source: Path, out: Path, anonymizer: Mapping[str, Any]) -> None:
    """Give ``out``, a dataset made from ``source`` image by image (same manifest rows, shards and offsets),
    the source's reports and state, with ``anonymizer`` recorded in its state."""
    source, out = Path(source), Path(out)
    if (source / REPORT_DIR).is_dir():
        shutil.copytree(source / REPORT_DIR, out / REPORT_DIR, dirs_exist_ok=True)
    state = {**read_state(source), ANONYMIZER_STATE: dict(anonymizer)}
    (out / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True, default=str) + "\n")
