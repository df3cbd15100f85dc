"""One input file to one outcome: ingested (an image, its fields and its de-identified header), quarantined
(reason) or rejected (reason). Runs in worker processes; everything it returns is already de-identified,
except the relative path (which the per-file report needs and the manifest never gets) and, only when the
user asked for a pseudonym map, the original Patient ID.

A reason names what was wrong in coded terms (modality, body part, view, exception type), never a header
value that could identify a patient; exceptions from libraries are reported by their type only, because
their messages can quote values.
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.decode import (
    MIB,
    Decoded,
    DecodeError,
    InputLimitError,
    Limits,
    decode_dicom,
    decode_png,
    pixel_description_reason,
    read_dicom,
    sniff,
)
from cxrpriv.ingest.deid import Deidentifier, DeidError, parse_dicom_date, patient_age_years
from cxrpriv.ingest.dicomjson import header_json
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.ingest.normalize import (
    NoContrastError,
    apply_knots,
    percentile_standardize,
    quantize,
    resize,
    standard_knots,
    standardize,
)
from cxrpriv.ingest.phi_hashes import identifying_values, keyed_hashes
from cxrpriv.ingest.screening import (
    blank_regions,
    burned_in_flag,
    detect_text,
    scope_reason,
    view_position,
)
from cxrpriv.ingest.sources import Source, SourceFile

log = logging.getLogger(__name__)

INGESTED, QUARANTINED, REJECTED = "ingested", "quarantined", "rejected"
OUTCOMES = (INGESTED, QUARANTINED, REJECTED)
# The detector and the intensity statistics work at no less than this short side (and 2x the output size).
MIN_WORK_SIDE = 384
# Binary elements above this size (LUT data, icons, waveforms) are not copied into the header JSON.
BULK_BYTES = 1024
DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
PIXEL_ELEMENTS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass
class FileResult:
    path: str
    size: int
    fingerprint: str
    outcome: str = REJECTED
    reason: str = ""
    checksum: str | None = None
    source_format: str = "unknown"
    image_id: str | None = None
    patient_id: str | None = None  # pseudonym (DICOM); PNG patients are keyed by the labels table
    original_patient_id: str | None = None  # only when the user asked for a pseudonym map
    image: np.ndarray | None = None
    header_line: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)
    header_flag: bool = False
    text_glyphs: int = 0
    phi_blanked: int = 0  # kept header values blanked by the PHI tripwire (a count, never the values)
    # (kind, keyed hash) of the identifying values de-identification removed (cxrpriv.ingest.phi_hashes)
    phi_hashes: frozenset[tuple[str, str]] = frozenset()
    seconds: float = 0.0


@dataclass(frozen=True)
class WorkerContext:
    source: Source
    config: PreprocessConfig
    key: DeidKey
    keep_original_ids: bool = False

    def shown_path(self, path: str) -> str:
        """How logs name an input file (``log_paths``)."""
        return self.key.path_tag(path) if self.config.log_paths == "keyed" else path

    @property
    def work_side(self) -> int:
        return max(MIN_WORK_SIDE, 2 * self.config.image_size)

    @property
    def limits(self) -> Limits:
        cfg = self.config
        return Limits(
            max_frame_bytes=int(cfg.max_frame_mib * MIB),
            max_inflated_bytes=int(cfg.max_inflated_mib * MIB),
            max_inflate_ratio=cfg.max_inflate_ratio,
        )


class _Outcome(Exception):  # control flow (an outcome with a reason), not an error
    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome = outcome
        self.reason = reason


def process_file(ctx: WorkerContext, item: SourceFile, deid: Deidentifier) -> FileResult:
    start = time.perf_counter()
    result = FileResult(item.path, item.size, item.fingerprint)
    try:
        if item.problem:  # listed, but not a file to read (a link loop, a FIFO, ...): never opened
            raise _Outcome(REJECTED, item.problem)
        try:
            data = ctx.source.read(item.path)
        except Exception as exc:  # any I/O or S3 failure: the file stays in the report as rejected
            raise _Outcome(REJECTED, f"cannot be read from the source ({type(exc).__name__})") from exc
        result.checksum = ctx.key.checksum(data)
        kind = sniff(data)
        if kind == "png":
            _ingest_png(ctx, result, data, deid)
        else:
            ds = _read(data, kind, ctx.limits)
            result.source_format = "dicom"
            _ingest_dicom(ctx, result, ds, deid, data)
    except _Outcome as outcome:
        result.outcome, result.reason = outcome.outcome, outcome.reason
        result.image = result.header_line = None
    except DecodeError as exc:
        result.outcome, result.reason, result.image = REJECTED, str(exc), None
    except NoContrastError as exc:
        result.outcome, result.reason, result.image = REJECTED, str(exc), None
    except Exception as exc:  # never let one file end the run; the type (not the message) names the problem
        log.warning("%s: unexpected %s while processing", ctx.shown_path(item.path), type(exc).__name__)
        result.outcome, result.reason = REJECTED, f"unexpected error while processing ({type(exc).__name__})"
        result.image = result.header_line = None
    result.seconds = time.perf_counter() - start
    return result


def _read(data: bytes, kind: str, limits: Limits) -> Dataset:
    try:
        ds = read_dicom(data, force=kind != "dicom", limits=limits)
    except InputLimitError as exc:
        raise _Outcome(REJECTED, str(exc)) from exc
    except Exception as exc:  # pydicom raises many types on garbage and truncation
        raise _Outcome(REJECTED, f"not a readable DICOM or PNG file ({type(exc).__name__})") from exc
    if kind != "dicom" and not ("SOPClassUID" in ds and ("PixelData" in ds or "Modality" in ds)):
        raise _Outcome(REJECTED, "not a DICOM or PNG file")
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
        raise _Outcome(REJECTED, "DICOMDIR (media directory), not an image")
    return ds


def _ingest_dicom(
    ctx: WorkerContext, result: FileResult, ds: Dataset, deid: Deidentifier, data: bytes
) -> None:
    patient_id = _screen_header(ctx, ds)
    try:
        decoded = decode_dicom(ds, ctx.work_side, data)
    except DecodeError:
        raise
    except Exception as exc:  # a truncated or inconsistent file surfaces here as one of many types
        raise DecodeError(f"pixel data cannot be decoded ({type(exc).__name__})") from exc
    sop_uid = str(ds.get("SOPInstanceUID", "") or "").strip()
    result.image_id = deid.image_id(f"sop:{sop_uid}" if sop_uid else f"path:{result.path}")
    result.fields = _header_fields(ds)
    blanked = _ingest_pixels(ctx, result, decoded, flagged=burned_in_flag(ds))
    for keyword in PIXEL_ELEMENTS:
        if keyword in ds:
            delattr(ds, keyword)
    if blanked:
        ds.BurnedInAnnotation = "NO"  # the stored pixels are the cleaned ones (Clean Pixel Data is recorded)
    _deidentify_header(ctx, result, ds, deid, blanked)
    if ctx.keep_original_ids:
        result.original_patient_id = patient_id


def _screen_header(ctx: WorkerContext, ds: Dataset) -> str:
    """The original Patient ID of a header in scope, whose pixels may be decoded; else the rejection."""
    cfg = ctx.config
    try:
        reason = scope_reason(ds, cfg.modalities, cfg.views)
    except (TypeError, ValueError) as exc:  # malformed coded values
        raise _Outcome(REJECTED, f"malformed header ({type(exc).__name__})") from exc
    if reason:
        raise _Outcome(REJECTED, reason)
    # Before any decoder allocates what the header declares.
    reason = pixel_description_reason(ds, ctx.limits.max_frame_bytes)
    if reason:
        raise _Outcome(REJECTED, reason)
    patient_id = str(ds.get("PatientID", "") or "").strip()
    if not patient_id:
        raise _Outcome(REJECTED, "no Patient ID: cannot assign a pseudonym (patient-wise splits need one)")
    return patient_id


def _header_fields(ds: Dataset) -> dict[str, Any]:
    """The manifest's fields read from the header (view, age, sex, modality, photometric)."""
    age = patient_age_years(ds)
    sex = str(ds.get("PatientSex", "") or "").strip().upper()[:1]
    return {
        "view": view_position(ds),
        "age": age if age is not None and 0 <= age <= 120 else None,
        "sex": sex if sex in ("M", "F", "O") else None,
        "modality": str(ds.get("Modality", "")),
        "photometric": str(ds.get("PhotometricInterpretation", "")),
    }


def _deidentify_header(
    ctx: WorkerContext, result: FileResult, ds: Dataset, deid: Deidentifier, blanked: bool
) -> None:
    """The de-identified header line, pseudonym and study date, and keyed hashes of what was removed."""
    originals = identifying_values(ds)  # before apply() changes ds in place
    try:
        deidentified = deid.apply(ds, clean_pixel_data=blanked)
    except DeidError as exc:
        raise _Outcome(REJECTED, str(exc)) from exc
    result.patient_id = deidentified.patient_pseudonym
    result.phi_blanked = deidentified.phi_blanked
    study_date = parse_dicom_date(str(deidentified.dataset.get("StudyDate") or ""))
    result.fields["study_date"] = study_date.isoformat() if study_date else None
    header, dropped = header_json(deidentified.dataset, BULK_BYTES)
    result.phi_hashes = frozenset(keyed_hashes(ctx.key, originals, header))
    result.header_line = json.dumps(
        {"image_id": result.image_id, "header": header, "dropped_bulk": dropped}, separators=(",", ":")
    )


def _ingest_png(ctx: WorkerContext, result: FileResult, data: bytes, deid: Deidentifier) -> None:
    """A ChestX-ray14-style PNG: pixels only; patient, age, sex and view come from the labels table."""
    result.source_format = "png"
    result.image_id = deid.image_id(f"path:{result.path}")
    result.fields = {"photometric": "PNG", "modality": None, "study_date": None}
    _ingest_pixels(ctx, result, decode_png(data, ctx.work_side, ctx.limits.max_frame_bytes), flagged=False)
    result.header_line = json.dumps({"image_id": result.image_id, "header": {}, "dropped_bulk": []})


def _ingest_pixels(ctx: WorkerContext, result: FileResult, decoded: Decoded, flagged: bool) -> bool:
    """Standardize, screen for text, resize; returns whether regions were blanked."""
    cfg = ctx.config
    # The detector always sees the linear (percentile) standardization: histogram equalization would lift
    # flat anatomy into glyph-like contrast, and the detector must not depend on the output's tone curve.
    image, ordered = percentile_standardize(decoded.pixels, cfg.percentile_low, cfg.percentile_high)
    finding = detect_text(image, cfg.text_min_glyphs, cfg.text_contrast)
    result.header_flag = flagged
    result.text_glyphs = finding.glyphs
    blanked = False
    if flagged or finding.has_text:
        why = []
        if flagged:
            why.append("BurnedInAnnotation is YES")
        if finding.has_text:
            why.append(f"text detected ({finding.glyphs} glyphs on a line)")
        if cfg.burned_in == "quarantine":
            raise _Outcome(QUARANTINED, "burned-in text: " + " and ".join(why))
        image = blank_regions(image, cfg.blank_regions)
        again = detect_text(image, cfg.text_min_glyphs, cfg.text_contrast)
        if again.has_text:
            raise _Outcome(
                QUARANTINED, f"burned-in text remains after blanking ({again.glyphs} glyphs on a line)"
            )
        blanked = True
    if cfg.intensity == "landmarks":
        # Rank-based, so equal to standardizing the decoded values directly (up to the clipped tails).
        if blanked:  # the blanked regions change the histogram: sample the image again
            image = standardize(image, "landmarks", cfg.percentile_low, cfg.percentile_high)
        else:
            knots = standard_knots(ordered, "landmarks", cfg.percentile_low, cfg.percentile_high)
            image = apply_knots(image, knots)
    sized = resize(image, cfg.image_size, cfg.aspect)
    result.fields["pixel_mean"] = round(float(sized.mean()), 5)
    result.fields["pixel_std"] = round(float(sized.std()), 5)
    result.image = quantize(sized, cfg.dtype)
    result.outcome = INGESTED
    return blanked


def reason_category(reason: str) -> str:
    """A reason without its counts (so '12 glyphs' groups with '25 glyphs'), in characters a metric name
    may hold (MLflow allows letters, digits and ``_-. :/``)."""
    text = re.sub(r"[^A-Za-z0-9_\-. :/]", "", re.sub(r"\d+", "N", reason))
    return re.sub(r"\s+", " ", text).strip()
