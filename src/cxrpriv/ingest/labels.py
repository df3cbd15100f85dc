"""The labels table in the ChestX-ray14 ``Data_Entry_2017`` format, joined to images by file name.

Columns used: ``Image Index`` (the image's file name, or its path relative to the source root),
``Finding Labels`` ('|'-separated findings, or 'No Finding'), and as fallbacks where the image header has
none: ``Patient ID`` (the only patient key of PNG sources), ``Patient Age``, ``Patient Gender``,
``View Position``. The table's Patient ID is identifying: it is only ever used through the keyed pseudonym.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import pandas as pd

from cxrpriv.chestxray14 import FINDINGS, NO_FINDING

REQUIRED_COLUMNS = ("Image Index", "Finding Labels")


class LabelsError(ValueError):
    """The labels table cannot be used; the message names the table and the problem."""


@dataclass(frozen=True)
class LabelRow:
    labels: tuple[int, ...]  # one 0/1 per FINDINGS entry
    patient_id: str | None
    age: int | None
    sex: str | None
    view: str | None


def parse_findings(text: str) -> tuple[int, ...]:
    """0/1 per finding from 'A|B' (unknown findings are an error, so a typo never becomes a negative)."""
    names = {n.strip() for n in str(text).split("|") if n.strip()}
    names.discard(NO_FINDING)
    unknown = names - set(FINDINGS)
    if unknown:
        raise LabelsError(f"unknown findings {sorted(unknown)} (known: {list(FINDINGS)} and '{NO_FINDING}')")
    return tuple(int(f in names) for f in FINDINGS)


class LabelsTable:
    """Label rows by ``Image Index``; ``lookup`` tries the relative path, then the file name."""

    def __init__(self, rows: dict[str, LabelRow]) -> None:
        self.rows = rows

    @classmethod
    def from_csv(cls, data: bytes, name: str) -> LabelsTable:
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
            raise LabelsError(f"{name}: not a readable CSV ({type(exc).__name__})") from exc
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise LabelsError(f"{name}: missing columns {missing}")
        duplicated = frame["Image Index"].duplicated()
        if duplicated.any():
            raise LabelsError(f"{name}: {int(duplicated.sum())} duplicated 'Image Index' values")
        rows: dict[str, LabelRow] = {}
        for i, record in enumerate(frame.to_dict("records")):
            try:
                labels = parse_findings(record["Finding Labels"])
            except LabelsError as exc:
                # Row number, not the row: the table's other columns may identify a patient.
                raise LabelsError(f"{name}: row {i + 2}: {exc}") from exc
            rows[str(record["Image Index"]).strip()] = LabelRow(
                labels=labels,
                patient_id=(str(record.get("Patient ID", "")).strip() or None),
                age=_age(record.get("Patient Age", "")),
                sex=_sex(record.get("Patient Gender", "")),
                view=(str(record.get("View Position", "")).strip().upper() or None),
            )
        return cls(rows)

    def lookup(self, path: str) -> LabelRow | None:
        return self.rows.get(path) or self.rows.get(PurePosixPath(path).name)

    def __len__(self) -> int:
        return len(self.rows)


def _age(value: object) -> int | None:
    text = str(value or "").strip().upper().rstrip("Y")
    try:
        age = int(float(text))
    except ValueError:
        return None
    return age if 0 <= age <= 120 else None


def _sex(value: object) -> str | None:
    text = str(value or "").strip().upper()[:1]
    return text if text in ("M", "F", "O") else None


def label_matrix(rows: list[tuple[int, ...]]) -> np.ndarray:
    return np.asarray(rows, dtype=np.int8).reshape(len(rows), len(FINDINGS))
