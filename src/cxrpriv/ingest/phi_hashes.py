"""Keyed hashes of the identifying values ingest removed or replaced: what lets ``cxrpriv release`` audit its
output for leftover PHI without anyone keeping the PHI.

Before a header is de-identified, :func:`identifying_values` reads what could identify a patient:

- *identity* attributes (names, IDs, birth date, accession, study ID, addresses, phone numbers, institution,
  station and device serial; every person name (VR PN) at any depth): the whole value and each of its
  tokens, since a name or an address can come back reworded ("DOE^JOHN" as "John Doe");
- every other free-text value (LO, SH, LT, ST, UT, UC: descriptions, comments, private text), every date
  (DA, DT) and every UID that is not a registered DICOM UID: the whole value only, because the words of
  descriptions ("chest", "portable") and the components of UIDs (registry roots) are shared by every file;
  a value that is the registered name of a coded concept ("Chest", "antero-posterior") is vocabulary, not
  identity, and is not hashed.

After de-identification, :func:`keyed_hashes` keeps those that the de-identified header no longer holds
(a value the policy kept is releasable: hashing it would make the audit flag every release) and returns
their HMACs under the de-identification key, separated by kind (``value`` or ``token``). Nothing un-keyed is
returned or stored: without the key nobody can test a guess against the table.

Both sides (ingest here, the release audit) normalize and tokenize through :func:`normalized_value` and
:func:`tokens`, so a value matches however it is cased, spaced or separated.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydicom.dataset import Dataset
from pydicom.uid import UID_dictionary

from cxrpriv.dataset import PHI_HASHES_COLUMNS
from cxrpriv.ingest import allowlist, deid
from cxrpriv.ingest.keys import DeidKey

VALUE, TOKEN = "value", "token"
KINDS = (VALUE, TOKEN)
# Identity attributes beyond the tripwire's: their words identify on their own.
EXTRA_IDENTITY_KEYWORDS = ("StationName", "DeviceSerialNumber", "IssuerOfPatientID", "PatientBirthTime")
IDENTITY_TAGS = frozenset(
    int(allowlist.keyword_tag(k))
    for k in (*deid.TRIPWIRE_KEYWORDS, *deid.IDENTIFYING_KEYWORDS, *EXTRA_IDENTITY_KEYWORDS)
)
FREE_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC"})
DATE_VRS = frozenset({"DA", "DT"})
# Tokens: split at anything that is not a letter or digit (whitespace and the DICOM separators ^ \ = and
# - / , . : ; _ and quotes alike), casefolded.
_SEPARATORS = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")
MIN_CHARS = deid.TRIPWIRE_MIN_CHARS
# Numbers need more digits (as in the ingest tripwire): 3- and 4-digit numbers are in every technique value
# (kVp, distances, matrix sizes) and would match any identifier's fragment.
MIN_DIGITS = deid.TRIPWIRE_MIN_DIGITS


def _long_enough(text: str) -> bool:
    compact = _SEPARATORS.sub("", text)
    return len(compact) >= (MIN_DIGITS if compact.isdigit() else MIN_CHARS)


def normalized_value(text: str) -> str:
    """A whole value as it is compared: casefolded, outer whitespace stripped, inner runs as one space
    (separators stay: '1800.0' is not the identifier '18000'); empty when it is too short to identify."""
    value = _SPACES.sub(" ", str(text)).strip().casefold()
    return value if _long_enough(value) else ""


def tokens(text: str) -> set[str]:
    """The words of a value: split at every non-alphanumeric character, casefolded, long enough."""
    return {t for t in _SEPARATORS.split(str(text).casefold()) if t and _long_enough(t)}


def value_hash(key: DeidKey, kind: str, text: str) -> str:
    """The keyed hash of a normalized value or a token (``kind``: value or token)."""
    return key.digest(f"phi-{kind}", text).hex()


@dataclass(frozen=True)
class OriginalValue:
    text: str
    tokenize: bool  # identity attribute: its words are hashed too


def identifying_values(ds: Dataset) -> list[OriginalValue]:
    """What could identify the patient in ``ds`` (at any depth), read before de-identification changes it."""
    return list(_walk(ds))


def _walk(ds: Dataset) -> Iterator[OriginalValue]:
    for tag in list(ds._dict):
        vr = deid._vr(ds, tag)
        if vr == "SQ":
            for item in ds[tag].value or []:
                yield from _walk(item)
            continue
        identity = tag in IDENTITY_TAGS or vr == "PN"
        if not (identity or vr in FREE_TEXT_VRS or vr in DATE_VRS or vr == "UI"):
            continue
        try:
            texts = deid._texts(ds, tag)
        except Exception:  # an unreadable value is removed by the profile and cannot be hashed either
            continue
        for text in texts:
            if vr == "UI" and text.strip() in UID_dictionary:
                continue  # a registered DICOM UID (SOP class, transfer syntax) names nobody
            if not identity and _is_vocabulary(text):
                continue  # a coded concept's name ("Chest", "antero-posterior"), not anyone's
            yield OriginalValue(text, identity)


@functools.cache
def _vocabulary() -> frozenset[str]:
    """Every meaning the DICOM content mapping resource registers, normalized: the words of code items and
    descriptions that name concepts, shared by every file (kept ones included, as Body Part CHEST)."""
    return frozenset(normalized_value(m) for ms in allowlist.registered_meanings().values() for m in ms)


def _is_vocabulary(text: str) -> bool:
    return normalized_value(text) in _vocabulary()


def header_strings(header: Any) -> Iterator[str]:
    """Every string in a DICOM JSON header (values, person-name components), at any depth."""
    if isinstance(header, dict):
        for name, value in header.items():
            if name not in ("vr", "InlineBinary"):
                yield from header_strings(value)
    elif isinstance(header, list):
        for value in header:
            yield from header_strings(value)
    elif isinstance(header, str):
        yield header


def keyed_hashes(key: DeidKey, originals: Iterable[OriginalValue], kept_header: dict) -> set[tuple[str, str]]:
    """(kind, hash) of each original value (and identity token) that the de-identified header no longer
    holds."""
    kept = list(header_strings(kept_header))
    kept_values = {normalized_value(text) for text in kept}
    kept_tokens = set().union(*(tokens(text) for text in kept)) if kept else set()
    found: set[tuple[str, str]] = set()
    for original in originals:
        value = normalized_value(original.text)
        if value and value not in kept_values:
            found.add((VALUE, value_hash(key, VALUE, value)))
        if original.tokenize:
            found.update((TOKEN, value_hash(key, TOKEN, t)) for t in tokens(original.text) - kept_tokens)
    return found


def hashes_frame(hashes: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """The stored table: one row per (kind, hash), sorted, so equal sets give equal files."""
    frame = pd.DataFrame(sorted(set(hashes)), columns=list(PHI_HASHES_COLUMNS))
    return frame.astype({"kind": "string", "hash": "string"})


def merge_hashes(path: Path, new: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """Add ``new`` to the table at ``path`` (an incremental run keeps every earlier run's hashes)."""
    path = Path(path)
    hashes = set(new)
    if path.is_file():
        previous = pd.read_parquet(path)
        hashes.update(zip(previous["kind"].astype(str), previous["hash"].astype(str), strict=True))
    frame = hashes_frame(hashes)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return frame
