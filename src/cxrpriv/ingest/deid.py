"""Header de-identification: PS3.15 Annex E Basic Application Level Confidentiality Profile with options,
under one of two policies for what the table does not list.

Policies (``preprocess.deid_policy``):

- ``allowlist`` (default): only the attributes of :mod:`cxrpriv.ingest.allowlist` (what a CR/DX image needs
  to be read and used) and those an enabled option explicitly retains (its action K or C where the Basic
  Profile's is not) stay; everything else goes, at any depth: unknown, unassigned and private attributes,
  free text the table does not list, and every sequence not allowlisted (allowlisted sequences keep only
  their allowlisted item attributes, recursively; a Code Meaning only when it is the registered one). The
  table's actions still apply to what stays (the floor: X removes an allowlisted attribute, Z empties it,
  U remaps it).
- ``annex_e``: the table alone decides, and every attribute it does not list is kept (subject to the VR
  rules below). Anything the table does not list (vendor free text, code meanings in kept sequences,
  explanations, newer or unassigned attributes) is released as it is.

The per-attribute actions are data: ``data/annex_e.csv`` is Table E.1-1 (derived by
``scripts/derive_annex_e.py``), with the Basic Profile action and each option's override. An enabled
option's action replaces the Basic Profile's. Compound actions are resolved for CR/DX images as
X/Z, Z/D, X/Z/D -> Z (the attribute stays, empty: Type 2 conformance without content); X/D -> X;
X/Z/U* -> X (references to other instances are not released).

Replacement values are keyed (HMAC-SHA256 under the de-identification key, see :mod:`cxrpriv.ingest.keys`):

- Patient ID and Patient's Name become the patient's pseudonym ``P`` + 16 hex digits.
- Each UID becomes ``2.25.<128-bit integer>`` from its HMAC: consistent across files, runs and batches under
  one key, so references between instances survive; unrelated to the original without the key.
- With Retain Longitudinal Temporal Information with Modified Dates, every date moves into the past by the
  patient's own number of days (1..max_date_shift_days, from the HMAC of the patient ID): intervals between
  one patient's studies survive, calendar dates do not. Times are kept.

Beyond the table (PS3.15 E.1.1 note 4 advises handling attributes by VR, since the standard grows):
private elements are removed at any depth; overlay groups (60xx) and curves (50xx) are removed (they can
carry text); any other DA/DT is shifted (or emptied without the dates option), any other PN is emptied, and
any other UID that is not a well-known DICOM UID (SOP classes, transfer syntaxes, coding schemes) is
remapped. Sequences not removed are de-identified recursively at any depth.

Then the PHI tripwire (both policies): the dataset's own identifying values (patient name and each of its
components of 3 or more characters, patient IDs, birth date, accession number, institution, physicians' and
operators' names, ...; see ``TRIPWIRE_KEYWORDS``), read before anything was changed, are looked for in every
kept text value at any depth, ignoring case and every character that is not a letter or digit (values under
5 characters only as whole words, numbers value by value); a value in which one appears is blanked, and the
count of blanked values is returned (never the values). Finally
Patient Identity Removed, De-identification Method and its Code Sequence record the profile and options,
and Longitudinal Temporal Information Modified says whether dates were shifted.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag
from pydicom.uid import UID, UID_dictionary

from cxrpriv.ingest import allowlist
from cxrpriv.ingest.config import DEID_OPTIONS, DEID_POLICIES
from cxrpriv.ingest.keys import DeidKey

ANNEX_E_CSV = Path(__file__).parent / "data" / "annex_e.csv"
PROFILE_NAME = "cxrpriv PS3.15 Annex E Basic Profile"
# CID 7050 De-identification Method codes (DCM).
METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_pixel_data": ("113101", "Clean Pixel Data Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_long_modified_dates": (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}
COMPOUND = {"X/Z": "Z", "Z/D": "Z", "X/Z/D": "Z", "X/D": "X", "X/Z/U*": "X", "X/Z/U\\*": "X"}
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT", "AS"})
BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV"})
# VRs whose emptied element does not depend on anything in the original value (not SQ, not ambiguous).
EMPTIED_UNCONVERTED_VRS = (TEXT_VRS | BINARY_VRS | NUMBER_VRS | {"DA", "DT", "TM", "UI", "IS", "DS"}) - {"UN"}
# Where identifying words hide inside free text (used by the "C" action on descriptors).
IDENTIFYING_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StudyID",
)
PSEUDONYM = re.compile(r"^P[0-9a-f]{16}$")
# The PHI tripwire: the dataset's own identifying values, looked for in every kept text value.
TRIPWIRE_NAME_KEYWORDS = (  # person names: each component on its own
    "PatientName",
    "OtherPatientNames",
    "PatientBirthName",
    "PatientMotherBirthName",
    "ResponsiblePerson",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord",
    "RequestingPhysician",
    "OperatorsName",
)
TRIPWIRE_VALUE_KEYWORDS = (  # identifiers, dates and places: each whole value
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "AccessionNumber",
    "StudyID",
    "MedicalRecordLocator",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "InstitutionName",
    "InstitutionAddress",
)
TRIPWIRE_KEYWORDS = TRIPWIRE_NAME_KEYWORDS + TRIPWIRE_VALUE_KEYWORDS
# Values an option keeps on purpose are not tripwires under that option.
TRIPWIRE_EXEMPT = {
    "InstitutionName": ("retain_institution_identity",),
    "InstitutionAddress": ("retain_institution_identity",),
}
# Shorter values are ignored (initials, titles, "1" as a Study ID would blank everything); numbers need
# more digits, since short numbers appear in every technique value.
TRIPWIRE_MIN_CHARS = 3
TRIPWIRE_MIN_DIGITS = 5
# Values this long are found anywhere in a kept text with its separators removed ("O.K.A.F.O.R",
# "403-382-83"); shorter ones only as a whole word ("MARY" is not blanked out of "PRIMARY", nor "LIN" out of
# "LINEAR").
TRIPWIRE_SUBSTRING_CHARS = 5
# Numbers written as text: their values are words on their own ("1800.0" is not the ID 18000).
TRIPWIRE_NUMERIC_VRS = frozenset(("AS", "DA", "DS", "DT", "IS", "TM"))
# Kept values that are checked: every string VR except UI (UIDs are remapped or registered ones).
TRIPWIRE_VRS = frozenset(
    ("AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT")
)
_NOT_ALNUM = re.compile(r"[\W_]+")
_NAME_SEPARATORS = re.compile(r"[\^=\s,]+")
_TRIPWIRE_TAGS = {k: (allowlist.keyword_tag(k), k in TRIPWIRE_NAME_KEYWORDS) for k in TRIPWIRE_KEYWORDS}
_OTHER_IDS = allowlist.keyword_tag("OtherPatientIDsSequence")


class DeidError(ValueError):
    """A dataset that cannot be de-identified (e.g. no Patient ID to key its pseudonym on)."""


@dataclass(frozen=True)
class AnnexERow:
    tag: str  # 8 hex digits, 'x' for repeating-group digits
    name: str
    basic: str
    options: dict[str, str]


@functools.cache
def annex_e_table() -> tuple[AnnexERow, ...]:
    with ANNEX_E_CSV.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return tuple(
        AnnexERow(
            r["tag"],
            r["name"],
            r["basic"],
            {o: r[o] for o in (*DEID_OPTIONS, "retain_long_full_dates") if r[o]},
        )
        for r in rows
    )


def retained_tags(options: Iterable[str]) -> frozenset[int]:
    """Tags an enabled option explicitly retains: its action is K or C where the Basic Profile's is not."""
    enabled = [o for o in DEID_OPTIONS if o in set(options)]
    retained = set()
    for row in annex_e_table():
        if "x" in row.tag:
            continue  # repeating groups (overlays, curves) are never retained
        basic = COMPOUND.get(row.basic, row.basic)
        action = basic
        for option in enabled:
            action = row.options.get(option, action)
        action = COMPOUND.get(action, action)
        if action in ("K", "C") and action != basic:
            retained.add(int(row.tag, 16))
    return frozenset(retained)


def resolve_actions(options: Iterable[str]) -> tuple[dict[int, str], list[tuple[int, int, str]]]:
    """Per-tag action codes (X, Z, D, K, C, U) under the options; repeating groups as (mask, value, code)."""
    enabled = [o for o in DEID_OPTIONS if o in set(options)]
    exact: dict[int, str] = {}
    masked: list[tuple[int, int, str]] = []
    for row in annex_e_table():
        action = row.basic
        for option in enabled:
            action = row.options.get(option, action)
        action = COMPOUND.get(action, action)
        if "x" in row.tag:
            mask = int("".join("0" if c == "x" else "F" for c in row.tag), 16)
            masked.append((mask, int(row.tag.replace("x", "0"), 16), action))
        else:
            exact[int(row.tag, 16)] = action
    return exact, masked


@dataclass(frozen=True)
class DeidResult:
    dataset: Dataset
    patient_pseudonym: str
    date_shift_days: int | None
    phi_blanked: int = 0  # kept text values blanked by the PHI tripwire


def parse_dicom_date(text: str) -> dt.date | None:
    """The date of a DA (or the date part of a DT) value, or None if it is not a valid YYYYMMDD."""
    head = text.strip()[:8]
    try:
        if len(head) == 8 and head.isascii() and head.isdigit():
            # What strptime("%Y%m%d") accepts of 8 digits, ~20x faster (dates are parsed in every header).
            return dt.date(int(head[:4]), int(head[4:6]), int(head[6:]))
        return dt.datetime.strptime(head, "%Y%m%d").date()
    except ValueError:
        return None


def patient_age_years(ds: Dataset) -> int | None:
    """Age from Patient's Age ('057Y', '006M', '010W', '003D'), else from birth and study dates."""
    age = str(ds.get("PatientAge", "") or "").strip().upper()
    match = re.fullmatch(r"(\d{1,3})([YMWD])", age)
    if match:
        value, unit = int(match.group(1)), match.group(2)
        return {"Y": value, "M": value // 12, "W": value // 52, "D": value // 365}[unit]
    birth = parse_dicom_date(str(ds.get("PatientBirthDate", "") or ""))
    study = parse_dicom_date(str(ds.get("StudyDate", "") or ds.get("ContentDate", "") or ""))
    if birth and study and study >= birth:
        return int((study - birth).days // 365.25)
    return None


class Deidentifier:
    """Applies the profile to datasets in place; one instance serves a whole run (it keeps no state)."""

    def __init__(
        self, key: DeidKey, options: Sequence[str], max_date_shift_days: int, policy: str = "allowlist"
    ) -> None:
        if policy not in DEID_POLICIES:
            raise ValueError(f"unknown de-identification policy {policy!r} (known: {DEID_POLICIES})")
        self.key = key
        self.options = tuple(o for o in DEID_OPTIONS if o in set(options))
        self.max_date_shift_days = max_date_shift_days
        self.policy = policy
        self.exact, self.masked = resolve_actions(self.options)
        self.retained = retained_tags(self.options)
        self.shift_dates = "retain_long_modified_dates" in self.options
        # What the tripwire must not blank: values an enabled option keeps on purpose.
        self.tripwire_keywords = tuple(
            k for k in TRIPWIRE_KEYWORDS if not (set(TRIPWIRE_EXEMPT.get(k, ())) & set(self.options))
        )

    # ----------------------------------------------------------------- keyed derivations

    def pseudonym(self, patient_id: str) -> str:
        return "P" + self.key.digest("patient", patient_id.strip()).hex()[:16]

    def date_shift_days(self, patient_id: str) -> int:
        value = int.from_bytes(self.key.digest("date-shift", patient_id.strip())[:8], "big")
        return 1 + value % self.max_date_shift_days

    def uid(self, uid: str) -> str:
        return "2.25." + str(int.from_bytes(self.key.digest("uid", uid.strip())[:16], "big"))

    def image_id(self, unique: str) -> str:
        return "I" + self.key.digest("image", unique).hex()[:16]

    # ----------------------------------------------------------------- the profile

    def apply(self, ds: Dataset, clean_pixel_data: bool = False) -> DeidResult:
        patient_id = str(ds.get("PatientID", "") or "").strip()
        if not patient_id:
            raise DeidError("no Patient ID: cannot assign a pseudonym (patient-wise splits need one)")
        pseudonym = self.pseudonym(patient_id)
        shift = self.date_shift_days(patient_id) if self.shift_dates else None
        age = patient_age_years(ds)
        tokens = _identifying_tokens(ds) if "clean_descriptors" in self.options else ()
        tripwire = tripwire_values(ds, self.tripwire_keywords)
        top = allowlist.TOP_LEVEL if self.policy == "allowlist" else None
        self._clean(ds, shift, tokens, top)
        blanked = blank_identifying_values(ds, tripwire)
        if hasattr(ds, "file_meta") and "MediaStorageSOPInstanceUID" in ds.file_meta:
            remapped = self.uid(str(ds.file_meta.MediaStorageSOPInstanceUID))
            ds.file_meta.MediaStorageSOPInstanceUID = UID(remapped)
        ds.PatientID = pseudonym
        ds.PatientName = pseudonym
        if "retain_patient_characteristics" in self.options and age is not None and "PatientAge" not in ds:
            ds.PatientAge = f"{min(age, 999):03d}Y"
        self._record_method(ds, clean_pixel_data)
        return DeidResult(ds, pseudonym, shift, blanked)

    def _action(self, tag: int) -> str | None:
        if tag in self.exact:
            return self.exact[tag]
        for mask, value, action in self.masked:
            if tag & mask == value:
                return action
        return None

    def _clean(
        self, ds: Dataset, shift: int | None, tokens: Sequence[str], allowed: frozenset[int] | None
    ) -> None:
        """De-identify one dataset or item; ``allowed``: the allowlisted tags here (None: policy annex_e)."""
        # Decide on the tag and VR of the raw element first: converting every element's value costs more
        # than the rest of the profile, and most elements (pixel module, acquisition) are kept untouched.
        for tag in list(ds._dict):
            if self._removed_outright(tag, allowed):
                del ds[tag]
                continue
            vr = _vr(ds, tag)
            action = self._action(int(tag))
            if action is None:
                action = self._default_action(vr, ds, tag)
            if action == "K" and vr != "SQ":
                continue
            if action == "C" and vr == "TM":
                continue  # times of day are kept (whole-day shifts): no need to convert the value
            if action == "X":
                del ds[tag]
                continue
            if action == "Z" and vr in EMPTIED_UNCONVERTED_VRS:
                # An empty element of the same VR: what converting and then emptying the value gives,
                # without decoding a value that is thrown away.
                ds[tag] = DataElement(tag, vr, None)
                continue
            self._apply(ds, ds[tag], action, shift=shift, tokens=tokens, allowed=allowed)
            if allowed is not None and tag in ds and vr == "SQ" and not ds[tag].value:
                del ds[tag]  # nothing allowlisted was left in its items
        if allowed is not None and allowlist.CODE_MEANING in ds:
            _drop_unregistered_meaning(ds)

    def _removed_outright(self, tag: int, allowed: frozenset[int] | None) -> bool:
        """Private tags, group lengths and overlays; under an allowlist, every tag it does not name."""
        group = tag >> 16
        if group & 1 or tag & 0xFFFF == 0 or (0x6000 <= group <= 0x60FF):
            return True
        return allowed is not None and tag not in allowed and tag not in self.retained

    def _default_action(self, vr: str, ds: Dataset, tag: int) -> str:
        if vr in ("DA", "DT"):
            return "C" if self.shift_dates else "Z"
        if vr == "TM" and not self.shift_dates:
            return "Z"
        if vr == "PN":
            return "Z"
        if vr == "UI":
            return "K" if _well_known_uids(ds[tag].value) else "U"
        return "K"

    def _apply(
        self,
        ds: Dataset,
        elem: DataElement,
        action: str,
        *,
        shift: int | None,
        tokens: Sequence[str],
        allowed: frozenset[int] | None = None,
    ) -> None:
        vr = elem.VR
        # What the items of a kept sequence may hold: the sequence's own allowlist (the code of a sequence
        # an option retains), or everything the table allows (policy annex_e).
        inner = None if allowed is None else allowlist.ITEMS.get(int(elem.tag), allowlist.RETAINED_ITEM)
        if action == "X":
            del ds[elem.tag]
        elif action == "Z":
            elem.value = DicomSequence([]) if vr == "SQ" else None
        elif action == "D":
            elem.value = _dummy(vr)
            if vr == "UI":
                elem.value = self.uid(f"dummy:{elem.tag}")
        elif action == "U":
            if vr == "SQ":  # a sequence of references: remap what it holds
                self._recurse(elem, shift, tokens, inner)
            elif elem.value:
                values = elem.value if elem.VM > 1 else [elem.value]
                mapped = [self.uid(str(v)) for v in values]
                elem.value = mapped if elem.VM > 1 else mapped[0]
        elif action == "C":
            self._clean_value(ds, elem, shift, tokens, inner)
        elif vr == "SQ":  # K on a sequence keeps it but de-identifies its items
            self._recurse(elem, shift, tokens, inner)

    def _recurse(
        self, elem: DataElement, shift: int | None, tokens: Sequence[str], allowed: frozenset[int] | None
    ) -> None:
        for item in elem.value or []:
            self._clean(item, shift, tokens, allowed)
        if allowed is not None and elem.value and not all(len(item) for item in elem.value):
            elem.value = DicomSequence([item for item in elem.value if len(item)])

    def _clean_value(
        self,
        ds: Dataset,
        elem: DataElement,
        shift: int | None,
        tokens: Sequence[str],
        allowed: frozenset[int] | None = None,
    ) -> None:
        vr = elem.VR
        if vr == "SQ":
            self._recurse(elem, shift, tokens, allowed)
        elif vr in ("DA", "DT"):
            if shift is None:
                elem.value = None
            else:
                elem.value = _shift_dates(elem.value, vr, shift)
        elif vr == "TM":
            pass  # whole-day shifts leave times of day as they were
        elif vr in TEXT_VRS and tokens:
            elem.value = _scrub(elem.value, tokens)
        elif vr in TEXT_VRS or vr in BINARY_VRS:
            # Nothing known to clean this with: fall back to the Basic Profile's stance (no content).
            elem.value = None

    def _record_method(self, ds: Dataset, clean_pixel_data: bool) -> None:
        ds.PatientIdentityRemoved = "YES"
        names = ["basic", *self.options] + (["clean_pixel_data"] if clean_pixel_data else [])
        ds.DeidentificationMethod = [PROFILE_NAME, *(METHOD_CODES[n][1][:64] for n in names[1:])]
        ds.DeidentificationMethodCodeSequence = DicomSequence([_method_code(name) for name in names])
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if self.shift_dates else "REMOVED"


def _method_code(name: str) -> Dataset:
    """A CID 7050 code item (elements added by tag: keyword lookups cost more than the item)."""
    code, meaning = METHOD_CODES[name]
    item = Dataset()
    item.add_new(0x00080100, "SH", code)  # Code Value
    item.add_new(0x00080102, "SH", "DCM")  # Coding Scheme Designator
    item.add_new(0x00080104, "LO", meaning)  # Code Meaning
    return item


def _vr(ds: Dataset, tag: BaseTag) -> str:
    """An element's VR without converting its value (implicit-VR files carry none: use the dictionary)."""
    elem = ds._dict[tag]
    if elem.VR:
        return str(elem.VR)
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _well_known_uids(value: object) -> bool:
    values = value if isinstance(value, list | tuple | MultiValue) else [value]
    return all(str(v) in UID_dictionary for v in values)


def _dummy(vr: str) -> object:
    if vr == "SQ":
        return DicomSequence([])
    if vr == "DA":
        return "19000101"
    if vr == "TM":
        return "000000"
    if vr == "DT":
        return "19000101000000"
    if vr == "AS":
        return "000Y"
    if vr in ("IS", "DS"):
        return "0"
    if vr in NUMBER_VRS:
        return 0
    if vr in BINARY_VRS:
        return b""
    return "ANONYMIZED"


def _shift_one(text: str, vr: str, shift: int) -> str | None:
    date = parse_dicom_date(text)
    if date is None:
        return None  # an unparseable date is not kept: it might still be the real one
    moved = (date - dt.timedelta(days=shift)).strftime("%Y%m%d")
    return moved + (text.strip()[8:] if vr == "DT" else "")


def _shift_dates(value: str | Iterable[object] | None, vr: str, shift: int) -> object:
    if not value:
        return value
    if isinstance(value, str):
        return _shift_one(value, vr, shift)
    moved = [_shift_one(str(v), vr, shift) for v in value]
    return None if any(m is None for m in moved) else moved


def _identifying_tokens(ds: Dataset) -> tuple[str, ...]:
    """Words of the dataset's own identifying values, longest first (what free text could repeat)."""
    words: set[str] = set()
    for keyword in IDENTIFYING_KEYWORDS:
        value = ds.get(keyword)
        if not value:
            continue
        values = value if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]
        for v in values:
            words.update(w for w in re.split(r"[\^\s,/]+", str(v)) if len(w) >= 3)
    return tuple(sorted(words, key=len, reverse=True))


def _scrub(value: str | Iterable[object] | None, tokens: Sequence[str]) -> object:
    if value is None or not tokens:
        return value
    pattern = re.compile("|".join(re.escape(t) for t in tokens), re.IGNORECASE)
    if isinstance(value, str):
        return pattern.sub("", value)
    return [pattern.sub("", str(v)) for v in value]


# --------------------------------------------------------------------------- the PHI tripwire


def _normalized(text: str) -> str:
    """Letters and digits only, casefolded: 'Okafor^Joseph', 'OKAFOR JOSEPH' and 'okafor-joseph' alike."""
    return _NOT_ALNUM.sub("", text).casefold()


def _values(value: object) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, list | tuple | MultiValue):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _long_enough(token: str) -> bool:
    return len(token) >= (TRIPWIRE_MIN_DIGITS if token.isdigit() else TRIPWIRE_MIN_CHARS)


def tripwire_values(ds: Dataset, keywords: Sequence[str] = TRIPWIRE_KEYWORDS) -> tuple[str, ...]:
    """The dataset's own identifying values, normalized (see ``_normalized``), longest first.

    Person names give each component (family, given, middle, prefix, suffix; each of its words) on its own;
    identifiers, dates and addresses their whole value. Read at the top level and in the Other Patient IDs
    Sequence, before de-identification.
    """
    found: set[str] = set()
    sources = [ds]
    if _OTHER_IDS in ds._dict:
        sources += list(ds[_OTHER_IDS].value or [])
    for source in sources:
        for keyword in keywords:
            tag, is_name = _TRIPWIRE_TAGS[keyword]
            if tag not in source._dict:
                continue
            for text in _texts(source, tag):
                if is_name:
                    found.update(_normalized(p) for p in _NAME_SEPARATORS.split(text))
                else:
                    found.add(_normalized(text))
    return tuple(sorted((t for t in found if _long_enough(t)), key=len, reverse=True))


def _texts(ds: Dataset, tag: BaseTag) -> list[str]:
    """An element's values as text, from the raw bytes when they are ASCII (no conversion), else converted."""
    elem = ds._dict[tag]
    raw = elem.value
    # A deferred read (over 1 MiB; only a raw element has a length): read it now.
    if raw is None and isinstance(elem, RawDataElement) and elem.length:
        raw = ds[tag].value
    if isinstance(raw, bytes) and raw.isascii():
        return raw.decode("ascii").split("\\")
    if isinstance(raw, bytes):
        return _values(ds[tag].value)  # the character set decides: convert
    return _values(raw)


def blank_identifying_values(ds: Dataset, needles: Sequence[str]) -> int:
    """Blank every kept text value (at any depth) containing one of ``needles``; returns how many."""
    if not needles:
        return 0
    blanked = 0
    for tag in list(ds._dict):
        vr = _vr(ds, tag)
        if vr == "SQ":
            for item in ds[tag].value or []:
                blanked += blank_identifying_values(item, needles)
            continue
        if vr not in TRIPWIRE_VRS:
            continue
        # Raw ASCII values are read as they are: the JSON writer keeps its fast path for them.
        try:
            found = _contains(_texts(ds, tag), needles, numeric=vr in TRIPWIRE_NUMERIC_VRS)
        except Exception:  # a value that cannot be read cannot be checked: it is not released
            found = True
        if found:
            ds[tag] = DataElement(tag, vr, None)
            blanked += 1
    return blanked


def _contains(values: list[str], needles: Sequence[str], numeric: bool) -> bool:
    """Whether a needle is a word of the values, or (a long one) inside a word (numbers) or anywhere in the
    values with their separators removed (text)."""
    joined = _normalized("".join(values))
    candidates = [needle for needle in needles if needle in joined]  # every match is one of these
    if not candidates:
        return False
    words = {w.casefold() for v in values for w in _NOT_ALNUM.split(v) if w}
    texts = words if numeric else {joined}
    return any(
        needle in words or (len(needle) >= TRIPWIRE_SUBSTRING_CHARS and any(needle in t for t in texts))
        for needle in candidates
    )


def _drop_unregistered_meaning(ds: Dataset) -> None:
    """An allowlisted Code Meaning stays only as the registered meaning of its scheme and code value."""
    scheme, code, meaning = (
        "\\".join(_texts(ds, tag)) if tag in ds._dict else ""
        for tag in (allowlist.CODING_SCHEME, allowlist.CODE_VALUE, allowlist.CODE_MEANING)
    )
    if not allowlist.is_registered_meaning(scheme, code, meaning):
        del ds[allowlist.CODE_MEANING]
