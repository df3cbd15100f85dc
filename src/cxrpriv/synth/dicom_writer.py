"""Write synthetic radiographs as CR/DX DICOM files, the way a PACS export would look.

The files are meant to exercise a later ingest and de-identification stage, so they carry the
identifying attributes a real export carries, in the places real exports put them: top-level
patient/study attributes, nested sequences (Request Attributes, Other Patient IDs), a private
block, and optionally text burned into the pixels. Everything is derived from the arguments, so
identical inputs give byte-identical files (no clock, no random UIDs).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom import uid as dcm_uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.valuerep import format_number_as_ds

TRANSFER_SYNTAX_UIDS: dict[str, dcm_uid.UID] = {
    "explicit_le": dcm_uid.ExplicitVRLittleEndian,
    "implicit_le": dcm_uid.ImplicitVRLittleEndian,
    "deflated_le": dcm_uid.DeflatedExplicitVRLittleEndian,
    "j2k_lossless": dcm_uid.JPEG2000Lossless,
    "rle_lossless": dcm_uid.RLELossless,
}
# Pinned rather than "first available": different plugins may emit different (equally valid) bytes,
# and pydicom's pure-Python RLE encoder is ~10x slower than pylibjpeg-rle.
_ENCODING_PLUGIN: dict[str, str] = {"j2k_lossless": "pylibjpeg", "rle_lossless": "pylibjpeg"}

SOP_CLASS_BY_MODALITY: dict[str, dcm_uid.UID] = {
    "CR": dcm_uid.ComputedRadiographyImageStorage,
    "DX": dcm_uid.DigitalXRayImageStorageForPresentation,
}
PHOTOMETRICS = ("MONOCHROME1", "MONOCHROME2")
VOI_KINDS = ("window", "lut", "none")
CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
OFF_SCOPE_KINDS = ("non_chest", "rgb_secondary_capture", "multi_frame", "truncated", "missing_pixel_data")

# SNOMED CT codes of CID 4031 (the codes DICOM PS3.16 Annex L maps BodyPartExamined values to).
_ANATOMY_CODES: dict[str, tuple[str, str]] = {
    "CHEST": ("43799004", "Chest"),
    "HAND": ("85562004", "Hand"),
    "KNEE": ("72696002", "Knee"),
    "FOOT": ("56459004", "Foot"),
    "PELVIS": ("12921003", "Pelvis"),
}
_PAIRED_BODY_PARTS = frozenset({"HAND", "KNEE", "FOOT"})
_VIEW_CODES: dict[str, tuple[str, str]] = {
    "PA": ("399348003", "postero-anterior"),
    "AP": ("399182009", "antero-posterior"),
}
PRIVATE_GROUP = 0x0019
PRIVATE_CREATOR = "CXRPRIV_SYNTH_VENDOR"
IMPLEMENTATION_VERSION_NAME = "CXRPRIV_0_1"
# Fraction of the encoded file kept for the "truncated" off-scope kind.
TRUNCATE_FRACTION = 0.6


def _stable_int(*parts: object) -> int:
    """A platform-independent integer from the parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode("utf-8")).digest(), "big")


def derive_uid(*parts: object) -> str:
    """Deterministic "2.25.<int>" UID (PS3.5 B.2 UUID-derived form) from a hash of the parts.

    128 bits of SHA-256 keep the UID at most 44 characters (limit 64); str(int) never has leading
    zeros, so the UID is valid.
    """
    return f"2.25.{_stable_int(*parts) >> 128}"


IMPLEMENTATION_CLASS_UID = derive_uid("cxrpriv", "implementation")


# The longest value each string field's VR allows (SH 16, LO 64, ST 1024 characters).
_HEADER_LENGTH_LIMITS = {
    "accession_number": 16,
    "station_name": 16,
    "patient_id": 64,
    "institution_name": 64,
    "study_description": 64,
    "manufacturer": 64,
    "model_name": 64,
    "device_serial_number": 64,
    "institution_address": 1024,
}


@dataclass(frozen=True)
class PatientStudyHeader:
    """Identity, study and equipment attributes of one radiograph (all identifying, on purpose)."""

    patient_name: str  # "FAMILY^GIVEN" DICOM PN
    patient_id: str  # MRN-like, e.g. "MRN00412345"
    birth_date: datetime.date
    sex: str  # "M" / "F"
    age_years: int  # -> PatientAge "057Y"
    accession_number: str
    institution_name: str
    institution_address: str
    referring_physician: str  # PN
    performing_physician: str  # PN
    operator_name: str  # PN
    station_name: str
    study_date: datetime.date
    study_time: datetime.time
    study_description: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    series_number: int
    instance_number: int
    view_position: str  # "PA" or "AP"
    modality: str  # "CR" or "DX"
    manufacturer: str
    model_name: str
    device_serial_number: str
    pixel_spacing_mm: float
    body_part: str = "CHEST"
    laterality: str | None = None  # "L"/"R" for paired body parts (HAND, KNEE, FOOT); None otherwise

    def __post_init__(self) -> None:
        problems = [*self._value_problems(), *self._length_problems(), *self._uid_problems()]
        if problems:
            raise ValueError("PatientStudyHeader: " + "; ".join(problems))

    def _value_problems(self) -> list[str]:
        problems: list[str] = []
        if self.sex not in ("M", "F", "O"):
            problems.append(f"sex {self.sex!r} not in M/F/O")
        if not 0 <= self.age_years <= 999:
            problems.append(f"age_years {self.age_years} outside 0..999")
        if self.view_position not in _VIEW_CODES:
            problems.append(f"view_position {self.view_position!r} not in {sorted(_VIEW_CODES)}")
        if self.modality not in SOP_CLASS_BY_MODALITY:
            problems.append(f"modality {self.modality!r} not in {sorted(SOP_CLASS_BY_MODALITY)}")
        if self.body_part not in _ANATOMY_CODES:
            problems.append(f"body_part {self.body_part!r} not in {sorted(_ANATOMY_CODES)}")
        if self.laterality not in (None, "L", "R"):
            problems.append(f"laterality {self.laterality!r} not in None/L/R")
        if not self.pixel_spacing_mm > 0:
            problems.append("pixel_spacing_mm must be positive")
        return problems

    def _length_problems(self) -> list[str]:
        # pydicom only warns on over-long values by default; a silently invalid SH/LO would
        # surface much later as an ingest failure that is hard to trace back here.
        return [
            f"{name} longer than {limit} characters"
            for name, limit in _HEADER_LENGTH_LIMITS.items()
            if len(getattr(self, name)) > limit
        ]

    def _uid_problems(self) -> list[str]:
        return [
            f"{name} {getattr(self, name)!r} is not a valid UID"
            for name in ("study_instance_uid", "series_instance_uid", "sop_instance_uid")
            if not dcm_uid.UID(getattr(self, name)).is_valid
        ]


@dataclass(frozen=True)
class PixelEncoding:
    """How the pixels are stored: photometric, depth, Modality/VOI LUTs, transfer syntax."""

    photometric: str  # "MONOCHROME1" or "MONOCHROME2"
    bits_stored: int  # 10..16 (bits allocated 16); unsigned
    rescale_slope: float
    rescale_intercept: float
    voi: str  # "window" (WindowCenter/Width), "lut" (VOILUTSequence), "none"
    transfer_syntax: str  # one of TRANSFER_SYNTAX_UIDS
    burned_in_annotation: str | None  # "YES", "NO", or None (attribute absent)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.photometric not in PHOTOMETRICS:
            problems.append(f"photometric {self.photometric!r} not in {PHOTOMETRICS}")
        if not 10 <= self.bits_stored <= 16:
            problems.append(f"bits_stored {self.bits_stored} outside 10..16")
        if not self.rescale_slope > 0:
            # A non-positive slope would silently flip the MONOCHROME1/2 meaning of the data.
            problems.append("rescale_slope must be positive")
        if self.voi not in VOI_KINDS:
            problems.append(f"voi {self.voi!r} not in {VOI_KINDS}")
        if self.transfer_syntax not in TRANSFER_SYNTAX_UIDS:
            problems.append(f"transfer_syntax {self.transfer_syntax!r} not in {tuple(TRANSFER_SYNTAX_UIDS)}")
        if self.burned_in_annotation not in (None, "YES", "NO"):
            problems.append(f"burned_in_annotation {self.burned_in_annotation!r} not in None/YES/NO")
        if problems:
            raise ValueError("PixelEncoding: " + "; ".join(problems))

    @property
    def max_stored(self) -> int:
        return (1 << self.bits_stored) - 1


# --------------------------------------------------------------------------- pixel values


def quantize(image: np.ndarray, encoding: PixelEncoding) -> np.ndarray:
    """The stored pixel values (uint16) that ``write_radiograph`` writes for ``image``.

    Full range: 0 -> 0, 1 -> 2**bits_stored - 1 in attenuation order; MONOCHROME1 then inverts
    so that radiolucent (dark-displayed) tissue gets the high stored values.
    """
    arr = _check_image(image)
    q = np.rint(np.clip(arr, 0.0, 1.0) * encoding.max_stored).astype(np.uint16)
    if encoding.photometric == "MONOCHROME1":
        q = (encoding.max_stored - q).astype(np.uint16)
    return q


def _check_image(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2 or min(arr.shape) < 1:
        raise ValueError(f"expected a non-empty 2-D image, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"expected a float image with values in [0, 1], got dtype {arr.dtype}")
    if not np.isfinite(arr).all():
        raise ValueError("image contains NaN or infinite values")
    return arr


def _ds(value: float) -> str:
    """DS string of at most 16 characters (pydicom's own formatter, so values round-trip)."""
    return format_number_as_ds(float(value))


def _window(stored: np.ndarray, encoding: PixelEncoding) -> tuple[float, float]:
    """Center/width of a linear window (PS3.3 C.11.2.1.2.1) spanning the whole rescaled range."""
    lo = float(stored.min()) * encoding.rescale_slope + encoding.rescale_intercept
    hi = float(stored.max()) * encoding.rescale_slope + encoding.rescale_intercept
    width = max(hi - lo, 1.0) + 1.0
    center = lo + 0.5 + (width - 1.0) / 2.0
    return center, width


def _voi_lut_item(stored: np.ndarray, encoding: PixelEncoding) -> Dataset:
    """A sigmoid VOI LUT with one entry per integer of the rescaled (Modality LUT output) range."""
    lo = float(stored.min()) * encoding.rescale_slope + encoding.rescale_intercept
    hi = float(stored.max()) * encoding.rescale_slope + encoding.rescale_intercept
    # The descriptor's first-mapped value is US for unsigned pixel data, so the LUT domain cannot
    # start below 0; values under it clamp to the first entry, which is what viewers do anyway.
    first = max(0, int(np.floor(lo)))
    last = min(first + 65535, int(np.ceil(hi)))
    if last < 0:
        raise ValueError("VOI LUT needs a Modality LUT output range that reaches 0 or above")
    # At least 2 entries: with one entry LUTData would have to be US rather than OW (PS3.3 C.11.1.1.1).
    last = max(last, first + 1)
    n_entries = last - first + 1
    out_bits = 12
    t = (np.arange(n_entries, dtype=np.float64)) / (n_entries - 1)
    gain = 8.0
    sig = 1.0 / (1.0 + np.exp(-gain * (t - 0.5)))
    lo_sig, hi_sig = 1.0 / (1.0 + np.exp(gain / 2)), 1.0 / (1.0 + np.exp(-gain / 2))
    lut = np.rint((sig - lo_sig) / (hi_sig - lo_sig) * ((1 << out_bits) - 1)).astype("<u2")

    item = Dataset()
    # 65536 entries is written as 0 (PS3.3 C.11.2.1.1).
    item.add_new(0x00283002, "US", [n_entries % 65536, first, out_bits])  # LUTDescriptor
    item.LUTExplanation = "SIGMOID"
    item.add_new(0x00283006, "OW", lut.tobytes())  # LUTData
    return item


# --------------------------------------------------------------------------- header


def _da(d: datetime.date) -> str:
    return d.strftime("%Y%m%d")


def _tm(t: datetime.time | datetime.datetime) -> str:
    return t.strftime("%H%M%S.%f" if t.microsecond else "%H%M%S")


def _dt(t: datetime.datetime) -> str:
    return _da(t) + _tm(t)


def _code_item(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = "SCT"
    item.CodeMeaning = meaning
    return item


def _character_set(header: PatientStudyHeader) -> str:
    """Latin-1 as most PACS exports use, UTF-8 only where a name needs it."""
    text = "".join(str(v) for v in vars(header).values() if isinstance(v, str))
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return "ISO_IR 192"
    return "ISO_IR 100"


def _file_meta(sop_class: str, header: PatientStudyHeader, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = dcm_uid.UID(sop_class)
    meta.MediaStorageSOPInstanceUID = dcm_uid.UID(header.sop_instance_uid)
    meta.TransferSyntaxUID = TRANSFER_SYNTAX_UIDS[transfer_syntax]
    # Set explicitly: pydicom would otherwise stamp its own implementation UID/version.
    meta.ImplementationClassUID = dcm_uid.UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    meta.SourceApplicationEntityTitle = "CXRPRIV"
    return meta


def _identity_dataset(header: PatientStudyHeader, sop_class: str, transfer_syntax: str) -> Dataset:
    """Patient, study, series, equipment and request attributes shared by every file written here."""
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, header, transfer_syntax)
    ds.SpecificCharacterSet = _character_set(header)
    _set_dates_and_times(ds, header)
    _set_study_and_staff(ds, header)
    _set_patient(ds, header)
    _set_equipment(ds, header)
    _set_identifiers_and_request(ds, header, sop_class)
    return ds


def _set_dates_and_times(ds: Dataset, header: PatientStudyHeader) -> None:
    study_dt = datetime.datetime.combine(header.study_date, header.study_time)
    # Acquisition a few minutes after the study was opened, content a few seconds later, all
    # derived from the SOP instance so that the timeline is stable across runs.
    jitter = _stable_int("acq-time", header.sop_instance_uid)
    acquisition_dt = study_dt + datetime.timedelta(seconds=60 + jitter % 240)
    content_dt = acquisition_dt + datetime.timedelta(seconds=5 + (jitter >> 16) % 30)

    ds.InstanceCreationDate = _da(content_dt)
    ds.InstanceCreationTime = _tm(content_dt)
    ds.StudyDate = _da(study_dt)
    ds.SeriesDate = _da(study_dt)
    ds.AcquisitionDate = _da(acquisition_dt)
    ds.ContentDate = _da(content_dt)
    ds.AcquisitionDateTime = _dt(acquisition_dt)
    ds.StudyTime = _tm(study_dt)
    ds.SeriesTime = _tm(study_dt)
    ds.AcquisitionTime = _tm(acquisition_dt)
    ds.ContentTime = _tm(content_dt)


def _set_study_and_staff(ds: Dataset, header: PatientStudyHeader) -> None:
    ds.AccessionNumber = header.accession_number
    ds.Modality = header.modality
    ds.Manufacturer = header.manufacturer
    ds.InstitutionName = header.institution_name
    ds.InstitutionAddress = header.institution_address
    ds.ReferringPhysicianName = header.referring_physician
    ds.StationName = header.station_name
    ds.StudyDescription = header.study_description
    ds.SeriesDescription = f"{header.body_part} {header.view_position}"
    ds.InstitutionalDepartmentName = "Radiology"
    ds.PerformingPhysicianName = header.performing_physician
    ds.OperatorsName = header.operator_name
    ds.ManufacturerModelName = header.model_name


def _set_patient(ds: Dataset, header: PatientStudyHeader) -> None:
    ds.PatientName = header.patient_name
    ds.PatientID = header.patient_id
    issuer = f"{header.institution_name[:56]} MRN"
    ds.IssuerOfPatientID = issuer
    ds.PatientBirthDate = _da(header.birth_date)
    ds.PatientSex = header.sex
    ds.PatientAge = f"{header.age_years:03d}Y"
    # A second, nested copy of the MRN, as merged-record exports carry.
    other_id = Dataset()
    other_id.PatientID = header.patient_id
    other_id.IssuerOfPatientID = issuer
    other_id.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = DicomSequence([other_id])


def _set_equipment(ds: Dataset, header: PatientStudyHeader) -> None:
    ds.BodyPartExamined = header.body_part
    ds.DeviceSerialNumber = header.device_serial_number
    ds.SoftwareVersions = "SYNTH 4.2.1"
    ds.ProtocolName = f"{header.body_part} {header.view_position}"


def _set_identifiers_and_request(ds: Dataset, header: PatientStudyHeader, sop_class: str) -> None:
    """UIDs and numbers, the request that ordered the study, and the anatomic region."""
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = header.sop_instance_uid
    ds.StudyInstanceUID = header.study_instance_uid
    ds.SeriesInstanceUID = header.series_instance_uid
    ds.StudyID = header.accession_number[-16:]
    ds.SeriesNumber = header.series_number
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = header.instance_number

    request = Dataset()
    request.AccessionNumber = header.accession_number
    request.StudyInstanceUID = header.study_instance_uid
    request.RequestedProcedureID = header.accession_number[-16:]
    request.RequestedProcedureDescription = header.study_description
    request.ScheduledProcedureStepID = f"S{header.accession_number[-15:]}"
    request.ScheduledProcedureStepDescription = header.study_description
    ds.RequestAttributesSequence = DicomSequence([request])

    code, meaning = _ANATOMY_CODES[header.body_part]
    ds.AnatomicRegionSequence = DicomSequence([_code_item(code, meaning)])


def _add_acquisition(ds: Dataset, header: PatientStudyHeader) -> None:
    """Exposure and geometry attributes: departmental PA vs portable AP technique, per-image jitter."""
    rng = np.random.default_rng(_stable_int("exposure", header.sop_instance_uid))
    portable = header.view_position == "AP"
    kvp = (85.0 if portable else 120.0) + float(rng.integers(-5, 6))
    sid_mm = 1000.0 if portable else 1800.0
    tube_ma = int(rng.integers(160, 400))
    time_ms = int(rng.integers(4, 20))
    mas = tube_ma * time_ms / 1000.0
    ds.KVP = _ds(kvp)
    ds.DistanceSourceToDetector = _ds(sid_mm)
    ds.DistanceSourceToPatient = _ds(sid_mm - 250.0)
    ds.ExposureTime = time_ms
    ds.XRayTubeCurrent = tube_ma
    ds.Exposure = max(1, round(mas))
    ds.ExposureInuAs = round(mas * 1000)
    ds.FocalSpots = _ds(0.6 if portable else 1.2)
    ds.ImagerPixelSpacing = [_ds(header.pixel_spacing_mm)] * 2
    ds.ViewPosition = header.view_position
    ds.PatientOrientation = ["L", "F"]  # conventional display: patient's left to the right, feet down
    if header.body_part in _PAIRED_BODY_PARTS and header.laterality is not None:
        ds.Laterality = header.laterality
    if header.modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
        ds.ImageLaterality = header.laterality if header.body_part in _PAIRED_BODY_PARTS else "U"
        view_code, view_meaning = _VIEW_CODES[header.view_position]
        ds.ViewCodeSequence = DicomSequence([_code_item(view_code, view_meaning)])


def _add_private_block(ds: Dataset, header: PatientStudyHeader) -> None:
    rng = np.random.default_rng(_stable_int("processing", header.sop_instance_uid))
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(
        0x10,
        "LO",
        f"GA={rng.uniform(0.8, 1.4):.2f};EE={rng.uniform(0.2, 1.0):.2f};LUT=CHEST_STD;EQ=ON",
    )
    # Vendors do stash acquisition context (with identifiers) in private tags; a de-identifier
    # has to drop or clean these too.
    block.add_new(0x11, "LO", f"{header.station_name}/{header.accession_number}/{header.patient_id}"[:64])


def _add_image_pixel(ds: Dataset, rows: int, columns: int, encoding: PixelEncoding, modality: str) -> None:
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = encoding.photometric
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = encoding.bits_stored
    ds.HighBit = encoding.bits_stored - 1
    ds.PixelRepresentation = 0
    if encoding.burned_in_annotation is not None:
        ds.BurnedInAnnotation = encoding.burned_in_annotation
    ds.RescaleIntercept = _ds(encoding.rescale_intercept)
    ds.RescaleSlope = _ds(encoding.rescale_slope)
    ds.RescaleType = "US"
    ds.LossyImageCompression = "00"
    if modality == "DX":
        ds.PixelIntensityRelationship = "LOG"
        # +1: lower stored values mean less beam intensity, i.e. more attenuation (MONOCHROME1 here).
        ds.PixelIntensityRelationshipSign = 1 if encoding.photometric == "MONOCHROME1" else -1
        ds.PresentationLUTShape = "INVERSE" if encoding.photometric == "MONOCHROME1" else "IDENTITY"


def build_radiograph_dataset(
    image: np.ndarray, header: PatientStudyHeader, encoding: PixelEncoding
) -> Dataset:
    """The complete dataset (file meta included) with uncompressed Pixel Data."""
    return _build_dataset(quantize(image, encoding), header, encoding)


def _build_dataset(stored: np.ndarray, header: PatientStudyHeader, encoding: PixelEncoding) -> Dataset:
    sop_class = SOP_CLASS_BY_MODALITY[header.modality]
    ds = _identity_dataset(header, sop_class, encoding.transfer_syntax)
    _add_acquisition(ds, header)
    _add_image_pixel(ds, stored.shape[0], stored.shape[1], encoding, header.modality)
    ds.PixelSpacing = [_ds(header.pixel_spacing_mm)] * 2
    if encoding.voi == "window":
        center, width = _window(stored, encoding)
        ds.WindowCenter = _ds(center)
        ds.WindowWidth = _ds(width)
        ds.WindowCenterWidthExplanation = "FULL RANGE"
        ds.VOILUTFunction = "LINEAR"
    elif encoding.voi == "lut":
        ds.VOILUTSequence = DicomSequence([_voi_lut_item(stored, encoding)])
    _add_private_block(ds, header)
    ds.add_new(0x7FE00010, "OW", stored.astype("<u2").tobytes())
    return ds


def _encode(ds: Dataset, transfer_syntax: str, frames: np.ndarray | None = None) -> bytes:
    """Compress (for J2K/RLE) and serialise ``ds``; deterministic for identical datasets."""
    if transfer_syntax in _ENCODING_PLUGIN:
        arr = frames if frames is not None else ds.pixel_array
        ds.compress(
            TRANSFER_SYNTAX_UIDS[transfer_syntax],
            arr,
            encoding_plugin=_ENCODING_PLUGIN[transfer_syntax],
            # Default True would replace the SOP Instance UID with a random one.
            generate_instance_uid=False,
        )
    else:
        ds.file_meta.TransferSyntaxUID = TRANSFER_SYNTAX_UIDS[transfer_syntax]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def write_radiograph(
    path: Path, image: np.ndarray, header: PatientStudyHeader, encoding: PixelEncoding
) -> None:
    """Write ``image`` (float, [0, 1], 1 = most attenuating) as a CR/DX DICOM file at ``path``."""
    stored = quantize(image, encoding)
    ds = _build_dataset(stored, header, encoding)
    Path(path).write_bytes(_encode(ds, encoding.transfer_syntax, stored))


# --------------------------------------------------------------------------- burned-in text


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's embedded Aileron (needs FreeType); no font files are read from disk or network.
    return ImageFont.load_default(size=size)


def _text_mask(lines: Sequence[str], font_px: int) -> np.ndarray:
    """Mask of the text block (1.0 on glyphs, 0.0 elsewhere), padding included."""
    font = _font(font_px)
    line_h = round(font_px * 1.25)
    pad = max(1, round(font_px * 0.3))
    boxes = [font.getbbox(line) for line in lines]
    text_w = max(int(np.ceil(b[2])) for b in boxes)
    canvas = Image.new("L", (text_w + 2 * pad, line_h * len(lines) + 2 * pad), 0)
    draw = ImageDraw.Draw(canvas)
    # Crisp, non-antialiased glyphs like a scanner's overlay: the text is exactly full-bright, and
    # the result depends less on the FreeType version's antialiasing.
    draw.fontmode = "1"
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * line_h), line, fill=255, font=font)
    return np.asarray(canvas, dtype=np.float32) / 255.0


def _quadrant(shape: tuple[int, int], corner: str) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the image quadrant of ``corner``."""
    h, w = shape
    rows = (0, h // 2) if corner.startswith("top") else (h - h // 2, h)
    cols = (0, w // 2) if corner.endswith("left") else (w - w // 2, w)
    return rows[0], rows[1], cols[0], cols[1]


def burn_in_text_with_box(
    image: np.ndarray, lines: Sequence[str], corner: str, scale: float = 1.0
) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Like ``burn_in_text``, also returning the (row0, row1, col0, col1) box that was painted.

    The box never leaves the corner's quadrant: the font shrinks to fit, and what still does not
    fit is cut, so the answer key of where identifying text lies stays a simple rectangle.
    """
    if corner not in CORNERS:
        raise ValueError(f"corner {corner!r} not in {CORNERS}")
    out = np.array(_check_image(image), dtype=np.float32, copy=True)
    lines = [line for line in lines if line]
    if not lines:
        return out, None
    h, w = out.shape
    q_r0, q_r1, q_c0, q_c1 = _quadrant((h, w), corner)
    margin = max(1, round(0.02 * min(h, w)))
    avail_h, avail_w = (q_r1 - q_r0) - margin, (q_c1 - q_c0) - margin
    if avail_h < 1 or avail_w < 1:
        return out, None
    min_px = 7  # smaller bitmap glyphs stop being legible
    font_px = max(min_px, round(0.03 * h * scale))
    mask = _text_mask(lines, font_px)
    while font_px > min_px and (mask.shape[0] > avail_h or mask.shape[1] > avail_w):
        font_px -= 1
        mask = _text_mask(lines, font_px)
    mask = mask[:avail_h, :avail_w]
    box_h, box_w = mask.shape
    r0 = q_r0 + margin if corner.startswith("top") else q_r1 - margin - box_h
    c0 = q_c0 + margin if corner.endswith("left") else q_c1 - margin - box_w
    # Opaque dark box (0 = least attenuating, displayed black) under full-bright text.
    out[r0 : r0 + box_h, c0 : c0 + box_w] = mask
    return out, (r0, r0 + box_h, c0, c0 + box_w)


def burn_in_text(image: np.ndarray, lines: Sequence[str], corner: str, scale: float = 1.0) -> np.ndarray:
    """A copy of ``image`` with ``lines`` as bright text on a dark box in ``corner``."""
    return burn_in_text_with_box(image, lines, corner, scale)[0]


# --------------------------------------------------------------------------- off-scope files


def _phantom(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Crude but recognisable float images in [0, 1] (1 = attenuating) for off-scope content."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    dx, dy = rng.uniform(-0.03, 0.03, size=2)
    x, y = x + dx, y + dy
    img = np.full((size, size), 0.05, dtype=np.float32)
    if kind == "chest":
        img[((x - 0.5) / 0.42) ** 2 + ((y - 0.55) / 0.5) ** 2 < 1] = 0.55
        for cx in (0.32, 0.68):
            img[((x - cx) / 0.14) ** 2 + ((y - 0.5) / 0.3) ** 2 < 1] = 0.2
        img[(np.abs(x - 0.5) < 0.04) & (y > 0.1)] = 0.85
    elif kind == "hand":
        img[((x - 0.5) / 0.22) ** 2 + ((y - 0.72) / 0.2) ** 2 < 1] = 0.45
        for i, cx in enumerate((0.3, 0.4, 0.5, 0.6, 0.72)):
            top = 0.18 + 0.05 * abs(i - 2) + (0.2 if i == 4 else 0.0)
            finger = (np.abs(x - cx) < 0.035) & (y > top) & (y < 0.65)
            img[finger] = 0.45
            img[finger & (np.abs(x - cx) < 0.015)] = 0.85
    else:  # knee
        img[np.abs(x - 0.5) < 0.25] = 0.4
        img[(np.abs(x - 0.5) < 0.1) & (y < 0.45)] = 0.85
        img[(np.abs(x - 0.5) < 0.12 - 0.15 * np.clip(0.52 - y, 0, 1)) & (y > 0.52)] = 0.85
        img[((x - 0.62) / 0.06) ** 2 + ((y - 0.42) / 0.07) ** 2 < 1] = 0.8
    img += rng.normal(0.0, 0.01, size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def _screenshot(header: PatientStudyHeader, rng: np.random.Generator, size: int) -> np.ndarray:
    """An RGB viewer screenshot: title bar with the patient's name, side panel, image pane."""
    canvas = Image.new("RGB", (size, size), (38, 40, 46))
    draw = ImageDraw.Draw(canvas)
    bar = max(8, size // 12)
    draw.rectangle((0, 0, size, bar), fill=(24, 70, 140))
    font = _font(max(6, round(bar * 0.6)))
    draw.text(
        (4, max(0, bar // 6)), f"{header.patient_name}  {header.patient_id}", fill=(240, 240, 240), font=font
    )
    panel = size // 4
    for i in range(4):
        top = bar + 6 + i * (bar + 4)
        draw.rectangle((4, top, panel - 4, top + bar), fill=(70, 74, 84))
    pane = size - panel - 4
    gray = (_phantom("chest", pane, rng) * 255).astype(np.uint8)
    canvas.paste(Image.fromarray(gray).convert("RGB"), (panel, bar + 2))
    return np.asarray(canvas, dtype=np.uint8)


def _write_secondary_capture(
    path: Path, header: PatientStudyHeader, rng: np.random.Generator, size: int
) -> None:
    ds = _identity_dataset(header, dcm_uid.SecondaryCaptureImageStorage, "explicit_le")
    ds.Modality = "OT"
    ds.ConversionType = "WSD"
    rgb = _screenshot(header, rng, size)
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rgb.shape[:2]
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "YES"
    ds.add_new(0x7FE00010, "OB", rgb.tobytes())
    Path(path).write_bytes(_encode(ds, "explicit_le"))


_OFF_SCOPE_ENCODING = PixelEncoding(
    photometric="MONOCHROME2",
    bits_stored=12,
    rescale_slope=1.0,
    rescale_intercept=0.0,
    voi="window",
    transfer_syntax="explicit_le",
    burned_in_annotation="NO",
)


def write_off_scope_file(
    path: Path,
    kind: str,
    header: PatientStudyHeader,
    rng: np.random.Generator,
    size: int,
    *,
    image: np.ndarray | None = None,
) -> str:
    """Write one file an ingest stage must reject; return a short reason.

    ``image`` (optional, float [0, 1]) replaces the crude chest phantom for the kinds that hold a
    chest image ("multi_frame", "truncated", "missing_pixel_data"). All kinds carry the header's
    identifying values.
    """
    if kind not in OFF_SCOPE_KINDS:
        raise ValueError(f"kind {kind!r} not in {OFF_SCOPE_KINDS}")
    if size < 16:
        raise ValueError("size must be at least 16")
    path = Path(path)
    chest = image if image is not None else _phantom("chest", size, rng)

    if kind == "non_chest":
        part = str(rng.choice(["HAND", "KNEE"]))
        side = str(rng.choice(["L", "R"]))
        non_chest = replace(
            header,
            modality="CR",
            body_part=part,
            laterality=side,
            view_position="PA" if part == "HAND" else "AP",
            study_description=f"XR {part} {'LEFT' if side == 'L' else 'RIGHT'}",
        )
        write_radiograph(path, _phantom(part.lower(), size, rng), non_chest, _OFF_SCOPE_ENCODING)
        return f"non-chest body part {part}"

    if kind == "rgb_secondary_capture":
        _write_secondary_capture(path, header, rng, size)
        return "RGB secondary capture (SamplesPerPixel 3)"

    if kind == "multi_frame":
        dx_header = replace(header, modality="DX")
        shifts = [(0, 0), *(tuple(int(s) for s in rng.integers(-3, 4, size=2)) for _ in range(2))]
        frames = np.stack([quantize(np.roll(chest, s, axis=(0, 1)), _OFF_SCOPE_ENCODING) for s in shifts])
        ds = build_radiograph_dataset(chest, dx_header, _OFF_SCOPE_ENCODING)
        ds.NumberOfFrames = len(frames)
        ds.FrameIncrementPointer = 0x00181063  # -> FrameTime
        ds.FrameTime = _ds(100.0)
        ds.add_new(0x7FE00010, "OW", frames.astype("<u2").tobytes())
        path.write_bytes(_encode(ds, "explicit_le"))
        return f"multi-frame ({len(frames)} frames)"

    if kind == "truncated":
        data = _encode(build_radiograph_dataset(chest, header, _OFF_SCOPE_ENCODING), "explicit_le")
        path.write_bytes(data[: int(len(data) * TRUNCATE_FRACTION)])
        return "truncated file (pixel data incomplete)"

    # missing_pixel_data: all Image Pixel attributes promise an image that is not there.
    ds = build_radiograph_dataset(chest, header, _OFF_SCOPE_ENCODING)
    del ds.PixelData
    path.write_bytes(_encode(ds, "explicit_le"))
    return "no PixelData element"
