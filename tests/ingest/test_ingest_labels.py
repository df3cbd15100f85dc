"""The ChestX-ray14 labels table: parsing, lookup and errors that do not echo patient data."""

from __future__ import annotations

import pytest

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.ingest.labels import LabelsError, LabelsTable, parse_findings

HEADER = "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position\n"


def test_parse_findings():
    assert parse_findings("No Finding") == (0,) * 14
    labels = parse_findings("Effusion|Hernia")
    assert (
        labels[FINDINGS.index("Effusion")] == 1 and labels[FINDINGS.index("Hernia")] == 1 and sum(labels) == 2
    )


def test_lookup_by_relative_path_then_file_name():
    table = LabelsTable.from_csv(
        (HEADER + "a.dcm,Mass,0,77,057,F,PA\nsub/b.dcm,No Finding,0,78,411,M,AP\n").encode(), "t.csv"
    )
    row = table.lookup("xx/a.dcm")
    assert row is not None and row.labels[FINDINGS.index("Mass")] == 1
    assert (row.patient_id, row.age, row.sex, row.view) == ("77", 57, "F", "PA")
    other = table.lookup("sub/b.dcm")
    assert other is not None and other.age is None, (
        "an impossible age (411, as in ChestX-ray14) becomes unknown"
    )
    assert table.lookup("c.dcm") is None


def test_errors_name_the_table_and_row_not_the_patient():
    with pytest.raises(LabelsError, match=r"t.csv: row 2: unknown findings \['Pneumoniaa'\]") as caught:
        LabelsTable.from_csv((HEADER + "a.dcm,Pneumoniaa,0,99887766,40,F,PA\n").encode(), "t.csv")
    assert "99887766" not in str(caught.value)
    with pytest.raises(LabelsError, match="missing columns"):
        LabelsTable.from_csv(b"Image,Labels\n", "t.csv")
    with pytest.raises(LabelsError, match="duplicated"):
        LabelsTable.from_csv((HEADER + "a.dcm,Mass,0,1,1,F,PA\na.dcm,Mass,0,1,1,F,PA\n").encode(), "t.csv")
