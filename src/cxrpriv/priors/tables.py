"""Readers for the text-mined labels and for re-read tables in three layouts.

Text-mined labels (:func:`read_mined_labels`):

* a ChestX-ray14-format CSV (``Image Index``, ``Finding Labels`` with ``|``-separated findings or
  ``No Finding``), e.g. ``Data_Entry_2017.csv`` of the real release or of the synthetic cohort;
* a Parquet manifest with an ``image_index`` column and one 0/1 column per ChestX-ray14 finding, named as in
  :data:`cxrpriv.synth.stats.FINDINGS`. Any other manifest plugs in through
  :func:`mined_labels_from_columns`, which takes a data frame and the name of its image-ID column.

Re-read tables (:func:`read_reread_table`), layout given or detected from the columns:

* ``adjudicated``: one adjudicated reading per image, a YES/NO column per class, optionally next to the
  text-mined ``Finding Labels`` (the Google 2019 re-read of ChestX-ray14);
* ``reader_long``: one row per finding per reader per image, ``image_id``, ``rad_id``, ``class_name``, with
  ``No finding`` rows for readings without findings; other columns (boxes) are ignored (VinDr-CXR);
* ``reader_wide``: one row per reader per image, ``Image Index``, ``Reader`` and a 0/1 column per class (the
  synthetic cohort's ``reread.csv``).

Image IDs are compared without their file extension (``x.dcm``, ``x.png`` and ``x`` are one image), so the
synthetic cohort's tables and its answer key line up. Patient ID columns are never read.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.vocabulary import Target, Vocabulary
from cxrpriv.synth.stats import DATA_ENTRY_COLUMNS, FINDINGS, NO_FINDING

Layout = Literal["adjudicated", "reader_long", "reader_wide"]
LAYOUTS: tuple[str, ...] = ("adjudicated", "reader_long", "reader_wide")

IMAGE_EXTENSIONS = (".dcm", ".dicom", ".png", ".jpg", ".jpeg")
# Columns of the ChestX-ray14 table (and so of the Google re-read beside it) that are not findings.
CHESTXRAY14_METADATA = frozenset({*DATA_ENTRY_COLUMNS, "Set Id"})
LONG_COLUMNS = ("image_id", "rad_id", "class_name")
REQUIRED_COLUMNS = {
    "adjudicated": ("Image Index",),
    "reader_long": LONG_COLUMNS,
    "reader_wide": ("Image Index", "Reader"),
}
LONG_NO_FINDING = "no finding"
ADJUDICATED_READER = "adjudicated"
MAX_EXAMPLES = 5  # image IDs quoted in an error message


@dataclass(frozen=True)
class MinedLabels:
    """Text-mined labels, one row per image, columns in :data:`FINDINGS` order."""

    image_ids: pd.Index
    values: np.ndarray  # (n_images, 14) uint8
    duplicates_dropped: int = 0
    sha256: str = ""  # content hash of the file read, for provenance

    def target_labels(self, target: Target, rows: np.ndarray | None = None) -> np.ndarray:
        """The text-mined label of a target: any of its member findings mined."""
        values = self.values if rows is None else self.values[rows]
        return values[:, target.member_columns].max(axis=1)

    def rows_of(self, image_ids: Sequence[str] | pd.Index) -> np.ndarray:
        """Row of each image ID in this table, -1 where it is absent."""
        return self.image_ids.get_indexer(pd.Index(image_ids))


@dataclass(frozen=True)
class RereadTable:
    """Readings of one re-read table: ``readings[image, reader, target]`` is 1, 0, or -1 (not read)."""

    name: str
    layout: str
    sha256: str
    image_ids: pd.Index
    reader_ids: tuple[str, ...]
    targets: tuple[Target, ...]
    readings: np.ndarray  # (n_images, n_readers, n_targets) int8
    unmapped_labels: tuple[str, ...]
    embedded_mined: MinedLabels | None
    duplicates_dropped: int

    @property
    def n_images(self) -> int:
        return len(self.image_ids)

    def readings_per_image(self) -> np.ndarray:
        return (self.readings[:, :, 0] >= 0).sum(axis=1)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def image_keys(values: pd.Series, where: str) -> pd.Series:
    """Image IDs without surrounding blanks and without an image file extension."""
    if values.isna().any():
        raise PriorsInputError(f"{where}: {int(values.isna().sum())} row(s) have no image ID")
    keys = values.astype(str).str.strip()
    lower = keys.str.lower()
    for ext in IMAGE_EXTENSIONS:
        ends = lower.str.endswith(ext)
        keys = keys.where(~ends, keys.str.slice(0, -len(ext)))
        lower = lower.where(~ends, lower.str.slice(0, -len(ext)))
    if (keys == "").any():
        raise PriorsInputError(f"{where}: {int((keys == '').sum())} row(s) have an empty image ID")
    return keys


def format_examples(ids: Sequence[str] | pd.Index) -> str:
    """A few image IDs for an error message (image IDs, never patient IDs)."""
    ids = list(ids)
    more = f" and {len(ids) - MAX_EXAMPLES} more" if len(ids) > MAX_EXAMPLES else ""
    return ", ".join(map(str, ids[:MAX_EXAMPLES])) + more


def _drop_duplicates(frame: pd.DataFrame, key: list[str], where: str) -> tuple[pd.DataFrame, int]:
    """Drop exact duplicate rows; raise on rows with the same key and different values."""
    exact = frame.duplicated()
    frame = frame[~exact]
    clash = frame.duplicated(key, keep=False)
    if clash.any():
        clashing = frame.loc[clash, key].drop_duplicates()
        ids = clashing[key[0]].unique()
        raise PriorsInputError(
            f"{where}: contradictory duplicate rows: {len(clashing)} {'/'.join(key)} key(s) appear more than "
            f"once with different labels (image IDs: {format_examples(ids)})"
        )
    return frame, int(exact.sum())


# ------------------------------------------------------------------------------------- text-mined labels


def mined_labels_from_finding_strings(ids: pd.Series, labels: pd.Series, where: str) -> MinedLabels:
    """Text-mined labels from a ChestX-ray14 ``Finding Labels`` column (``A|B`` or ``No Finding``)."""
    if len(ids) == 0:
        raise PriorsInputError(f"{where}: the labels table has no rows")
    if labels.isna().any() or (labels.astype(str).str.strip() == "").any():
        raise PriorsInputError(f"{where}: {int(labels.isna().sum())} row(s) have an empty 'Finding Labels'")
    dummies = labels.astype(str).str.strip().str.get_dummies(sep="|")
    unknown = sorted(set(dummies.columns) - set(FINDINGS) - {NO_FINDING})
    if unknown:
        counts = {name: int(dummies[name].sum()) for name in unknown}
        raise PriorsInputError(f"{where}: unknown finding(s) in 'Finding Labels' (rows): {counts}")
    if NO_FINDING in dummies:
        both = (dummies[NO_FINDING] == 1) & (dummies.drop(columns=NO_FINDING).sum(axis=1) > 0)
        if both.any():
            raise PriorsInputError(
                f"{where}: {int(both.sum())} row(s) say '{NO_FINDING}' together with a finding "
                f"(image IDs: {format_examples(ids[both.to_numpy()])})"
            )
    frame = dummies.reindex(columns=list(FINDINGS), fill_value=0).astype(np.uint8)
    frame.insert(0, "image_index", image_keys(ids, where).to_numpy())
    return _mined_from_frame(frame, where)


def mined_labels_from_columns(frame: pd.DataFrame, id_column: str, where: str) -> MinedLabels:
    """Text-mined labels from a table with one 0/1 column per ChestX-ray14 finding (e.g. a manifest).

    ``frame`` needs ``id_column`` and the 14 columns named as in :data:`FINDINGS`; booleans are accepted.
    This is the entry point for the ingest stage's manifest.
    """
    missing = [c for c in (id_column, *FINDINGS) if c not in frame.columns]
    if missing:
        raise PriorsInputError(f"{where}: missing column(s) {missing}")
    if len(frame) == 0:
        raise PriorsInputError(f"{where}: the labels table has no rows")
    values = frame[list(FINDINGS)]
    bad = [c for c in FINDINGS if not values[c].isin([0, 1, True, False]).all()]
    if bad:
        raise PriorsInputError(f"{where}: column(s) {bad} hold values other than 0/1")
    out = values.astype(np.uint8)
    out.insert(0, "image_index", image_keys(frame[id_column], where).to_numpy())
    return _mined_from_frame(out, where)


def _mined_from_frame(frame: pd.DataFrame, where: str) -> MinedLabels:
    frame, dropped = _drop_duplicates(frame.reset_index(drop=True), ["image_index"], where)
    return MinedLabels(pd.Index(frame["image_index"]), frame[list(FINDINGS)].to_numpy(np.uint8), dropped)


def read_mined_labels(path: Path) -> MinedLabels:
    """Text-mined labels from a ChestX-ray14 CSV (``.csv``, ``.csv.gz``) or a Parquet manifest."""
    path = Path(path)
    where = f"labels table {path.name}"
    if not path.is_file():
        raise PriorsInputError(f"{where}: file not found")
    if path.suffix == ".parquet":
        labels = mined_labels_from_columns(pd.read_parquet(path), "image_index", where)
        return dataclasses.replace(labels, sha256=file_sha256(path))
    columns = pd.read_csv(path, nrows=0).columns
    missing = [c for c in ("Image Index", "Finding Labels") if c not in columns]
    if missing:
        raise PriorsInputError(f"{where}: missing column(s) {missing} (expected the ChestX-ray14 format)")
    table = pd.read_csv(
        path, usecols=["Image Index", "Finding Labels"], dtype=str, keep_default_na=False, na_values=[""]
    )
    labels = mined_labels_from_finding_strings(table["Image Index"], table["Finding Labels"], where)
    return dataclasses.replace(labels, sha256=file_sha256(path))


# -------------------------------------------------------------------------------------- re-read tables


def detect_layout(columns: Sequence[str], where: str) -> str:
    names = set(columns)
    if set(LONG_COLUMNS) <= names:
        return "reader_long"
    if {"Image Index", "Reader"} <= names:
        return "reader_wide"
    if "Image Index" in names and names - CHESTXRAY14_METADATA:
        return "adjudicated"
    raise PriorsInputError(
        f"{where}: cannot tell the layout from the columns {sorted(names)[:12]}; expected "
        f"{list(LONG_COLUMNS)} (reader_long), 'Image Index' + 'Reader' + findings (reader_wide) or "
        "'Image Index' + YES/NO finding columns (adjudicated)"
    )


def read_reread_table(path: Path, vocabulary: Vocabulary, name: str, layout: str = "auto") -> RereadTable:
    """Parse a re-read table into readings per image, reader and target (see the module docstring)."""
    path = Path(path)
    where = f"re-read table {name} ({path.name})"
    if not path.is_file():
        raise PriorsInputError(f"{where}: file not found")
    columns = list(pd.read_csv(path, nrows=0).columns)
    if layout == "auto":
        layout = detect_layout(columns, where)
    elif layout not in LAYOUTS:
        raise PriorsInputError(f"{where}: unknown layout {layout!r} (known: auto, {', '.join(LAYOUTS)})")
    where = f"re-read table {name} ({path.name}, {layout})"
    missing = [c for c in REQUIRED_COLUMNS[layout] if c not in columns]
    if missing:
        raise PriorsInputError(f"{where}: missing column(s) {missing} of that layout")
    parsers = {"adjudicated": _parse_adjudicated, "reader_long": _parse_long, "reader_wide": _parse_wide}
    parse = parsers[layout]
    wide, embedded, dropped = parse(path, columns, where)
    labels = [c for c in wide.columns if c not in ("image", "reader")]
    mapped, unmapped = vocabulary.resolve(labels, where)
    # An empty table is not an error here (a small cohort may have no re-read image); the stage flags it.
    if labels and not mapped:
        raise PriorsInputError(f"{where}: none of its findings {labels} maps to a ChestX-ray14 finding")
    targets = tuple(sorted(set(mapped.values()), key=Target.sort_key))
    image_codes, image_ids = pd.factorize(wide["image"], sort=True)
    reader_codes, reader_ids = pd.factorize(wide["reader"], sort=True)
    readings = np.full((len(image_ids), len(reader_ids), len(targets)), -1, dtype=np.int8)
    for t, target in enumerate(targets):
        sources = [label for label, tgt in mapped.items() if tgt == target]
        readings[image_codes, reader_codes, t] = wide[sources].max(axis=1).to_numpy(np.int8)
    return RereadTable(
        name=name,
        layout=layout,
        sha256=file_sha256(path),
        image_ids=pd.Index(image_ids),
        reader_ids=tuple(map(str, reader_ids)),
        targets=targets,
        readings=readings,
        unmapped_labels=unmapped,
        embedded_mined=embedded,
        duplicates_dropped=dropped,
    )


def _binary(frame: pd.DataFrame, columns: Sequence[str], where: str) -> pd.DataFrame:
    """YES/NO, 1/0 or true/false columns as 0/1; any other value (blank included) is an error."""
    words = {"yes": 1, "no": 0, "1": 1, "0": 0, "true": 1, "false": 0, "1.0": 1, "0.0": 0}
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        text = frame[column].astype(str).str.strip().str.lower()
        mapped = text.map(words)
        if mapped.isna().any():
            bad = sorted(set(frame.loc[mapped.isna(), column].astype(str)))[:MAX_EXAMPLES]
            raise PriorsInputError(f"{where}: column {column!r} has values {bad}, expected YES/NO or 0/1")
        out[column] = mapped.astype(np.int8)
    return out


def _parse_adjudicated(
    path: Path, columns: list[str], where: str
) -> tuple[pd.DataFrame, MinedLabels | None, int]:
    classes = [c for c in columns if c not in CHESTXRAY14_METADATA]
    keep = ["Image Index", *(["Finding Labels"] if "Finding Labels" in columns else []), *classes]
    table = pd.read_csv(path, usecols=keep, dtype=str, keep_default_na=False, na_values=[""])
    wide = _binary(table, classes, where)
    wide.insert(0, "reader", ADJUDICATED_READER)
    wide.insert(0, "image", image_keys(table["Image Index"], where))
    if "Finding Labels" in table:
        wide["_mined"] = table["Finding Labels"]
    wide, dropped = _drop_duplicates(wide, ["image"], where)
    embedded = None
    if "_mined" in wide:
        embedded = mined_labels_from_finding_strings(wide["image"], wide.pop("_mined"), where)
    return wide.reset_index(drop=True), embedded, dropped


def _parse_wide(path: Path, columns: list[str], where: str) -> tuple[pd.DataFrame, None, int]:
    classes = [c for c in columns if c not in ("Image Index", "Reader")]
    table = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    if table["Reader"].isna().any():
        raise PriorsInputError(f"{where}: {int(table['Reader'].isna().sum())} row(s) have no reader ID")
    wide = _binary(table, classes, where)
    wide.insert(0, "reader", table["Reader"].str.strip())
    wide.insert(0, "image", image_keys(table["Image Index"], where))
    wide, dropped = _drop_duplicates(wide, ["image", "reader"], where)
    return wide.reset_index(drop=True), None, dropped


def _parse_long(path: Path, columns: list[str], where: str) -> tuple[pd.DataFrame, None, int]:
    table = pd.read_csv(path, usecols=list(LONG_COLUMNS), dtype=str, keep_default_na=False, na_values=[""])
    for column in ("rad_id", "class_name"):
        if table[column].isna().any():
            raise PriorsInputError(f"{where}: {int(table[column].isna().sum())} row(s) have no {column}")
    table = pd.DataFrame(
        {
            "image": image_keys(table["image_id"], where),
            "reader": table["rad_id"].str.strip(),
            "label": table["class_name"].str.strip(),
        }
    )
    # Several boxes of one finding by one reader are one positive reading.
    table = table.drop_duplicates()
    none = table["label"].str.lower() == LONG_NO_FINDING
    readings = table[["image", "reader"]].drop_duplicates()
    with_none = table.loc[none, ["image", "reader"]].drop_duplicates()
    with_some = table.loc[~none, ["image", "reader"]].drop_duplicates()
    both = with_none.merge(with_some, on=["image", "reader"])
    if len(both):
        raise PriorsInputError(
            f"{where}: contradictory rows: {len(both)} reading(s) say 'No finding' and also name a finding "
            f"(image IDs: {format_examples(both['image'].unique())})"
        )
    positives = table[~none].assign(value=np.int8(1))
    wide = positives.pivot_table(index=["image", "reader"], columns="label", values="value", aggfunc="max")
    wide = readings.merge(wide.reset_index(), on=["image", "reader"], how="left")
    labels = [c for c in wide.columns if c not in ("image", "reader")]
    wide[labels] = wide[labels].fillna(0).astype(np.int8)
    wide.columns.name = None
    return wide.reset_index(drop=True), None, 0
