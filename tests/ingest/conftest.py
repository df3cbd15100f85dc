"""Fixtures of the ingest tests: a tiny synthetic cohort (built once per session) and tiny stage configs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pydicom
import pytest

from cxrpriv.config import load_stage_config
from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.ingest.labels import LabelsTable
from cxrpriv.ingest.sources import FolderSource
from cxrpriv.ingest.stage import IngestResult, preprocess
from cxrpriv.synth.cohort import synthesize
from tests.conftest import PARAMS, tiny_synth_config

TEST_KEY = DeidKey(b"cxrpriv-test-key-0123456789abcdef0123456789", "test")
OTHER_KEY = DeidKey(b"cxrpriv-other-key-fedcba9876543210fedcba9876", "test")
EXPECTED_OUTCOME = {"ingest": "ingested", "quarantine": "quarantined", "reject": "rejected"}


def tiny_preprocess_config(**overrides: object) -> PreprocessConfig:
    """The default profile at 64 px, one process, small shards: seconds per cohort."""
    base = load_stage_config(PreprocessConfig, "preprocess", PARAMS, "default")
    small = {"image_size": 64, "workers": 1, "shard_size": 8}
    small.update(overrides)
    return dataclasses.replace(base, **small)


@dataclasses.dataclass(frozen=True)
class Cohort:
    root: Path

    @property
    def dicom(self) -> Path:
        return self.root / "dataset" / "dicom"

    @property
    def labels(self) -> Path:
        return self.root / "dataset" / "Data_Entry_2017.csv"

    def answer_key(self) -> pd.DataFrame:
        """files.parquet with paths relative to the DICOM folder, as the ingest report names them."""
        files = pd.read_parquet(self.root / "answer_key" / "files.parquet")
        files["path"] = files["path"].str.removeprefix("dicom/")
        return files


def make_cohort(root: Path, **overrides: object) -> Cohort:
    # 128 px: the smallest size whose burned-in text the synthesizer still draws legibly (7 px glyphs).
    settings = {
        "n_patients": 6,
        "image_size": 128,
        "max_images_per_patient": 3,
        "burned_text_fraction": 0.35,
        "burned_flag_missing_fraction": 0.5,
        "monochrome1_fraction": 0.5,
        "transfer_syntax_mix": {
            s: 1.0 for s in ("explicit_le", "implicit_le", "deflated_le", "j2k_lossless", "rle_lossless")
        },
    }
    settings.update(overrides)
    synthesize(tiny_synth_config(**settings), root, progress=False)
    return Cohort(root)


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """Six patients, every transfer syntax, burned-in text with and without the header flag, broken files."""
    return make_cohort(tmp_path_factory.mktemp("cohort") / "c")


def run_stage(source_dir: Path, labels: Path | None, out: Path, **kwargs: object) -> IngestResult:
    """The stage on a folder with the tiny config and the test key (both overridable); ``labels`` None:
    no labels table."""
    config = kwargs.pop("config", None) or tiny_preprocess_config()
    key = kwargs.pop("key", TEST_KEY)
    table = LabelsTable.from_csv(labels.read_bytes(), labels.name) if labels is not None else None
    return preprocess(config, FolderSource(source_dir), table, out, key, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def ingested(tiny_cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    """The tiny cohort ingested once with the tiny config (treat as read-only)."""
    return run_stage(tiny_cohort.dicom, tiny_cohort.labels, tmp_path_factory.mktemp("ingest") / "out")


def identifying_values(folder: Path) -> set[str]:
    """Every identifying value of every input header, in the forms an output could carry it."""
    keywords = (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "AccessionNumber",
        "InstitutionName",
        "InstitutionAddress",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "OperatorsName",
        "StationName",
        "DeviceSerialNumber",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "SOPInstanceUID",
        "StudyDate",
        "StudyID",
    )
    values: set[str] = set()
    for path in folder.rglob("*.dcm"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # the truncated file still has a readable header in most cases
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        for keyword in keywords:
            value = str(ds.get(keyword, "") or "")
            if not value:
                continue
            values.add(value)
            if keyword.endswith("Date") and len(value) == 8:
                values.add(f"{value[:4]}-{value[4:6]}-{value[6:]}")
            if keyword.endswith("Name") and "^" in value:
                values.update(part for part in value.split("^") if len(part) >= 4)
    return values


def output_texts(out: Path) -> dict[str, str]:
    """Each output file as text: parquet tables cell by cell, everything else decoded leniently."""
    texts = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            texts[str(path)] = " ".join(frame.columns) + "\n" + frame.astype(str).to_csv(index=False)
        else:
            texts[str(path)] = path.read_bytes().decode("latin-1")
    return texts
