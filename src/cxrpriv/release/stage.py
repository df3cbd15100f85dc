"""The ``release`` stage: an anonymized dataset (the ingest format) to a publishable release directory.

Layout of a complete release (``out``)::

    dicom/<image_id>.dcm        one DICOM file per image (:mod:`.dicom`)
    Data_Entry_2017.csv         labels in the ChestX-ray14 layout, under the pseudonyms
    splits/<split>_list.txt     the file names of each split
    release_decision.json       the evaluation's release decision
    evaluation/                 the copied evaluation report (when one was given)
    SHA256SUMS                  sha256 of every file above (``sha256sum -c`` format)
    release_manifest.json       written last: counts, method, decision, forced reason, audit result

Everything is written into ``<out>.partial`` and audited there (:mod:`.audit`); only a clean audit renames it
to ``out`` with ``"status": "complete"``. A blocked release leaves in ``out`` only ``audit.json`` (where the
findings are, never the values) and a manifest with ``"status": "blocked"``: the files that failed are
deleted, since they may hold PHI. A failed release decision stops the stage before anything is written,
unless a reason to release anyway is given; the reason goes into the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from cxrpriv.dataset import Dataset, DatasetError, anonymization, open_dataset, read_state
from cxrpriv.evaluate.decision import DECISION_FILE, ReleaseDecision
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.release import (
    AUDIT_REPORT_FILE,
    BLOCKED,
    CHECKSUMS_FILE,
    COMPLETE,
    DICOM_DIR,
    LABELS_FILE,
    RELEASE_MANIFEST_FILE,
    REPORT_DIR,
    SPLITS_DIR,
    ReleaseInputError,
    ReleaseRefused,
)
from cxrpriv.release.audit import Auditor, AuditResult, PhiIndex, audit_strings
from cxrpriv.release.config import ReleaseConfig
from cxrpriv.release.dicom import ReleasedImage, write_dicom
from cxrpriv.release.tables import labels_table, write_splits

log = logging.getLogger(__name__)

RELEASE_COLUMNS = ("image_id", "patient_id", "split", "view", "age", "sex", "study_date", "shard", "offset")
# File names come from the pseudonym alone; anything else in an image_id is refused, not escaped.
SAFE_IMAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FORMAT = "cxrpriv release 1"


@dataclass(frozen=True)
class ReleaseRequest:
    """What to release and under which decision."""

    dataset: Path
    decision: ReleaseDecision
    report: Path | None = None  # the evaluation report directory to copy
    force_reason: str | None = None  # release despite a failed decision, for this reason


@dataclass
class ReleaseResult:
    status: str  # complete or blocked
    manifest: dict[str, Any]
    audit: AuditResult
    out: Path


def check_gate(decision: ReleaseDecision, force_reason: str | None) -> str | None:
    """The force reason that applies (None when the decision passed); ReleaseRefused when it failed and
    none was given."""
    reason = (force_reason or "").strip() or None
    if decision.passed:
        if reason:
            log.warning("release: the decision passed; --force-release-reason is not needed and not recorded")
        return None
    if reason is None:
        why = "; ".join(decision.reasons) or "no check passed"
        raise ReleaseRefused(
            f"the release decision for {decision.variant!r} failed ({why}): not releasing; "
            '--force-release-reason "..." releases anyway and records the reason in the release manifest'
        )
    log.warning("release: the decision failed; releasing anyway, forced with a reason (recorded)")
    return reason


def open_release_input(dataset_dir: Path, key: DeidKey) -> tuple[Dataset, dict[str, Any], PhiIndex]:
    """The dataset, its state and its PHI hashes, checked to be what the key made."""
    try:
        dataset = open_dataset(dataset_dir, RELEASE_COLUMNS)
        hashes = dataset.phi_hashes()
    except DatasetError as exc:
        raise ReleaseInputError(str(exc)) from exc
    state = read_state(dataset_dir)
    if state.get("key_check") != key.check_value():
        raise ReleaseInputError(
            f"{dataset_dir}: made with another de-identification key (or without state.json): its PHI hashes "
            "and UIDs need the key it was ingested with"
        )
    if state.get("deid_policy", "allowlist") != "allowlist":
        raise ReleaseInputError(
            f"{dataset_dir}: ingested with deid_policy annex_e; a release needs allowlist"
        )
    bad = [i for i in dataset.manifest["image_id"].astype(str) if not SAFE_IMAGE_ID.match(i)]
    if bad:
        raise ReleaseInputError(f"{dataset_dir}: {len(bad)} image_id(s) are not safe file names")
    return dataset, state, PhiIndex(key, hashes)


def derivation(dataset_dir: Path, size: tuple[int, int], dtype: str) -> tuple[str, str]:
    """(method, DerivationDescription) from the dataset's anonymizer record ('none' without one)."""
    applied = anonymization(dataset_dir) or {}
    method = str(applied.get("method") or "none")
    described = str(applied.get("description") or method)
    text = (
        f"cxr-privacy release; anonymization: {described}; de-identified, intensity-standardized and "
        f"resized to {size[0]}x{size[1]} {dtype} at ingest"
    )
    return method, text[:1024]


def release(
    config: ReleaseConfig,
    request: ReleaseRequest,
    key: DeidKey,
    out: Path,
    progress: Callable[[int], None] | None = None,
) -> ReleaseResult:
    """Write, audit and publish (or block) the release of ``request.dataset`` into ``out``."""
    started = time.perf_counter()
    forced = check_gate(request.decision, request.force_reason)
    if request.report is not None and not Path(request.report).is_dir():
        raise ReleaseInputError(f"{request.report}: the evaluation report must be a directory")
    dataset, state, index = open_release_input(request.dataset, key)
    out = Path(out)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        written = write_release_files(dataset, state, request, key, staging, progress=progress)
        auditor = Auditor(
            index,
            tuple(state.get("deid_options") or _recorded_options(dataset)),
            config.text_min_glyphs,
            config.text_contrast,
            int(config.max_text_file_mib * 2**20),
        )
        audit = auditor.audit_directory(staging)
        manifest = release_manifest(written, request.decision, forced, key)
        audit_strings(auditor, RELEASE_MANIFEST_FILE, manifest)
        manifest["audit"] = {k: v for k, v in audit.to_dict().items() if k != "findings"}
        manifest["seconds"] = round(time.perf_counter() - started, 2)
        if audit.passed:
            return _publish(staging, out, manifest, audit)
        return _block(staging, out, manifest, audit)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _recorded_options(dataset: Dataset) -> list[str]:
    """The de-identification options of a dataset ingested before state.json recorded them: read from the
    first header's De-identification Method Code Sequence."""
    from cxrpriv.ingest.deid import METHOD_CODES

    names = {code: name for name, (code, _) in METHOD_CODES.items()}
    header = dataset.images().header(0) if len(dataset.manifest) else {}
    items = header.get("00120064", {}).get("Value", [])
    codes = [item.get("00080100", {}).get("Value", [""])[0] for item in items]
    return [names[c] for c in codes if c in names and names[c] != "basic"]


def write_release_files(
    dataset: Dataset,
    state: dict[str, Any],
    request: ReleaseRequest,
    key: DeidKey,
    staging: Path,
    *,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Every file of the release but the manifest; returns what the manifest reports about them."""
    manifest = dataset.manifest
    reader = dataset.images()
    sample = reader[0] if len(manifest) else np.zeros((0, 0), np.uint8)
    method, description = derivation(request.dataset, sample.shape, str(sample.dtype))
    names, sizes, spacings = [], [], []
    for row in range(len(manifest)):
        name, size, spacing = _write_image(
            reader, row, method, description=description, state=state, key=key, staging=staging
        )
        names.append(name)
        sizes.append(size)
        spacings.append(spacing)
        if progress:
            progress(1)
    table = labels_table(manifest, names, sizes, spacings)
    table.to_csv(staging / LABELS_FILE, index=False)
    write_splits(staging / SPLITS_DIR, manifest, names)
    request.decision.write(staging / DECISION_FILE)
    if request.report is not None:
        shutil.copytree(request.report, staging / REPORT_DIR)
    checksums = write_checksums(staging)
    return {
        "method": method,
        "derivation_description": description,
        "images": len(manifest),
        "patients": int(manifest["patient_id"].nunique()),
        "splits": {
            split: {"images": len(rows), "patients": int(manifest.iloc[rows]["patient_id"].nunique())}
            for split, rows in dataset.split_rows().items()
        },
        "image_shape": list(sample.shape),
        "dtype": str(sample.dtype),
        "evaluation_report": REPORT_DIR if request.report is not None else None,
        "checksums_sha256": hashlib.sha256(checksums.read_bytes()).hexdigest(),
    }


def _write_image(
    reader: Any,
    row: int,
    method: str,
    *,
    description: str,
    state: dict[str, Any],
    key: DeidKey,
    staging: Path,
) -> tuple[str, tuple[int, int], tuple[float, float] | None]:
    """Write one DICOM file and read it back; returns its file name, (width, height) and (x, y) spacing."""
    record = reader.manifest.iloc[row]
    pixels = np.asarray(reader[row])
    image = ReleasedImage(
        str(record["image_id"]), str(record["patient_id"]), pixels, description, method, state.get("aspect")
    )
    name = f"{image.image_id}.dcm"
    path = write_dicom(staging / DICOM_DIR / name, reader.header(row), image, key)
    back = pydicom.dcmread(path)
    if not np.array_equal(back.pixel_array, pixels):
        raise RuntimeError(f"{DICOM_DIR}/{name}: the pixels read back differ from the stored image")
    spacing = back.get("PixelSpacing") or back.get("ImagerPixelSpacing")
    xy = (float(spacing[1]), float(spacing[0])) if spacing else None
    return name, (int(back.Columns), int(back.Rows)), xy


def write_checksums(root: Path) -> Path:
    """``SHA256SUMS`` over every file under ``root`` (sorted relative paths)."""
    lines = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        lines.append(f"{digest.hexdigest()}  {path.relative_to(root).as_posix()}\n")
    target = root / CHECKSUMS_FILE
    target.write_text("".join(lines))
    return target


def release_manifest(
    written: dict[str, Any], decision: ReleaseDecision, forced: str | None, key: DeidKey
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "status": COMPLETE,
        **written,
        "decision": decision.to_dict(),
        "forced": {"reason": forced} if forced else None,
        "key_check": key.check_value(),
        "files": {
            "dicom": f"{DICOM_DIR}/",
            "labels": LABELS_FILE,
            "splits": f"{SPLITS_DIR}/",
            "decision": DECISION_FILE,
            "checksums": CHECKSUMS_FILE,
        },
    }


def _write_json(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")


def _publish(staging: Path, out: Path, manifest: dict[str, Any], audit: AuditResult) -> ReleaseResult:
    _write_json(staging / RELEASE_MANIFEST_FILE, manifest)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    return ReleaseResult(COMPLETE, manifest, audit, out)


def _block(staging: Path, out: Path, manifest: dict[str, Any], audit: AuditResult) -> ReleaseResult:
    shutil.rmtree(staging)  # what was written may hold the PHI the audit found
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    # Only counts and the audit summary: any string of the full manifest may be what the audit found.
    manifest = {
        "format": FORMAT,
        "status": BLOCKED,
        "images": manifest["images"],
        "patients": manifest["patients"],
        "forced": manifest["forced"] is not None,
        "audit": manifest["audit"],
        "audit_report": AUDIT_REPORT_FILE,
        "seconds": manifest["seconds"],
    }
    _write_json(out / AUDIT_REPORT_FILE, audit.to_dict())
    _write_json(out / RELEASE_MANIFEST_FILE, manifest)
    return ReleaseResult(BLOCKED, manifest, audit, out)
