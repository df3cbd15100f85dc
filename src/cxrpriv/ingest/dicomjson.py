"""The DICOM JSON Model (PS3.18 Annex F) of a de-identified header, with large binary elements left out.

Equal, element for element, to pydicom's ``Dataset.to_json_dict()`` of the dataset after deleting every
binary element over ``bulk_bytes`` at any depth (what ingest did before, with ``Dataset.walk``): tests
compare the two on every test-data and synthetic file. It is one pass instead of two, and it writes the
common value representations directly: pydicom's per-element ``to_json_dict`` spends most of its time in
generic properties (VM, emptiness, number conversion dispatch) that cost more than the values themselves.
Raw (not yet converted) elements of the plain VRs are read straight from their bytes, as pydicom's value
converters would read them: binary numbers by ``struct``, and ASCII-only text (no escape sequences, so every
DICOM character set decodes it the same) split and stripped as pydicom does per VR. Anything unusual (AT, PN,
IS/DS, non-ASCII text, ambiguous VRs, value types other than the usual ones) goes through pydicom's own
conversion and element writer, so rare cases keep pydicom's exact behaviour.
"""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

from pydicom import config
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.jsonrep import convert_to_python_number
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from cxrpriv.ingest.deid import BINARY_VRS

# Binary elements above ``bulk_bytes`` (LUT data, icons, waveforms) are dropped (and their keywords reported).
BULK_VRS = BINARY_VRS
# Value representations written inline as base64 (pydicom: BYTES_VR | AMBIGUOUS_VR - {"US or SS"}).
INLINE_BINARY_VRS = BULK_VRS | {"US or SS or OW", "US or OW", "OB or OW"}
NUMBER_VRS = frozenset({"IS", "SL", "SS", "SV", "UL", "US", "UV", "DS", "FD", "FL"})
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
# Raw values read here, by how pydicom's converters treat them (pydicom.values.converters).
STRUCT_FORMATS = {"US": "H", "UL": "L", "SS": "h", "SL": "l", "FL": "f", "FD": "d", "SV": "q", "UV": "Q"}
SPLIT_RSTRIP_ALL_VRS = frozenset({"AS", "CS", "DA", "DT", "TM", "UI"})  # convert_string, convert_UI
SPLIT_RSTRIP_EACH_VRS = frozenset({"LO", "SH", "UC"})  # convert_text
SINGLE_TEXT_VRS = frozenset({"LT", "ST", "UT"})  # convert_single_string
# Numbers as text: only the plain forms, which pydicom's IS and DSfloat parse exactly as int() and float();
# anything else (IS "1.0", inf, nan, underscores, blanks among values) is pydicom's to judge.
NUMBER_TEXT = {
    "IS": re.compile(r"\s*[+-]?[0-9]+\s*"),
    "DS": re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*"),
}
RAW_VRS = frozenset(
    {*SPLIT_RSTRIP_ALL_VRS, *SPLIT_RSTRIP_EACH_VRS, *SINGLE_TEXT_VRS, "AE", *STRUCT_FORMATS, *NUMBER_TEXT}
)


def header_json(ds: Dataset, bulk_bytes: int) -> tuple[dict[str, Any], list[str]]:
    """The JSON model of ``ds`` without binary elements over ``bulk_bytes``, and their keywords (sorted).

    Raw elements of other VRs are converted in ``ds`` as they are read (as any pydicom access does); nothing
    is removed.
    """
    dropped: set[str] = set()
    return _dataset(ds, bulk_bytes, dropped), sorted(dropped)


def _dataset(ds: Dataset, bulk_bytes: int, dropped: set[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    elements = ds._dict
    for tag in list(elements):  # insertion order, as Dataset.keys() gives it to pydicom's writer
        elem = elements[tag]
        if isinstance(elem, RawDataElement):
            plain = _raw_element(elem)
            if plain is not None:
                out[f"{tag:08X}"] = plain
                continue
            elem = ds[tag]  # converts (charset, ambiguous VRs, deferred reads) and stores the result
        vr = elem.VR
        value = elem.value
        if vr in BULK_VRS and value is not None and len(value) > bulk_bytes:
            dropped.add(elem.keyword or str(elem.tag))
            continue
        if vr == "SQ":
            out[f"{tag:08X}"] = {"vr": vr, "Value": [_dataset(item, bulk_bytes, dropped) for item in value]}
        else:
            out[f"{tag:08X}"] = _element(elem, vr, value)
    return out


def _raw_element(raw: RawDataElement) -> dict[str, Any] | None:
    """The JSON of a raw element of a plain VR, or None to leave it to pydicom."""
    vr = raw.VR
    if vr is None:  # implicit VR: the dictionary's, as pydicom would use (unknown and private: pydicom)
        if raw.tag >> 16 & 1:
            return None
        try:
            vr = dictionary_VR(raw.tag)
        except KeyError:
            return None
    values = _raw_values(raw.value, vr, raw.is_little_endian)
    if values is None:
        return None
    out: dict[str, Any] = {"vr": vr}
    if values:
        out["Value"] = convert_to_python_number(values, vr) if vr in NUMBER_VRS else values
    return out


def _raw_values(data: bytes | None, vr: str, little_endian: bool) -> list[Any] | None:
    """The values pydicom would convert ``data`` to (as a list; empty: no value), or None if not plain."""
    if data is None or vr not in RAW_VRS:  # a deferred read, or a VR left to pydicom
        return None
    if not data:
        return []
    if vr in STRUCT_FORMATS:
        fmt = STRUCT_FORMATS[vr]
        count, rest = divmod(len(data), struct.calcsize("<" + fmt))  # standard sizes, not native
        if rest:
            return None
        return list(struct.unpack(f"{'<' if little_endian else '>'}{count}{fmt}", data))
    if _pydicom_text_options() or not data.isascii() or b"\x1b" in data:
        return None  # non-default conversions, or text whose decoding depends on the character set
    text = data.decode("ascii")
    if vr in NUMBER_TEXT:
        return _number_text(text, vr)
    return _text_values(text, vr)


def _text_values(text: str, vr: str) -> list[Any]:
    """The values of a plain ASCII text element, split and stripped as pydicom does for its VR."""
    if vr in SPLIT_RSTRIP_ALL_VRS:
        items = text.rstrip(" \x00").split("\\")
    elif vr in SPLIT_RSTRIP_EACH_VRS:
        items = [item.rstrip("\0 ") for item in text.split("\\")]
    elif vr in SINGLE_TEXT_VRS:
        items = [text.rstrip("\0 ")]
    else:  # AE: leading spaces are not significant either
        items = [item.strip() for item in text.split("\\")]
    if len(items) == 1:  # one value: an empty one is no value (VM 0); among several, empty ones count
        return items if items[0] else []
    return items


def _pydicom_text_options() -> bool:
    """Whether pydicom is configured to convert text differently from its defaults (or to raise)."""
    return bool(
        config.datetime_conversion
        or config.use_DS_numpy
        or config.use_IS_numpy
        or config.use_DS_decimal
        or config.settings.reading_validation_mode == config.RAISE
    )


def _number_text(text: str, vr: str) -> list[Any] | None:
    """IS/DS values as pydicom parses them (convert_IS_string / convert_DS_string), or None if not plain."""
    items = (text.strip() if vr == "DS" else text).rstrip(" \x00").split("\\")
    if len(items) == 1 and not items[0]:
        return []
    pattern = NUMBER_TEXT[vr]
    if not all(pattern.fullmatch(item) for item in items):
        return None
    return [int(item) for item in items] if vr == "IS" else [float(item) for item in items]


def _values(value: object) -> list[Any] | None:
    """The values of an element as a list (empty: no values), or None for a value type left to pydicom."""
    if value is None:
        return []
    if isinstance(value, str | bytes | PersonName):
        return [value] if value else []
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    if isinstance(value, int | float):
        return [value]
    return None


def _element(elem: DataElement, vr: str, value: object) -> dict[str, Any]:
    values = _values(value)
    if values is None or not (vr in TEXT_VRS or vr in NUMBER_VRS or vr in INLINE_BINARY_VRS or vr == "PN"):
        return elem.to_json_dict(None, 0)
    out: dict[str, Any] = {"vr": vr}
    if not values:
        return out
    if vr in INLINE_BINARY_VRS:
        if not isinstance(value, bytes):
            return elem.to_json_dict(None, 0)
        # JSON is exempt from padding to even length (DICOM CP 1920), as in pydicom.
        out["InlineBinary"] = base64.b64encode(value).decode("utf-8")
    elif vr == "PN":
        out["Value"] = [_person_name(v) for v in values]
    elif vr in NUMBER_VRS:
        out["Value"] = convert_to_python_number(values, vr)
    else:
        out["Value"] = values
    return out


def _person_name(value: PersonName) -> dict[str, str]:
    components = value.components
    name = {"Alphabetic": components[0]}
    if len(components) > 1:
        name["Ideographic"] = components[1]
    if len(components) > 2:
        name["Phonetic"] = components[2]
    return name
