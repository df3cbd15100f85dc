"""Fixtures of the release tests: a tiny cohort ingested once (with PHI hashes) and helpers to release it."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pydicom
import pytest

from cxrpriv.config import load_stage_config
from cxrpriv.evaluate.decision import Check, ReleaseDecision
from cxrpriv.release.config import ReleaseConfig
from cxrpriv.release.stage import ReleaseRequest, ReleaseResult, release
from tests.conftest import PARAMS
from tests.ingest.conftest import TEST_KEY, Cohort, make_cohort, run_stage


@dataclasses.dataclass(frozen=True)
class Ingested:
    cohort: Cohort
    dataset: Path  # ingest output (treat as read-only)


@pytest.fixture(scope="session")
def ingested_for_release(tmp_path_factory: pytest.TempPathFactory) -> Ingested:
    """Six patients (every transfer syntax, MONOCHROME1 and 2), no burned-in text, ingested at 64 px."""
    root = tmp_path_factory.mktemp("release-input")
    cohort = make_cohort(root / "cohort", burned_text_fraction=0.0, broken_per_kind=0)
    run_stage(cohort.dicom, cohort.labels, root / "ingest")
    return Ingested(cohort, root / "ingest")


def release_config() -> ReleaseConfig:
    return load_stage_config(ReleaseConfig, "release", PARAMS, "default")


def decision(passed: bool = True) -> ReleaseDecision:
    check = Check("worst_attacker_auc", 0.55 if passed else 0.9, 0.6, passed, "the strongest attacker's AUC")
    return ReleaseDecision.from_checks("none", [check], {"max_attacker_auc": 0.6})


def do_release(dataset: Path, out: Path, **request: object) -> ReleaseResult:
    """Release ``dataset`` into ``out`` with the test key (a passing decision unless one is given)."""
    request.setdefault("decision", decision())
    return release(release_config(), ReleaseRequest(dataset, **request), TEST_KEY, out)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def released(ingested_for_release: Ingested, tmp_path_factory: pytest.TempPathFactory) -> ReleaseResult:
    """The tiny dataset released once (treat as read-only; copy it to plant things in)."""
    return do_release(ingested_for_release.dataset, tmp_path_factory.mktemp("released") / "release")


@pytest.fixture
def release_copy(released: ReleaseResult, tmp_path: Path) -> Path:
    """A writable copy of the release directory."""
    return Path(shutil.copytree(released.out, tmp_path / "release"))


def source_headers(cohort: Cohort) -> list[pydicom.Dataset]:
    """The original (identifying) headers of the cohort's readable DICOM files."""
    headers = []
    for path in sorted(cohort.dicom.rglob("*.dcm")):
        try:
            headers.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception:  # the cohort's deliberately broken files
            continue
    return [h for h in headers if "PatientName" in h]
