"""Partitioned ingest (N partition tasks, then a merge) writes the single run's dataset, file for file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cxrpriv.ingest.labels import LabelsTable
from cxrpriv.ingest.partition import Partition, merge_partitions, partition_of, preprocess_partition
from cxrpriv.ingest.sources import FolderSource
from cxrpriv.ingest.stage import DUPLICATE, IngestResult, StageError
from tests.ingest.conftest import OTHER_KEY, TEST_KEY, Cohort, run_stage, tiny_preprocess_config


def _partitioned(source: Path, labels: Path | None, work: Path, count: int, **kwargs: object) -> IngestResult:
    config = kwargs.pop("config", None) or tiny_preprocess_config()
    table = LabelsTable.from_csv(labels.read_bytes(), labels.name) if labels is not None else None
    parts = []
    for index in reversed(range(count)):  # the order the tasks run in does not matter
        part = work / f"part-{index}"
        preprocess_partition(
            config, FolderSource(source), table, part, TEST_KEY, partition=Partition(index, count), **kwargs
        )
        parts.append(part)
    return merge_partitions(config, parts, work / "merged", TEST_KEY)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_partitioned_ingest_writes_the_single_run_dataset_byte_for_byte(
    ingested: IngestResult, tiny_cohort: Cohort, tmp_path: Path
):
    merged = _partitioned(tiny_cohort.dicom, tiny_cohort.labels, tmp_path, 3)
    single = _files(ingested.out_dir)
    assert set(single) >= {
        "manifest.parquet",
        "report/files.parquet",
        "report/phi_hashes.parquet",
        "state.json",
    }
    assert _files(merged.out_dir) == single  # manifest, shards, headers, report, hashes, validation, state
    assert merged.metrics["outcomes"] == ingested.metrics["outcomes"]
    assert merged.metrics["splits"] == ingested.metrics["splits"] and merged.metrics["partitions"] == 3


def test_a_duplicate_in_another_partition_is_rejected_as_the_single_run_rejects_it(
    tiny_cohort: Cohort, tmp_path: Path
):
    source = tmp_path / "source"
    shutil.copytree(tiny_cohort.dicom, source)
    single = run_stage(source, tiny_cohort.labels, tmp_path / "single")
    first = single.files[single.files["outcome"] == "ingested"]["path"].iloc[0]
    # a copy of an ingested film (same SOP Instance UID) listed after it, in another of two partitions
    name = next(
        f"zz/copy-{i}.dcm"
        for i in range(100)
        if partition_of(f"zz/copy-{i}.dcm", 2) != partition_of(first, 2)
    )
    (source / "zz").mkdir()
    shutil.copy(source / first, source / name)
    single = run_stage(source, tiny_cohort.labels, tmp_path / "single-with-copy")
    assert single.files.set_index("path").loc[name, "reason"] == DUPLICATE
    merged = _partitioned(source, tiny_cohort.labels, tmp_path / "parts", 2)
    assert _files(merged.out_dir) == _files(single.out_dir)


def test_the_merge_refuses_an_incomplete_set_another_key_and_another_listing(
    tiny_cohort: Cohort, tmp_path: Path
):
    config = tiny_preprocess_config()
    source = FolderSource(tiny_cohort.dicom)
    parts = [tmp_path / f"part-{i}" for i in range(2)]
    for i, part in enumerate(parts):
        preprocess_partition(config, source, None, part, TEST_KEY, partition=Partition(i, 2))
    with pytest.raises(StageError, match="exactly once"):
        merge_partitions(config, parts[:1], tmp_path / "a", TEST_KEY)
    with pytest.raises(StageError, match="another de-identification key"):
        merge_partitions(config, parts, tmp_path / "b", OTHER_KEY)
    changed = tmp_path / "changed"
    shutil.copytree(tiny_cohort.dicom, changed)
    (changed / "new.dcm").write_bytes(b"not dicom")
    other = tmp_path / "other-1"
    preprocess_partition(config, FolderSource(changed), None, other, TEST_KEY, partition=Partition(1, 2))
    with pytest.raises(StageError, match="listed another source"):
        merge_partitions(config, [parts[0], other], tmp_path / "c", TEST_KEY)
    with pytest.raises(StageError, match="new output"):
        preprocess_partition(config, source, None, parts[0], TEST_KEY, partition=Partition(0, 2))


def test_partition_names_parse_and_every_path_has_one_partition():
    assert Partition.parse("2/4") == Partition(2, 4)
    for bad in ("4/4", "1", "a/b", "-1/3"):
        with pytest.raises(ValueError):
            Partition.parse(bad)
    paths = [f"p{i}/film-{j}.dcm" for i in range(20) for j in range(5)]
    owners = [[Partition(i, 3).holds(p) for i in range(3)] for p in paths]
    assert all(sum(o) == 1 for o in owners)
    assert all(any(o[i] for o in owners) for i in range(3))  # no partition left empty on 100 paths
