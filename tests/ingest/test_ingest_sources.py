"""Sources: a local folder and an S3 bucket served over HTTP by a moto server on 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest
from moto.server import ThreadedMotoServer

from cxrpriv.ingest.labels import LabelsTable
from cxrpriv.ingest.sources import FolderSource, S3Source, SourceError, open_source, read_uri
from cxrpriv.ingest.stage import IngestResult, preprocess
from tests.ingest.conftest import TEST_KEY, Cohort, tiny_preprocess_config

BUCKET, PREFIX = "hospital-archive", "export/2024"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real HTTP S3 endpoint (moto server in a thread); boto3 reaches it through the credential chain."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def upload(cohort: Cohort, endpoint: str) -> None:
    client = boto3.client("s3", endpoint_url=endpoint)
    client.create_bucket(Bucket=BUCKET)
    for path in sorted(p for p in cohort.dicom.rglob("*") if p.is_file()):
        client.put_object(
            Bucket=BUCKET, Key=f"{PREFIX}/{path.relative_to(cohort.dicom).as_posix()}", Body=path.read_bytes()
        )
    client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/folder-marker/", Body=b"")
    client.put_object(Bucket=BUCKET, Key="export/Data_Entry_2017.csv", Body=cohort.labels.read_bytes())


def test_s3_source_ingests_like_the_folder(
    s3: str, tiny_cohort: Cohort, ingested: IngestResult, tmp_path: Path
):
    upload(tiny_cohort, s3)
    source = open_source(f"s3://{BUCKET}/{PREFIX}/", endpoint_url=s3)
    listed = list(source.list())
    folder = list(FolderSource(tiny_cohort.dicom).list())
    assert [f.path for f in listed] == sorted(f.path for f in folder), "same files, lexicographic order"
    assert [f.size for f in listed] == [f.size for f in sorted(folder, key=lambda f: f.path)]
    labels = LabelsTable.from_csv(read_uri(f"s3://{BUCKET}/export/Data_Entry_2017.csv", s3), "labels")
    config = tiny_preprocess_config(workers=2)  # each worker process opens its own client
    result = preprocess(config, source, labels, tmp_path / "out", TEST_KEY)
    by_id = result.manifest.sort_values("image_id").reset_index(drop=True)
    expected = ingested.manifest.sort_values("image_id").reset_index(drop=True)
    columns = [c for c in by_id.columns if c not in ("shard", "offset", "split")]
    pd.testing.assert_frame_equal(by_id[columns], expected[columns])
    outcomes = result.files.set_index("path")["outcome"].sort_index()
    assert outcomes.equals(ingested.files.set_index("path")["outcome"].sort_index())


def test_an_unreachable_bucket_is_a_source_error(s3: str):
    with pytest.raises(SourceError, match="listing failed"):
        list(S3Source("s3://no-such-bucket/x", endpoint_url=s3).list())
    with pytest.raises(SourceError, match="not an s3"):
        S3Source("/tmp/x")
    with pytest.raises(SourceError, match="does not exist"):
        FolderSource(Path("/nonexistent/folder"))


def test_folder_listing_is_sorted_and_misses_nothing(tmp_path: Path):
    for name in ("b/2.dcm", "a/1.dcm", ".hidden", "c/DICOMDIR", "z"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert [f.path for f in FolderSource(tmp_path).list()] == [
        ".hidden",
        "z",
        "a/1.dcm",
        "b/2.dcm",
        "c/DICOMDIR",
    ]


class FlakySource(FolderSource):
    """A folder whose first file cannot be read (a network share dropping out, an object deleted)."""

    def __init__(self, root: Path, failing: str) -> None:
        super().__init__(root)
        self.failing = failing

    def read(self, path: str) -> bytes:
        if path == self.failing:
            raise OSError("connection reset")
        return super().read(path)


def test_files_that_cannot_be_read_are_rejected_then_retried(tiny_cohort: Cohort, tmp_path: Path):
    source = tmp_path / "source"
    source.mkdir()
    for path in sorted(tiny_cohort.dicom.rglob("*.dcm"))[:3]:
        (source / path.name).write_bytes(path.read_bytes())
    (source / "notes.txt").write_text("not an image")
    labels = LabelsTable.from_csv(tiny_cohort.labels.read_bytes(), "labels")
    first_file = sorted(p.name for p in source.iterdir())[0]
    config = tiny_preprocess_config()
    result = preprocess(config, FlakySource(source, first_file), labels, tmp_path / "out", TEST_KEY)
    report = result.files.set_index("path")
    assert (
        report.loc["notes.txt", "outcome"] == "rejected"
        and "not a DICOM or PNG" in report.loc["notes.txt", "reason"]
    )
    assert report.loc[first_file, "reason"] == "cannot be read from the source (OSError)"
    again = preprocess(config, FolderSource(source), labels, tmp_path / "out", TEST_KEY)
    assert again.metrics["files_processed"] == 1, "only the file that could not be read is tried again"
    assert again.files.set_index("path").loc[first_file, "outcome"] != "rejected" or "read" not in str(
        again.files.set_index("path").loc[first_file, "reason"]
    )
