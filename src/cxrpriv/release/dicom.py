"""One released DICOM file: the de-identified header ingest kept (DICOM JSON) around the stored, possibly
anonymized, pixels.

What the release changes in the header, and why:

- the pixel description is the stored image's: MONOCHROME2 (ingest stores display orientation), the stored
  Rows and Columns, 8 or 16 bits allocated and stored; the modality LUT becomes the identity (stored values
  are standardized, not detector values) and windows, LUTs and pixel-value ranges of the original go;
- PixelSpacing, ImagerPixelSpacing and NominalScannedPixelSpacing scale by the resize factor from the
  original Rows and Columns (under ingest's aspect policy), or go when that factor is unknown;
- ImageType DERIVED\\SECONDARY, a DerivationDescription naming the anonymization, BurnedInAnnotation NO;
- new SOP Instance and Series Instance UIDs (``2.25.<integer>`` from an HMAC under the key of the method and
  the image's pseudonym or the de-identified series): deterministic, and new because the pixels are new;
- Type 2 attributes that the allowlist removed come back empty, so the file is a valid instance of its IOD.

The file is explicit VR little endian, uncompressed, with a PS3.10 file meta header.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from cxrpriv.ingest.keys import DeidKey

IMAGE_TYPE = ("DERIVED", "SECONDARY")
SPACING_KEYWORDS = ("PixelSpacing", "ImagerPixelSpacing", "NominalScannedPixelSpacing")
# Describe the original detector values, not the standardized stored ones.
REMOVED_KEYWORDS = (
    "ModalityLUTSequence",
    "VOILUTSequence",
    "VOILUTFunction",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "PixelAspectRatio",
    "PlanarConfiguration",
    "NumberOfFrames",
)
# Type 2 attributes of the CR/DX IODs' Patient, General Study, General Series, General Equipment and
# General Image modules that the allowlist removes: present and empty, as PS3.3 requires.
EMPTY_TYPE2_KEYWORDS = (
    "PatientBirthDate",
    "ReferringPhysicianName",
    "StudyID",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "SeriesNumber",
    "InstanceNumber",
    "Manufacturer",
    "PatientSex",
    "PatientOrientation",
)
# The DX IODs' Type 2 attributes of DX Positioning and Acquisition Context (not part of CR or SC).
DX_EMPTY_TYPE2_KEYWORDS = ("PositionerType", "AcquisitionContextSequence")
DX_CLASSES = frozenset({"1.2.840.10008.5.1.4.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1.1"})
# Everything the release itself sets (the audit allows these besides the ingest allowlist).
SET_KEYWORDS = (
    "ImageType",
    "DerivationDescription",
    "BurnedInAnnotation",
    "PhotometricInterpretation",
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleIntercept",
    "RescaleSlope",
    "RescaleType",
    "PresentationLUTShape",
    "SOPInstanceUID",
    "SeriesInstanceUID",
    "PixelData",
    "WindowCenter",
    "WindowWidth",
    "ConversionType",  # only in the Secondary Capture header of an image ingested without one (PNG)
)
DTYPE_BITS = {"uint8": 8, "uint16": 16}


@dataclass(frozen=True)
class ReleasedImage:
    """What the header needs to know besides the header: the image, its name and how it was made."""

    image_id: str
    patient_id: str  # pseudonym
    pixels: np.ndarray  # [rows, columns] uint8 or uint16, display orientation
    derivation: str  # DerivationDescription
    method: str  # the anonymization method (enters the new UIDs)
    aspect: str | None  # ingest's aspect policy (None: unknown)


def derived_uid(key: DeidKey, purpose: str, *parts: str) -> str:
    """``2.25.<128-bit integer>`` from the HMAC of ``parts`` under the key (at most 44 characters)."""
    digest = key.digest(purpose, "\x00".join(parts))
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def release_uids(key: DeidKey, header: Dataset, image: ReleasedImage) -> tuple[str, str]:
    """The new (SOP Instance UID, Series Instance UID) of a released image."""
    series = str(header.get("SeriesInstanceUID", "") or image.image_id)
    return (
        derived_uid(key, "release-sop", image.method, image.image_id),
        derived_uid(key, "release-series", image.method, series),
    )


def spacing_factors(
    header: Dataset, rows: int, columns: int, aspect: str | None
) -> tuple[float, float] | None:
    """How much farther apart (row, column) the stored pixels are than the original's; None if unknown."""
    original_rows = int(header.get("Rows", 0) or 0)
    original_columns = int(header.get("Columns", 0) or 0)
    if not original_rows or not original_columns:
        return None
    if aspect == "stretch":
        return original_rows / rows, original_columns / columns
    if original_rows == original_columns or aspect == "pad":
        side = max(original_rows, original_columns)
        return side / rows, side / columns
    if aspect == "crop":
        side = min(original_rows, original_columns)
        return side / rows, side / columns
    return None


def _scale_spacing(ds: Dataset, factors: tuple[float, float] | None) -> None:
    for keyword in SPACING_KEYWORDS:
        if keyword not in ds:
            continue
        values = ds[keyword].value
        if factors is None or values is None or len(values) != 2:
            del ds[keyword]
            continue
        setattr(ds, keyword, [f"{float(v) * f:.6g}" for v, f in zip(values, factors, strict=True)])


def _set_pixels(ds: Dataset, pixels: np.ndarray) -> None:
    dtype = str(pixels.dtype)
    if dtype not in DTYPE_BITS or pixels.ndim != 2:
        raise ValueError(f"stored images must be 2-D uint8 or uint16, not {pixels.ndim}-D {dtype}")
    bits = DTYPE_BITS[dtype]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(n) for n in pixels.shape)
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"
    ds.PresentationLUTShape = "IDENTITY"
    # The full range of the stored values (a For Presentation DX image needs a VOI window).
    ds.WindowCenter = str((2**bits) // 2)
    ds.WindowWidth = str(2**bits)
    if "PixelIntensityRelationshipSign" in ds:
        ds.PixelIntensityRelationshipSign = -1  # MONOCHROME2 of a radiograph: brighter is less beam intensity
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<")).tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"


def _secondary_capture(ds: Dataset, image: ReleasedImage, key: DeidKey) -> None:
    """The identity of an image ingested without a DICOM header (a PNG): a Secondary Capture instance of
    its pseudonymous patient, one keyed study per patient."""
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.Modality = "OT"
    ds.ConversionType = "WSD"  # workstation: the image was converted, not acquired
    ds.PatientID = ds.PatientName = image.patient_id
    ds.StudyInstanceUID = derived_uid(key, "release-study", image.patient_id)


def _add_empty_type2(ds: Dataset) -> None:
    keywords: tuple[str, ...] = EMPTY_TYPE2_KEYWORDS
    if str(ds.get("SOPClassUID", "")) in DX_CLASSES:
        keywords += DX_EMPTY_TYPE2_KEYWORDS
    for keyword in keywords:
        if keyword not in ds:
            setattr(ds, keyword, [] if keyword.endswith("Sequence") else None)


def build_dataset(header_json: dict[str, Any], image: ReleasedImage, key: DeidKey) -> Dataset:
    """The released dataset of one image (file meta included)."""
    header = Dataset.from_json(header_json)
    ds = Dataset.from_json(header_json)
    if "SOPClassUID" not in ds:
        _secondary_capture(ds, image, key)
    for keyword in REMOVED_KEYWORDS:
        if keyword in ds:
            del ds[keyword]
    rows, columns = image.pixels.shape
    _scale_spacing(ds, spacing_factors(header, rows, columns, image.aspect))
    _set_pixels(ds, image.pixels)
    ds.ImageType = list(IMAGE_TYPE)
    ds.DerivationDescription = image.derivation
    ds.BurnedInAnnotation = "NO"
    ds.SOPInstanceUID, ds.SeriesInstanceUID = release_uids(key, header, image)
    _add_empty_type2(ds)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "CXRPRIV_RELEASE"
    ds.file_meta = meta
    return ds


def write_dicom(path: Path, header_json: dict[str, Any], image: ReleasedImage, key: DeidKey) -> Path:
    """Write one released image as a PS3.10 file (explicit VR little endian, uncompressed)."""
    ds = build_dataset(header_json, image, key)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
