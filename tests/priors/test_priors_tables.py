"""Readers of text-mined labels and of the three re-read layouts, on small hand-made tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.tables import (
    detect_layout,
    mined_labels_from_columns,
    read_mined_labels,
    read_reread_table,
)
from cxrpriv.priors.vocabulary import DEFAULT_VOCABULARY
from cxrpriv.synth.stats import FINDINGS

COL = {f: i for i, f in enumerate(FINDINGS)}


def test_chestxray14_labels_are_parsed_and_extensions_ignored(write_labels):
    path = write_labels(
        [
            ("a.png", "Cardiomegaly|Effusion"),
            ("b.png", "No Finding"),
            ("c.dcm", "Hernia"),
            ("a.png", "Effusion|Cardiomegaly"),
        ]
    )  # the same labels again: an exact duplicate
    mined = read_mined_labels(path)
    assert list(mined.image_ids) == ["a", "b", "c"] and mined.duplicates_dropped == 1
    assert np.flatnonzero(mined.values[0]).tolist() == [COL["Cardiomegaly"], COL["Effusion"]]
    assert mined.values[1].sum() == 0 and mined.values[2, COL["Hernia"]] == 1
    assert mined.rows_of(["c", "zzz", "a"]).tolist() == [2, -1, 0]
    assert len(mined.sha256) == 16


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (
            [("a.png", "Effusion"), ("a.png", "Hernia")],
            r"contradictory duplicate rows: 1 image_index .*\ba\b",
        ),
        ([("a.png", "Effusion|Covid")], r"unknown finding\(s\) in 'Finding Labels' \(rows\): \{'Covid': 1\}"),
        ([("a.png", "No Finding|Mass")], "say 'No Finding' together with a finding"),
        ([("a.png", "")], "empty 'Finding Labels'"),
        ([], "has no rows"),
    ],
)
def test_bad_labels_tables_are_errors_without_patient_ids(write_labels, rows, message):
    with pytest.raises(PriorsInputError, match=message) as caught:
        read_mined_labels(write_labels(rows))
    assert "labels table labels.csv" in str(caught.value)
    assert "99999123" not in str(caught.value)


def test_missing_labels_file_and_columns(tmp_path):
    with pytest.raises(PriorsInputError, match="file not found"):
        read_mined_labels(tmp_path / "nope.csv")
    (tmp_path / "x.csv").write_text("Image,Labels\na,b\n")
    with pytest.raises(PriorsInputError, match=r"missing column\(s\) \['Image Index', 'Finding Labels'\]"):
        read_mined_labels(tmp_path / "x.csv")


def test_a_parquet_manifest_with_finding_columns(tmp_path):
    frame = pd.DataFrame({"image_index": ["a", "b"], **{f: [0, 0] for f in FINDINGS}})
    frame.loc[1, "Edema"] = 1
    frame.to_parquet(tmp_path / "manifest.parquet")
    mined = read_mined_labels(tmp_path / "manifest.parquet")
    assert list(mined.image_ids) == ["a", "b"] and mined.values[1, COL["Edema"]] == 1
    frame["Edema"] = frame["Edema"].astype(bool)  # booleans are fine too
    assert mined_labels_from_columns(frame, "image_index", "m").values[1, COL["Edema"]] == 1
    frame["Hernia"] = [0, 2]
    with pytest.raises(PriorsInputError, match=r"\['Hernia'\] hold values other than 0/1"):
        mined_labels_from_columns(frame, "image_index", "m")
    with pytest.raises(PriorsInputError, match="missing column"):
        mined_labels_from_columns(frame.drop(columns="Mass"), "image_index", "m")


def test_reader_wide_table(write_wide):
    path = write_wide(
        [
            ("x.dcm", "R1", {"Effusion": 1}),
            ("x.dcm", "R2", {}),
            ("y.dcm", "R2", {"Mass": 1}),
            ("y.dcm", "R2", {"Mass": 1}),
        ]
    )  # exact duplicate
    table = read_reread_table(path, DEFAULT_VOCABULARY, "t1")
    assert table.layout == "reader_wide" and table.reader_ids == ("R1", "R2")
    assert list(table.image_ids) == ["x", "y"] and table.duplicates_dropped == 1
    assert [t.name for t in table.targets] == list(FINDINGS)
    assert table.readings[:, :, COL["Effusion"]].tolist() == [[1, 0], [-1, 0]]  # R1 did not read y
    assert table.readings[1, 1, COL["Mass"]] == 1
    assert table.readings_per_image().tolist() == [2, 1]


def test_reader_wide_contradictions_and_bad_values(write_wide, tmp_path):
    path = write_wide([("x.dcm", "R1", {"Effusion": 1}), ("x.dcm", "R1", {})])
    clash = r"contradictory duplicate rows: 1 image/reader key\(s\).*\bx\b"
    with pytest.raises(PriorsInputError, match=clash):
        read_reread_table(path, DEFAULT_VOCABULARY, "t1")
    frame = pd.read_csv(path).iloc[:1]
    frame.loc[0, "Hernia"] = 7
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(PriorsInputError, match=r"column 'Hernia' has values \['7'\]"):
        read_reread_table(tmp_path / "bad.csv", DEFAULT_VOCABULARY, "t1")


def _long(tmp_path, rows):
    path = tmp_path / "long.csv"
    columns = ["image_id", "class_name", "class_id", "rad_id", "x_min"]
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)
    return path


def test_reader_long_table_collapses_boxes_to_one_reading_per_reader(tmp_path):
    path = _long(
        tmp_path,
        [
            ("i1", "No finding", 14, "R1", None),
            ("i1", "Cardiomegaly", 3, "R2", 10.0),
            ("i1", "Cardiomegaly", 3, "R2", 50.0),  # two boxes
            ("i1", "Aortic enlargement", 0, "R2", 5.0),
            ("i1", "Nodule/Mass", 8, "R3", 7.0),
            ("i2", "Nodule/Mass", 8, "R1", 1.0),
            ("i2", "No finding", 14, "R3", None),
        ],
    )
    table = read_reread_table(path, DEFAULT_VOCABULARY, "v")
    assert table.layout == "reader_long" and table.reader_ids == ("R1", "R2", "R3")
    assert [t.name for t in table.targets] == ["Cardiomegaly", "Nodule or mass"]
    assert table.unmapped_labels == ("Aortic enlargement",)
    # image i1: R1 nothing, R2 cardiomegaly, R3 nodule/mass;
    # image i2: R1 nodule/mass, R2 did not read it, R3 nothing
    assert table.readings.tolist() == [[[0, 0], [1, 0], [0, 1]], [[0, 1], [-1, -1], [0, 0]]]


def test_reader_long_contradictions_and_unknown_classes(tmp_path):
    path = _long(tmp_path, [("i1", "No finding", 14, "R1", None), ("i1", "Cardiomegaly", 3, "R1", 1.0)])
    contradiction = r"1 reading\(s\) say 'No finding' and also name a finding.*i1"
    with pytest.raises(PriorsInputError, match=contradiction):
        read_reread_table(path, DEFAULT_VOCABULARY, "v")
    path = _long(tmp_path, [("i1", "Lung tumour", 20, "R1", 1.0)])
    with pytest.raises(PriorsInputError, match=r"re-read table v \(long.csv, reader_long\): unknown finding"):
        read_reread_table(path, DEFAULT_VOCABULARY, "v")
    path = _long(tmp_path, [("i1", "Cardiomegaly", 3, None, 1.0)])
    with pytest.raises(PriorsInputError, match=r"1 row\(s\) have no rad_id"):
        read_reread_table(path, DEFAULT_VOCABULARY, "v")


def test_adjudicated_table_with_embedded_text_mined_labels(write_adjudicated):
    path = write_adjudicated(
        [
            ("a.png", "Pneumothorax", {"Pneumothorax": "YES"}),
            ("b.png", "No Finding", {"Nodule or mass": "YES", "Fracture": "YES"}),
        ],
        classes=["Fracture", "Pneumothorax", "Nodule or mass"],
    )
    table = read_reread_table(path, DEFAULT_VOCABULARY, "g")
    assert table.layout == "adjudicated" and table.reader_ids == ("adjudicated",)
    assert [t.name for t in table.targets] == ["Nodule or mass", "Pneumothorax"]
    assert table.unmapped_labels == ("Fracture",)
    assert table.readings[:, 0, :].tolist() == [[0, 1], [1, 0]]
    assert table.embedded_mined is not None
    assert table.embedded_mined.values[0, COL["Pneumothorax"]] == 1
    assert table.embedded_mined.values[1].sum() == 0


def test_adjudicated_errors_name_the_column_not_the_patient(write_adjudicated):
    path = write_adjudicated([("a.png", "No Finding", {"Pneumothorax": "MAYBE"})], classes=["Pneumothorax"])
    with pytest.raises(PriorsInputError, match=r"column 'Pneumothorax' has values \['MAYBE'\]") as caught:
        read_reread_table(path, DEFAULT_VOCABULARY, "g")
    assert "99999123" not in str(caught.value)
    path = write_adjudicated(
        [("a.png", "No Finding", {"Pneumothorax": "YES"}), ("a.png", "No Finding", {"Pneumothorax": "NO"})],
        classes=["Pneumothorax"],
    )
    with pytest.raises(PriorsInputError, match="contradictory duplicate rows") as caught:
        read_reread_table(path, DEFAULT_VOCABULARY, "g")
    assert "99999123" not in str(caught.value)


def test_layouts_are_detected_or_refused(tmp_path, write_wide):
    assert detect_layout(["image_id", "class_name", "rad_id", "x_min"], "t") == "reader_long"
    assert detect_layout(["Image Index", "Reader", "Mass"], "t") == "reader_wide"
    assert detect_layout(["Image Index", "Finding Labels", "Patient ID", "Fracture"], "t") == "adjudicated"
    with pytest.raises(PriorsInputError, match="cannot tell the layout"):
        detect_layout(["Image Index", "Finding Labels", "Patient ID"], "t")
    path = write_wide([("x", "R1", {})])
    with pytest.raises(PriorsInputError, match="unknown layout 'sideways'"):
        read_reread_table(path, DEFAULT_VOCABULARY, "t", layout="sideways")
    with pytest.raises(PriorsInputError, match="file not found"):
        read_reread_table(tmp_path / "missing.csv", DEFAULT_VOCABULARY, "t")


def test_an_empty_table_parses_to_no_images(write_wide):
    table = read_reread_table(write_wide([]), DEFAULT_VOCABULARY, "t")
    assert table.n_images == 0 and table.readings.shape == (0, 0, len(FINDINGS))
