"""The leftover-PHI audit of a release: every file written, before the release is declared complete.

Checks, each finding naming the file, where in it (an attribute tag, a row and column, a line, a position in
a JSON document) and the kind of problem, never the value:

- **attributes**: a DICOM file holds only what the ingest allowlist keeps (:mod:`cxrpriv.ingest.allowlist`,
  plus what the dataset's de-identification options retain), what ingest records about the
  de-identification, what the release sets itself (:mod:`.dicom`), and empty Type 2 attributes; item
  attributes of kept sequences likewise; no private attribute; only standard file meta elements;
- **identifying strings**: every string of every file (DICOM values, CSV cells, JSON keys and strings,
  text lines, PNG text chunks, file and folder names) is normalized and tokenized as ingest did
  (:mod:`cxrpriv.ingest.phi_hashes`); its keyed hash and each token's are looked up among the hashes of
  the identifying values that ingest removed. DICOM dates and times (DA, DT, TM) are not looked up: ingest
  shifted them, and a shifted date of one patient is bound to equal an original date of another; the
  attribute check is what keeps them to the allowlisted ones;
- **burned-in text**: the text detector of ingest (:func:`cxrpriv.ingest.screening.detect_text`) over
  every released image;
- files the audit cannot read (an unknown binary format, a text file over the size limit) are findings too:
  what is not checked is not released.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from cxrpriv.ingest import allowlist
from cxrpriv.ingest.deid import retained_tags
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.ingest.phi_hashes import TOKEN, VALUE, normalized_value, tokens, value_hash
from cxrpriv.ingest.screening import detect_text
from cxrpriv.release.dicom import DX_EMPTY_TYPE2_KEYWORDS, EMPTY_TYPE2_KEYWORDS, SET_KEYWORDS

NOT_ALLOWED = "attribute not allowed"
PRIVATE = "private attribute"
IDENTIFYING_VALUE = "identifying value"
IDENTIFYING_TOKEN = "identifying token"
BURNED_IN = "burned-in text"
UNREGISTERED_MEANING = "code meaning not the registered one"
UNREADABLE = "not readable by the audit"
TOO_LARGE = "too large to audit"
TEXT_SUFFIXES = frozenset(
    {".txt", ".csv", ".tsv", ".json", ".html", ".htm", ".md", ".svg", ".xml", ".css", ""}
)
IMAGE_SUFFIXES = frozenset({".png"})
DEID_RECORD_KEYWORDS = (
    "PatientIdentityRemoved",
    "DeidentificationMethod",
    "DeidentificationMethodCodeSequence",
    "LongitudinalTemporalInformationModified",
)
FILE_META_KEYWORDS = (
    "FileMetaInformationGroupLength",
    "FileMetaInformationVersion",
    "MediaStorageSOPClassUID",
    "MediaStorageSOPInstanceUID",
    "TransferSyntaxUID",
    "ImplementationClassUID",
    "ImplementationVersionName",
)
UNCHECKED_VRS = frozenset({"DA", "DT", "TM", "SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN", "AT"})
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})


def _tags(keywords: Iterable[str]) -> frozenset[int]:
    return frozenset(int(Tag(k)) for k in keywords)


@dataclass(frozen=True)
class Finding:
    file: str  # relative path; a keyed tag instead when the file's own name is identifying
    where: str  # attribute tag, row and column, line, JSON position, "file name"
    kind: str


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    files: int = 0
    strings: int = 0
    images: int = 0

    @property
    def passed(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        kinds: dict[str, int] = {}
        for finding in self.findings:
            kinds[finding.kind] = kinds.get(finding.kind, 0) + 1
        return {
            "status": "pass" if self.passed else "blocked",
            "files_checked": self.files,
            "strings_checked": self.strings,
            "images_checked": self.images,
            "findings_by_kind": kinds,
            "findings": [asdict(f) for f in self.findings],
        }


class PhiIndex:
    """The keyed hashes of identifying values, and lookups of output strings against them."""

    def __init__(self, key: DeidKey, hashes: pd.DataFrame) -> None:
        self.key = key
        kinds = hashes["kind"].astype(str).to_numpy()
        values = hashes["hash"].astype(str).to_numpy()
        self.values = frozenset(values[kinds == VALUE])
        self.tokens = frozenset(values[kinds == TOKEN])
        self._seen: dict[str, tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self.values) + len(self.tokens)

    def matches(self, text: str) -> tuple[str, ...]:
        """The kinds of identifying content in ``text`` (empty: none)."""
        if text not in self._seen:
            found = []
            value = normalized_value(text)
            if value and value_hash(self.key, VALUE, value) in self.values:
                found.append(IDENTIFYING_VALUE)
            if any(value_hash(self.key, TOKEN, t) in self.tokens for t in tokens(text)):
                found.append(IDENTIFYING_TOKEN)
            self._seen[text] = tuple(found)
        return self._seen[text]


@dataclass
class Auditor:
    """Audits the files of one release directory."""

    index: PhiIndex
    deid_options: tuple[str, ...]
    text_min_glyphs: int
    text_contrast: float
    max_text_bytes: int
    result: AuditResult = field(default_factory=AuditResult)

    def __post_init__(self) -> None:
        self.top_level = (
            allowlist.TOP_LEVEL
            | retained_tags(self.deid_options)
            | _tags(SET_KEYWORDS)
            | _tags(DEID_RECORD_KEYWORDS)
        )
        self.empty_only = _tags(EMPTY_TYPE2_KEYWORDS + DX_EMPTY_TYPE2_KEYWORDS) - self.top_level
        self.items = {
            **allowlist.ITEMS,
            int(Tag("DeidentificationMethodCodeSequence")): (allowlist.RETAINED_ITEM),
        }
        self.file_meta = _tags(FILE_META_KEYWORDS)

    # ----------------------------------------------------------------- strings

    def check_strings(self, file: str, located: Iterable[tuple[str, str]]) -> None:
        """Look up each (where, string) of a file."""
        for where, text in located:
            self.result.strings += 1
            for kind in self.index.matches(text):
                self.result.findings.append(Finding(file, where, kind))

    # ----------------------------------------------------------------- files

    def audit_directory(self, root: Path) -> AuditResult:
        root = Path(root)
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            self.audit_file(root, path)
        return self.result

    def audit_file(self, root: Path, path: Path) -> None:
        rel = path.relative_to(root).as_posix()
        self.result.files += 1
        name_findings = len(self.result.findings)
        self.check_strings(rel, (("file name", part) for part in _name_parts(rel)))
        shown = rel if len(self.result.findings) == name_findings else self.index.key.path_tag(rel)
        for i in range(name_findings, len(self.result.findings)):
            self.result.findings[i] = Finding(shown, "file name", self.result.findings[i].kind)
        suffix = path.suffix.lower()
        if suffix == ".dcm":
            self._audit_dicom(shown, path)
        elif suffix in IMAGE_SUFFIXES:
            self._audit_png(shown, path)
        elif suffix in TEXT_SUFFIXES:
            self._audit_text(shown, path, suffix)
        elif suffix == ".parquet":
            self.check_strings(shown, _parquet_strings(path))
        else:
            self.result.findings.append(Finding(shown, "whole file", UNREADABLE))

    def _audit_text(self, shown: str, path: Path, suffix: str) -> None:
        if path.stat().st_size > self.max_text_bytes:
            self.result.findings.append(Finding(shown, "whole file", TOO_LARGE))
            return
        try:
            text = path.read_text(encoding="utf-8")
            if suffix == ".json":
                located = list(_json_strings(json.loads(text), "$"))
            elif suffix in (".csv", ".tsv"):
                located = list(_csv_cells(text, "\t" if suffix == ".tsv" else ","))
            else:
                located = [(f"line {i}", line) for i, line in enumerate(text.splitlines(), start=1)]
        except (UnicodeDecodeError, ValueError, csv.Error):
            self.result.findings.append(Finding(shown, "whole file", UNREADABLE))
            return
        self.check_strings(shown, located)

    def _audit_png(self, shown: str, path: Path) -> None:
        from PIL import Image

        try:
            with Image.open(path) as image:
                chunks = dict(getattr(image, "text", {}) or {})
        except Exception:  # any decoder failure: unread means unreleased
            self.result.findings.append(Finding(shown, "whole file", UNREADABLE))
            return
        self.check_strings(shown, ((f"PNG text chunk {i}", s) for i, s in enumerate(_flat(chunks))))

    def _audit_dicom(self, shown: str, path: Path) -> None:
        try:
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array
        except Exception:  # a file pydicom cannot read cannot be checked
            self.result.findings.append(Finding(shown, "whole file", UNREADABLE))
            return
        for elem in ds.file_meta:
            if int(elem.tag) not in self.file_meta:
                self.result.findings.append(Finding(shown, _tag(int(elem.tag)), NOT_ALLOWED))
        self._audit_elements(shown, ds, self.top_level, "")
        self.result.images += 1
        image = np.asarray(pixels, dtype=np.float32) / np.float32(np.iinfo(pixels.dtype).max)
        if detect_text(image, self.text_min_glyphs, self.text_contrast).has_text:
            self.result.findings.append(Finding(shown, "pixel data", BURNED_IN))

    def _audit_elements(self, shown: str, ds: Dataset, allowed: frozenset[int], prefix: str) -> None:
        if "CodeMeaning" in ds and not allowlist.is_registered_meaning(
            str(ds.get("CodingSchemeDesignator", "")), str(ds.get("CodeValue", "")), str(ds.CodeMeaning)
        ):
            self.result.findings.append(
                Finding(shown, prefix + _tag(allowlist.CODE_MEANING), UNREGISTERED_MEANING)
            )
        for elem in ds:
            tag = int(elem.tag)
            where = prefix + _tag(tag)
            if elem.tag.is_private:
                self.result.findings.append(Finding(shown, where, PRIVATE))
                continue
            empty = elem.value is None or elem.value == "" or (elem.VR == "SQ" and not elem.value)
            if tag not in allowed and not (tag in self.empty_only and empty):
                self.result.findings.append(Finding(shown, where, NOT_ALLOWED))
            if elem.VR == "SQ":
                inner = self.items.get(tag, allowlist.RETAINED_ITEM)
                for i, item in enumerate(elem.value or []):
                    self._audit_elements(shown, item, inner, f"{where}[{i}]")
            elif elem.VR not in UNCHECKED_VRS and elem.VR not in NUMBER_VRS and tag != 0x7FE00010:
                self.check_strings(shown, ((where, text) for text in _element_texts(elem.value)))


def _tag(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _name_parts(rel: str) -> Iterator[str]:
    """Each folder and file name of a relative path, whole and without its suffix."""
    for part in rel.split("/"):
        yield part
        stem = part.rsplit(".", 1)[0]
        if stem and stem != part:
            yield stem


def _element_texts(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | MultiValue):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _flat(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from _flat(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _flat(v)
    elif isinstance(value, str):
        yield value


def _json_strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """(position, string) of every key and string value; positions count places, never quote keys."""
    if isinstance(value, dict):
        for i, (k, v) in enumerate(value.items()):
            yield f"{where}{{key {i}}}", str(k)
            yield from _json_strings(v, f"{where}{{{i}}}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_strings(v, f"{where}[{i}]")
    elif isinstance(value, str):
        yield where, value


def _csv_cells(text: str, delimiter: str) -> Iterator[tuple[str, str]]:
    for r, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        for c, cell in enumerate(row, start=1):
            yield f"row {r} column {c}", cell


def _parquet_strings(path: Path) -> Iterator[tuple[str, str]]:
    frame = pd.read_parquet(path)
    for c, column in enumerate(frame.columns, start=1):
        yield f"column {c} name", str(column)
        for r, cell in enumerate(frame[column].astype(str), start=1):
            yield f"row {r} column {c}", cell


def audit_strings(auditor: Auditor, file: str, document: Any) -> None:
    """Audit an in-memory JSON document (the release manifest, before it is written) as ``file``."""
    auditor.check_strings(file, _json_strings(document, "$"))
