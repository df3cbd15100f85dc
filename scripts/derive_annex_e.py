"""Derive the PS3.15 Annex E attribute actions table (Table E.1-1) as CSV for ``cxrpriv.ingest.deid``.

The table is normative DICOM text; this script reads it from the reStructuredText conversion of PS3.15 in
https://github.com/chsasank/dicom_standard (``source/part15/chapter_E.rst``, an edition of 2019-2020),
whose grid table keeps every option column, and writes ``src/cxrpriv/ingest/data/annex_e.csv``: one row per
attribute with the Basic Profile action and each option's action (empty where the option does not change
it), and the row's source.

Attributes added to the table since that edition are taken, with their Basic Profile action only, from the
2024b tag lists of KitwareMedical/dicom-anonymizer (BSD-3-Clause,
``dicomanonymizer/dicom_anonymization_databases/dicomfields_2024b.py``), which carry no option columns.
For their dates and times the option actions follow the pattern every date and time of the older table
has: K under Retain Longitudinal Temporal Information with Full Dates, C with Modified Dates; their UIDs
are kept under Retain UIDs, as every UID of the older table is.

    python scripts/derive_annex_e.py chapter_E.rst dicomfields_2024b.py > src/cxrpriv/ingest/data/annex_e.csv
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

from pydicom.datadict import dictionary_VR, keyword_for_tag

COLUMNS = (
    "name",
    "tag",
    "retired",
    "in_std_iod",
    "basic",
    "retain_safe_private",
    "retain_uids",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_patient_characteristics",
    "retain_long_full_dates",
    "retain_long_modified_dates",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
    "source",
)
KITWARE_LISTS = {
    "D_TAGS": "D",
    "Z_TAGS": "Z",
    "X_TAGS": "X",
    "U_TAGS": "U",
    "Z_D_TAGS": "Z/D",
    "X_Z_TAGS": "X/Z",
    "X_D_TAGS": "X/D",
    "X_Z_D_TAGS": "X/Z/D",
    "X_Z_U_STAR_TAGS": "X/Z/U*",
}
TABLE_TITLE = ".. table:: Application Level Confidentiality Profile Attributes"
TAG = re.compile(r"^\(([0-9A-Fa-fx]{4}),([0-9A-Fa-fx]{4})\)$")


def _rows(lines: list[str]) -> list[list[str]]:
    """Cells of each grid-table row: the row's physical lines joined column by column."""
    rows: list[list[str]] = []
    current: list[list[str]] = []
    for line in lines:
        text = line.strip()
        if text.startswith("+"):
            if current:
                rows.append(["".join(parts).strip() for parts in zip(*current, strict=True)])
            current = []
        elif text.startswith("|"):
            current.append([cell.strip() for cell in text.strip("|").split("|")])
    return rows


def parse(text: str) -> list[dict[str, str]]:
    start = text.index(TABLE_TITLE)
    body = text[text.index("+===", start) :]
    end = body.find("\n\n")
    rows = _rows(body[: end if end > 0 else None].splitlines()[1:])
    out = []
    for cells in rows:
        if len(cells) != len(COLUMNS) - 1:
            raise ValueError(f"unexpected row with {len(cells)} cells: {cells}")
        row = dict(zip(COLUMNS[:-1], cells, strict=True))
        row["source"] = "PS3.15 E.1-1 (2019-2020 edition)"
        if "gggg" in row["tag"]:
            continue  # the private-attributes row: handled by removing every private element
        match = TAG.match(row["tag"])
        if not match:
            raise ValueError(f"unexpected tag cell {row['tag']!r}")
        row["tag"] = (match.group(1) + match.group(2)).upper().replace("X", "x")
        # Cells wrap words at arbitrary column breaks, so the joined name loses its spaces; the keyword
        # from pydicom's dictionary is the readable label where there is one.
        keyword = "" if "x" in row["tag"] else keyword_for_tag(int(row["tag"], 16))
        row["name"] = keyword or re.sub(r"[^A-Za-z0-9']", "", row["name"])
        out.append(row)
    return out


def newer_rows(text: str, known: set[str]) -> list[dict[str, str]]:
    """Rows for tags of the Kitware 2024b lists that the older table lacks (Basic Profile action only)."""
    rows = []
    for match in re.finditer(r"^([A-Z_]+) = \[(.*?)^\]", text, re.S | re.M):
        action = KITWARE_LISTS.get(match.group(1))
        if action is None:
            continue
        for group, element in re.findall(r"\(0x([0-9A-Fa-f]{4}), 0x([0-9A-Fa-f]{4})\)", match.group(2)):
            tag = (group + element).upper()
            if tag in known:
                continue
            known.add(tag)
            row = dict.fromkeys(COLUMNS, "")
            number = int(tag, 16)
            row.update(name=keyword_for_tag(number) or tag, tag=tag, basic=action)
            row["source"] = "PS3.15 E.1-1 2024b basic action (KitwareMedical/dicom-anonymizer lists)"
            try:
                vr = dictionary_VR(number)
            except KeyError:
                vr = ""
            if vr in ("DA", "DT", "TM"):
                row.update(retain_long_full_dates="K", retain_long_modified_dates="C")
            if action == "U":
                row["retain_uids"] = "K"
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rows = parse(Path(argv[0]).read_text())
    if len(argv) > 1:
        rows += newer_rows(Path(argv[1]).read_text(), {r["tag"] for r in rows})
    writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(sorted(rows, key=lambda r: r["tag"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
