"""Ingest under hostile input: planted identifiers, declared sizes and deflate bombs, bare data sets and
malformed pixel descriptions, one file at a time through ``process_file``; then the whole stage, through
the CLI, on the corpus of ``hostile_corpus.py``."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import resource
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom import uid as dicom_uid
from pydicom.dataset import Dataset

from cxrpriv.cli import main
from cxrpriv.ingest.decode import MIB, InputLimitError, Limits, inflate, read_dicom
from cxrpriv.ingest.deid import Deidentifier
from cxrpriv.ingest.keys import KEY_ENV
from cxrpriv.ingest.process import FileResult, WorkerContext, process_file
from cxrpriv.ingest.sources import SourceFile
from cxrpriv.synth.dicom_writer import PixelEncoding, build_radiograph_dataset, write_radiograph
from tests.conftest import PARAMS
from tests.ingest.conftest import TEST_KEY, tiny_preprocess_config
from tests.ingest.hostile_corpus import build_hostile_corpus, deflate_bomb
from tests.ingest.test_ingest_decode import _header
from tests.ingest.test_ingest_workers import kill_workers_on_crash_files


class MemorySource:
    """One file's bytes, whatever the path (process_file reads through a source)."""

    uri = "memory://"

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, path: str) -> bytes:
        return self.data


def process(data: bytes, **overrides: object) -> FileResult:
    config = tiny_preprocess_config(**overrides)
    ctx = WorkerContext(MemorySource(data), config, TEST_KEY)  # type: ignore[arg-type]
    deid = Deidentifier(TEST_KEY, config.deid_options, config.max_date_shift_days, config.deid_policy)
    return process_file(ctx, SourceFile("a.dcm", len(data), "f"), deid)


def image() -> np.ndarray:
    y, x = np.mgrid[0:128, 0:128] / 127.0
    rng = np.random.default_rng(0)
    return np.clip(0.2 + 0.5 * x * (1 - y) + rng.normal(0, 0.01, x.shape), 0, 1).astype(np.float32)


def encoding(syntax: str = "explicit_le") -> PixelEncoding:
    return PixelEncoding("MONOCHROME2", 12, 1.0, 0.0, "window", syntax, None)


def dataset(syntax: str = "explicit_le") -> Dataset:
    return build_radiograph_dataset(image(), _header(), encoding(syntax))


def file_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def written(tmp_path: Path, syntax: str) -> bytes:
    path = tmp_path / f"{syntax}.dcm"
    write_radiograph(path, image(), _header(), encoding(syntax))
    return path.read_bytes()


def test_a_clean_file_is_ingested():
    result = process(file_bytes(dataset()))
    assert result.outcome == "ingested", result.reason
    assert result.phi_blanked == 0


# --------------------------------------------------------------------------- the PHI tripwire


def test_the_files_own_values_planted_in_kept_attributes_are_blanked_and_counted():
    ds = dataset()
    ds.RescaleType = "Doe, Jane"  # the patient's name, other case and separators
    ds.PatientOrientation = ["L", "12345678"]  # the patient ID in a coded value
    ds.AnatomicRegionSequence[0].CodingSchemeVersion = "DOE"  # in a kept sequence item
    result = process(file_bytes(ds))
    assert result.outcome == "ingested", result.reason
    assert result.phi_blanked == 3
    assert result.header_line is not None
    text = result.header_line.lower()
    assert "doe" not in text and "12345678" not in text and "jane" not in text


# --------------------------------------------------------------------------- limits before decoding


@pytest.mark.parametrize("syntax", ["explicit_le", "rle_lossless"])
def test_a_tiny_file_declaring_a_huge_frame_is_refused_before_decoding(tmp_path: Path, syntax: str):
    ds = pydicom.dcmread(io.BytesIO(written(tmp_path, syntax)))
    ds.Rows = ds.Columns = 65535  # 8 GiB of 16-bit pixels, from a file of a few kilobytes
    data = file_bytes(ds)
    assert len(data) < 64 * 1024
    result = process(data)
    assert result.outcome == "rejected"
    assert result.reason.startswith("declared pixel data too large: 65535 x 65535 x 16 bits"), result.reason


def test_a_codestream_declaring_another_size_than_the_header_is_refused(tmp_path: Path):
    data = written(tmp_path, "j2k_lossless")
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.Rows = ds.Columns = 64  # the JPEG 2000 codestream holds 128 x 128
    result = process(file_bytes(ds))
    assert result.reason == (
        "malformed pixel description (the compressed frame declares 128 x 128, the header 64 x 64)"
    )
    siz = data.index(b"\xff\x4f\xff\x51") + 8  # a small header over a codestream declaring 65535 x 65535
    bomb = data[:siz] + struct.pack(">II", 65535, 65535) + data[siz + 8 :]
    result = process(bomb)
    assert result.outcome == "rejected" and "declares 65535 x 65535" in result.reason


def test_a_deflate_bomb_is_refused_while_inflating():
    bomb = deflate_bomb(64 * MIB)
    assert len(bomb) < 200 * 1024
    result = process(bomb)
    assert result.outcome == "rejected"
    assert "times its deflated size" in result.reason and "max_inflate_ratio" in result.reason


def test_inflate_stops_at_the_absolute_limit_and_the_ratio():
    stream = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    deflated = stream.compress(bytes(16 * MIB)) + stream.flush()
    with pytest.raises(InputLimitError, match="beyond 8 MiB"):
        inflate(deflated, Limits(max_inflated_bytes=8 * MIB, max_inflate_ratio=1e9))
    with pytest.raises(InputLimitError, match="100 times"):
        inflate(deflated, Limits(max_inflated_bytes=64 * MIB, max_inflate_ratio=100))
    assert len(inflate(deflated, Limits(max_inflated_bytes=64 * MIB, max_inflate_ratio=1e9))) == 16 * MIB
    with pytest.raises(zlib.error):
        inflate(deflated[: len(deflated) // 2], Limits(max_inflate_ratio=1e9))  # truncated, as before


def test_deflated_files_read_as_pydicom_reads_them(tmp_path: Path):
    data = written(tmp_path, "deflated_le")
    ours, theirs = read_dicom(data), pydicom.dcmread(io.BytesIO(data))
    assert ours.to_json_dict() == theirs.to_json_dict()
    assert np.array_equal(ours.pixel_array, theirs.pixel_array)
    assert process(data).outcome == "ingested"


# --------------------------------------------------------------------------- bare data sets


@pytest.mark.parametrize("implicit", [True, False])
def test_a_bare_data_set_is_read_with_its_inferred_transfer_syntax(implicit: bool):
    full = dataset()
    reference = process(file_bytes(full))
    bare = dataset()
    del bare.file_meta
    buffer = io.BytesIO()
    bare.save_as(buffer, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    data = buffer.getvalue()
    assert data[128:132] != b"DICM" and not data.startswith(b"\x02\x00")
    syntax = read_dicom(data, force=True).file_meta.TransferSyntaxUID
    assert syntax == (dicom_uid.ImplicitVRLittleEndian if implicit else dicom_uid.ExplicitVRLittleEndian)
    result = process(data)
    assert result.outcome == "ingested", result.reason
    assert result.image is not None and reference.image is not None
    assert np.array_equal(result.image, reference.image)


def test_a_bare_data_set_with_encapsulated_pixels_is_refused(tmp_path: Path):
    ds = pydicom.dcmread(io.BytesIO(written(tmp_path, "rle_lossless")))
    del ds.file_meta
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=False, little_endian=True, enforce_file_format=False)
    result = process(buffer.getvalue())
    assert result.outcome == "rejected" and "unknown transfer syntax" in result.reason


# --------------------------------------------------------------------------- malformed pixel descriptions


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"HighBit": 15}, "High Bit 15 is not Bits Stored - 1 = 11"),
        ({"BitsStored": 20, "HighBit": 19}, "Bits Stored 20 with Bits Allocated 16"),
        ({"BitsAllocated": 12}, "Bits Allocated 12"),
        ({"PixelRepresentation": 2}, "Pixel Representation 2"),
    ],
)
def test_inconsistent_bit_depths_are_a_malformed_pixel_description(change: dict, expected: str):
    ds = dataset()
    for keyword, value in change.items():
        setattr(ds, keyword, value)
    result = process(file_bytes(ds))
    assert result.outcome == "rejected"
    assert result.reason == f"malformed pixel description ({expected})"


def test_a_missing_bit_depth_is_a_malformed_pixel_description():
    ds = dataset()
    del ds.BitsStored
    assert process(file_bytes(ds)).reason.startswith("malformed pixel description (a bit depth")


def test_limits_and_policy_come_from_the_config(tmp_path: Path):
    config = tiny_preprocess_config()
    assert config.deid_policy == "allowlist"
    assert WorkerContext(MemorySource(b""), config, TEST_KEY).limits == Limits()  # type: ignore[arg-type]
    small = dataclasses.replace(config, max_frame_mib=0.01)
    limits = WorkerContext(MemorySource(b""), small, TEST_KEY).limits  # type: ignore[arg-type]
    assert limits.max_frame_bytes == int(0.01 * MIB)
    data = file_bytes(dataset())  # 128 x 128 x 16 bits: 32 KiB
    assert process(data, max_frame_mib=0.01).reason.startswith("declared pixel data too large")
    deflated = written(tmp_path, "deflated_le")
    assert "max_inflated_mib" in process(deflated, max_inflated_mib=0.01, max_inflate_ratio=1000).reason
    kept = {policy: process(data, deid_policy=policy).header_line for policy in ("allowlist", "annex_e")}
    assert '"00080070"' in str(kept["annex_e"]) and '"00080070"' not in str(kept["allowlist"])  # Manufacturer


# --------------------------------------------------------------------------- the stage on a hostile corpus


TWO_GB_KIB = 2 * 1024 * 1024


def _texts(path: Path) -> list[str]:
    """A file's content as searchable text: parquet cell by cell, JSON with its escapes undone, and the raw
    bytes both as UTF-8 and as Latin-1 (SQLite pages, binary shards)."""
    data = path.read_bytes()
    texts = [data.decode("utf-8", "replace"), data.decode("latin-1")]
    if path.suffix == ".parquet":
        texts.append(pd.read_parquet(path).astype(str).to_csv(index=False))
    elif path.suffix in (".json", ".jsonl"):
        lines = [line for line in data.splitlines() if line.strip()] if path.suffix == ".jsonl" else [data]
        texts += [json.dumps(json.loads(line), ensure_ascii=False) for line in lines]
    return texts


def _leaks(texts: dict[str, list[str]], secrets: set[str]) -> set[tuple[str, str]]:
    """(where, secret) for each secret found ignoring case, and, for names, ignoring separators too."""
    leaks = set()
    for where, variants in texts.items():
        for text in variants:
            lowered = text.lower()
            squeezed = re.sub(r"[\W_]+", "", lowered)
            for secret in secrets:
                needle = secret.lower()
                if needle in lowered or (needle.isalpha() and len(needle) >= 6 and needle in squeezed):
                    leaks.add((where, secret))
    return leaks


@pytest.mark.slow
def test_the_stage_survives_a_hostile_corpus_and_leaks_nothing(
    tmp_path: Path,
    isolated_mlflow: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    peaks_before = {
        who: resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    }
    corpus = build_hostile_corpus(tmp_path / "archive")
    caplog.set_level(logging.DEBUG)
    caplog.clear()  # pydicom's warnings while the corpus was written quote the planted values
    inputs = {p: p.read_bytes() for p in corpus.root.rglob("*") if p.is_file() and not p.is_symlink()}
    found = _leaks({"inputs": [b.decode("utf-8", "replace") for b in inputs.values()]}, corpus.secrets)
    assert found == {("inputs", s) for s in corpus.secrets}, "the leak search finds every planted secret"
    kill_workers_on_crash_files(monkeypatch)
    monkeypatch.setenv(KEY_ENV, TEST_KEY.secret.decode())
    out, kept_apart = tmp_path / "out", tmp_path / "operator" / "paths.csv"
    code = main(
        [
            "preprocess", "--params", str(PARAMS), "--image-size", "64", "--shard-size", "8",
            "--workers", "2", "--log-paths", "keyed", "--source", str(corpus.root), "--out", str(out),
            "--path-map", str(kept_apart), "--metrics", str(tmp_path / "metrics" / "preprocess.json"),
            "--plots", str(tmp_path / "plots"), "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0, "no crash, and the clean and PHI-laden files make a valid dataset"

    # Every directory entry (files, links, FIFOs; not folders) once in the report, with a reason.
    entries = [
        str(Path(d, n).relative_to(corpus.root))
        for d, folders, files in os.walk(corpus.root)
        for n in files + [f for f in folders if Path(d, f).is_symlink()]
    ]
    report = pd.read_parquet(out / "report" / "files.parquet")
    assert sorted(report["path"]) == sorted(TEST_KEY.path_tag(e) for e in entries)
    assert report["path"].is_unique and (report["path"] == report["path_key"]).all()
    reasons = report.set_index(pd.read_csv(kept_apart).set_index("path_key").loc[report["path"], "path"])
    assert (reasons.loc[reasons["outcome"] != "ingested", "reason"] != "").all()
    assert reasons.loc["crash_sigkill.dcm", "reason"] == "worker died (SIGKILL)"
    ingested = set(reasons.index[reasons["outcome"] == "ingested"])
    assert {"clean_0.dcm", "clean_1.dcm", "clean_2.dcm", "lee.dcm"} <= ingested
    # The PHI-laden files are ingested, cleaned (one through a link listed before its target).
    assert len([p for p in ingested if "_ACC" in p or p == "QUETZALCOATL_link.dcm"]) == 3
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert not manifest["labeled"].any(), "no labels table: every image unlabeled"

    # No planted identifying string in any output: headers, manifest, reports, metrics, plots, logs, MLflow.
    store = Path(isolated_mlflow.removeprefix("sqlite:///")).parent
    folders = (out, tmp_path / "metrics", tmp_path / "plots", store)
    outputs = [p for folder in folders for p in folder.rglob("*")]
    texts = {str(p): _texts(p) for p in outputs if p.is_file()}
    texts["logs"] = ["\n".join(r.getMessage() for r in caplog.records)]
    assert len(texts) > 10 and any("headers" in name for name in texts)
    assert not _leaks(texts, corpus.secrets)
    assert TEST_KEY.secret.decode() not in "".join(t for v in texts.values() for t in v)
    assert {"QUETZALCOATL_ZEPHYRINE/MRN-70419283_ACC99887766.dcm"} <= set(pd.read_csv(kept_apart)["path"])

    # No process, parent or worker, went past 2 GB (maxrss: KiB on Linux, the peak over the process's life,
    # so only meaningful where earlier tests of the session stayed below it).
    for who, before in peaks_before.items():
        if before < TWO_GB_KIB:
            assert resource.getrusage(who).ru_maxrss < TWO_GB_KIB, who
