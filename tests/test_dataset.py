"""The ingested-dataset format module: opening an ingest output, its checks and accessors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrpriv.dataset import (
    FILES_REPORT_COLUMNS,
    IMAGE_COLUMNS,
    MANIFEST_COLUMNS,
    SPLITS,
    DatasetError,
    files_report_path,
    manifest_path,
    open_dataset,
    read_files_report,
)
from cxrpriv.ingest.shards import ShardWriter


def _ingest_output(root: Path, splits: list[str], mass: list[float]) -> None:
    writer = ShardWriter(root, shard_size=2, image_size=4, dtype="uint8")
    rows = []
    for i, (split, label) in enumerate(zip(splits, mass, strict=True)):
        shard, offset = writer.add(np.full((4, 4), i, dtype=np.uint8), f'{{"image_id": "img{i}"}}')
        rows.append(
            {"image_id": f"img{i}", "patient_id": f"p{i // 2}", "split": split, "shard": shard}
            | {"offset": offset, "Mass": label}
        )
    writer.close()
    pd.DataFrame(rows).to_parquet(manifest_path(root), index=False)


def test_open_dataset_gives_splits_labels_and_images(tmp_path: Path):
    _ingest_output(tmp_path, ["train", "test", "train", "validation", "train"], [1, 0, 0, 1, 0])
    dataset = open_dataset(tmp_path)
    assert dataset.manifest_path == tmp_path / "manifest.parquet"
    rows = dataset.split_rows()
    assert list(rows) == list(SPLITS)
    assert [r.tolist() for r in rows.values()] == [[0, 2, 4], [3], [1]]
    assert dataset.labels(["Mass"]).tolist() == [[1.0], [0.0], [0.0], [1.0], [0.0]]
    images = dataset.images()
    assert images[3].tolist() == np.full((4, 4), 3).tolist() and images.image("img4")[0, 0] == 4


def test_errors_name_the_file_and_what_is_wrong(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"manifest\.parquet: not found \(run `cxrpriv preprocess` first"):
        open_dataset(tmp_path)
    _ingest_output(tmp_path, ["train", "train"], [0, 2])
    with pytest.raises(DatasetError, match=r"manifest\.parquet: missing column\(s\) Hernia"):
        open_dataset(tmp_path, (*IMAGE_COLUMNS, "Hernia"))
    with pytest.raises(DatasetError, match=r"manifest\.parquet: finding columns must hold 0/1 labels"):
        open_dataset(tmp_path).labels(["Mass"])
    with pytest.raises(DatasetError, match=r"report/files\.parquet: not found"):
        open_dataset(tmp_path).files_report()


def test_the_files_report_accessor_checks_its_columns(tmp_path: Path):
    _ingest_output(tmp_path, ["train"], [0])
    files_report_path(tmp_path).parent.mkdir()
    pd.DataFrame({"path": ["a.dcm"], "image_id": ["img0"]}).to_parquet(files_report_path(tmp_path))
    assert open_dataset(tmp_path).files_report()["image_id"].tolist() == ["img0"]
    with pytest.raises(DatasetError, match=r"files\.parquet: missing column\(s\) outcome"):
        open_dataset(tmp_path).files_report(("path", "outcome"))


def test_the_manifest_columns_include_what_readers_need():
    assert set(IMAGE_COLUMNS) <= set(MANIFEST_COLUMNS)
    assert {"path", "image_id"} <= set(FILES_REPORT_COLUMNS)


def test_unlabeled_rows_are_refused_by_labels_and_picked_out_by_labeled_rows(tmp_path: Path):
    _ingest_output(tmp_path, ["train", "train", "test"], [1, 0, 0])
    manifest = pd.read_parquet(manifest_path(tmp_path))
    manifest["Mass"] = pd.array([1, None, 0], dtype="Int64")
    manifest["labeled"] = [True, False, True]
    manifest.to_parquet(manifest_path(tmp_path), index=False)
    dataset = open_dataset(tmp_path)
    assert dataset.labeled().tolist() == [True, False, True]
    assert dataset.labeled_rows().tolist() == [0, 2]
    assert dataset.labeled_rows(dataset.split_rows()["train"]).tolist() == [0]
    assert dataset.labels(["Mass"], dataset.labeled_rows()).tolist() == [[1.0], [0.0]]
    with pytest.raises(DatasetError, match=r"1 of the 3 rows asked for have no labels"):
        dataset.labels(["Mass"])


def test_a_keyed_files_report_needs_the_path_map(tmp_path: Path):
    _ingest_output(tmp_path, ["train"], [0])
    files_report_path(tmp_path).parent.mkdir()
    pd.DataFrame({"path": ["file:0123"], "image_id": ["img0"]}).to_parquet(files_report_path(tmp_path))
    (tmp_path / "state.json").write_text('{"log_paths": "keyed"}')
    with pytest.raises(DatasetError, match=r"its paths are keyed \(log_paths: keyed\)"):
        open_dataset(tmp_path).files_report()
    assert open_dataset(tmp_path).files_report(("image_id",))["image_id"].tolist() == ["img0"]
    path_map = tmp_path.parent / "paths.csv"
    path_map.write_text("path_key,path\nfile:0123,Doe_Jane/a.dcm\n")
    assert open_dataset(tmp_path).files_report(path_map=path_map)["path"].tolist() == ["Doe_Jane/a.dcm"]
    path_map.write_text("path_key,path\nfile:9999,b.dcm\n")
    with pytest.raises(DatasetError, match=r"no path for 1 keyed report row"):
        read_files_report(tmp_path, path_map=path_map)


def test_first_films_are_each_patient_s_first_in_manifest_order(tmp_path: Path):
    # Patients p0 (rows 0, 1), p1 (rows 2, 3), p2 (row 4); row 1 is p0's only test film.
    _ingest_output(tmp_path, ["train", "test", "test", "test", "test"], [0, 0, 0, 0, 0])
    dataset = open_dataset(tmp_path)
    assert dataset.first_films(5).tolist() == [1, 2, 4]
    assert dataset.first_films(2).tolist() == [1, 2]
    assert dataset.first_films(5, split=None).tolist() == [0, 2, 4]
    assert dataset.first_films(5, split="validation").tolist() == []
