"""Tests of the synthetic cohort's DICOM writer: round trips, headers, determinism, off-scope files."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import UID

from cxrpriv.synth.dicom_writer import (
    CORNERS,
    IMPLEMENTATION_CLASS_UID,
    IMPLEMENTATION_VERSION_NAME,
    OFF_SCOPE_KINDS,
    PRIVATE_CREATOR,
    PRIVATE_GROUP,
    TRANSFER_SYNTAX_UIDS,
    PatientStudyHeader,
    PixelEncoding,
    burn_in_text,
    burn_in_text_with_box,
    derive_uid,
    quantize,
    write_off_scope_file,
    write_radiograph,
)

ROWS, COLS = 96, 80  # not square, so a rows/columns mix-up shows


def make_header(**overrides: object) -> PatientStudyHeader:
    values: dict[str, object] = {
        "patient_name": "DOE^JANE",
        "patient_id": "MRN00412345",
        "birth_date": datetime.date(1960, 3, 4),
        "sex": "F",
        "age_years": 57,
        "accession_number": "ACC201700012",
        "institution_name": "Saint Example Hospital",
        "institution_address": "1 Main Street, Springfield",
        "referring_physician": "SMITH^JOHN",
        "performing_physician": "JONES^ANN",
        "operator_name": "TECH^BOB",
        "station_name": "CXR-ROOM-2",
        "study_date": datetime.date(2017, 5, 6),
        "study_time": datetime.time(9, 30, 15),
        "study_description": "XR CHEST PA",
        "study_instance_uid": derive_uid("study", 1),
        "series_instance_uid": derive_uid("series", 1),
        "sop_instance_uid": derive_uid("sop", 1),
        "series_number": 2,
        "instance_number": 7,
        "view_position": "PA",
        "modality": "CR",
        "manufacturer": "ACME Imaging",
        "model_name": "XR-9000",
        "device_serial_number": "SN-00123",
        "pixel_spacing_mm": 0.143,
    }
    values.update(overrides)
    return PatientStudyHeader(**values)  # type: ignore[arg-type]


def make_encoding(**overrides: object) -> PixelEncoding:
    values: dict[str, object] = {
        "photometric": "MONOCHROME2",
        "bits_stored": 12,
        "rescale_slope": 1.0,
        "rescale_intercept": 0.0,
        "voi": "window",
        "transfer_syntax": "explicit_le",
        "burned_in_annotation": "NO",
    }
    values.update(overrides)
    return PixelEncoding(**values)  # type: ignore[arg-type]


def make_image(rows: int = ROWS, cols: int = COLS) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    img = 0.5 + 0.3 * np.sin(x / 7.0) * np.cos(y / 11.0) + 0.15 * (y / rows - 0.5)
    img += np.random.default_rng(0).normal(0.0, 0.01, img.shape).astype(np.float32)
    img[0, 0], img[-1, -1] = 0.0, 1.0  # both ends of the range are exercised
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _write(
    tmp_path: Path, name: str, image: np.ndarray, header: PatientStudyHeader, enc: PixelEncoding
) -> Path:
    path = tmp_path / name
    write_radiograph(path, image, header, enc)
    return path


@pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
@pytest.mark.parametrize("transfer_syntax", sorted(TRANSFER_SYNTAX_UIDS))
def test_round_trip_is_lossless_and_monotonic(tmp_path: Path, transfer_syntax: str, photometric: str) -> None:
    image = make_image()
    enc = make_encoding(
        photometric=photometric,
        transfer_syntax=transfer_syntax,
        bits_stored=14,
        rescale_slope=0.5,
        rescale_intercept=-20.0,
    )
    ds = pydicom.dcmread(_write(tmp_path, "img.dcm", image, make_header(), enc))

    assert ds.file_meta.TransferSyntaxUID == TRANSFER_SYNTAX_UIDS[transfer_syntax]
    pixels = ds.pixel_array
    assert pixels.shape == (ROWS, COLS)
    np.testing.assert_array_equal(pixels, quantize(image, enc))

    rescaled = apply_modality_lut(pixels, ds).astype(np.float64)
    attenuation = -rescaled if ds.PhotometricInterpretation == "MONOCHROME1" else rescaled
    order = np.argsort(image.ravel(), kind="stable")
    assert np.all(np.diff(attenuation.ravel()[order]) >= 0)
    assert attenuation.max() > attenuation.min()


@pytest.mark.parametrize("bits", [10, 12, 16])
def test_quantization_uses_full_range(bits: int) -> None:
    q = quantize(make_image(), make_encoding(bits_stored=bits))
    assert q.dtype == np.uint16
    assert q.min() == 0 and int(q.max()) == (1 << bits) - 1


@pytest.mark.parametrize(
    ("modality", "sop_class"),
    [
        ("CR", "1.2.840.10008.5.1.4.1.1.1"),
        ("DX", "1.2.840.10008.5.1.4.1.1.1.1"),
    ],
)
def test_required_tags(tmp_path: Path, modality: str, sop_class: str) -> None:
    header = make_header(modality=modality)
    enc = make_encoding(bits_stored=10, photometric="MONOCHROME1")
    ds = pydicom.dcmread(_write(tmp_path, "img.dcm", make_image(), header, enc))

    assert ds.SOPClassUID == sop_class
    assert ds.file_meta.MediaStorageSOPClassUID == sop_class
    assert ds.file_meta.MediaStorageSOPInstanceUID == header.sop_instance_uid
    assert ds.file_meta.ImplementationClassUID == IMPLEMENTATION_CLASS_UID
    assert ds.file_meta.ImplementationVersionName == IMPLEMENTATION_VERSION_NAME
    assert ds.Modality == modality
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 10, 9, 0)
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == (ROWS, COLS, 1)
    assert ds.PatientName == "DOE^JANE"
    assert ds.PatientID == "MRN00412345"
    assert ds.PatientBirthDate == "19600304"
    assert ds.PatientAge == "057Y"
    assert ds.PatientSex == "F"
    assert ds.StudyDate == "20170506"
    assert ds.StudyTime == "093015"
    assert ds.AccessionNumber == header.accession_number
    assert ds.BodyPartExamined == "CHEST"
    assert ds.ViewPosition == "PA"
    assert ds.SpecificCharacterSet == "ISO_IR 100"
    for keyword, field in (
        ("StudyInstanceUID", "study_instance_uid"),
        ("SeriesInstanceUID", "series_instance_uid"),
        ("SOPInstanceUID", "sop_instance_uid"),
    ):
        assert ds[keyword].value == getattr(header, field)
        assert UID(ds[keyword].value).is_valid
    assert UID(IMPLEMENTATION_CLASS_UID).is_valid
    assert [float(v) for v in ds.ImagerPixelSpacing] == [0.143, 0.143]
    for keyword in ("KVP", "Exposure", "ExposureTime", "DistanceSourceToDetector", "PatientOrientation"):
        assert keyword in ds
    assert ds.RescaleType == "US"
    # Identifiers nested in sequences, as a de-identifier has to find them.
    assert ds.RequestAttributesSequence[0].AccessionNumber == header.accession_number
    assert ds.RequestAttributesSequence[0].RequestedProcedureID
    assert ds.OtherPatientIDsSequence[0].PatientID == header.patient_id
    assert ds.AnatomicRegionSequence[0].CodeValue == "43799004"
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR)
    assert block[0x10].value and header.patient_id in block[0x11].value
    if modality == "DX":
        assert ds.PresentationIntentType == "FOR PRESENTATION"
        assert ds.ImageLaterality == "U"
        assert ds.PresentationLUTShape == "INVERSE"


@pytest.mark.parametrize("transfer_syntax", sorted(TRANSFER_SYNTAX_UIDS))
def test_output_is_deterministic(tmp_path: Path, transfer_syntax: str) -> None:
    image = make_image()
    enc = make_encoding(transfer_syntax=transfer_syntax, voi="lut", photometric="MONOCHROME1")
    first = _write(tmp_path, "a.dcm", image, make_header(), enc).read_bytes()
    second = _write(tmp_path, "b.dcm", image.copy(), make_header(), enc).read_bytes()
    assert first == second
    # ...and the SOP Instance UID is the caller's, not one generated during compression.
    assert pydicom.dcmread(tmp_path / "a.dcm").SOPInstanceUID == make_header().sop_instance_uid


def test_monochrome1_stores_inverted_values(tmp_path: Path) -> None:
    image = make_image()
    m2 = pydicom.dcmread(_write(tmp_path, "m2.dcm", image, make_header(), make_encoding())).pixel_array
    m1_enc = make_encoding(photometric="MONOCHROME1")
    m1 = pydicom.dcmread(_write(tmp_path, "m1.dcm", image, make_header(), m1_enc)).pixel_array
    np.testing.assert_array_equal(m1.astype(np.int32), 4095 - m2.astype(np.int32))
    # The most attenuating pixel (image value 1) is the lowest stored value in MONOCHROME1.
    assert m1[-1, -1] == 0 and m2[-1, -1] == 4095


def test_voi_window_spans_the_image(tmp_path: Path) -> None:
    enc = make_encoding(rescale_slope=2.0, rescale_intercept=100.0)
    ds = pydicom.dcmread(_write(tmp_path, "w.dcm", make_image(), make_header(), enc))
    assert "VOILUTSequence" not in ds
    rescaled = apply_modality_lut(ds.pixel_array, ds)
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    assert center - width / 2 <= rescaled.min() <= rescaled.max() <= center + width / 2
    assert width < 2 * (rescaled.max() - rescaled.min()) + 2  # not a uselessly wide window


@pytest.mark.parametrize("transfer_syntax", ["explicit_le", "implicit_le"])
def test_voi_lut_is_smooth_and_monotonic(tmp_path: Path, transfer_syntax: str) -> None:
    enc = make_encoding(voi="lut", transfer_syntax=transfer_syntax, rescale_intercept=5.0)
    ds = pydicom.dcmread(_write(tmp_path, "l.dcm", make_image(), make_header(), enc))
    assert "WindowCenter" not in ds and "WindowWidth" not in ds
    item = ds.VOILUTSequence[0]
    n_entries, _first, bits = item.LUTDescriptor
    assert n_entries > 1 and bits == 12
    # LUTData is "US or OW": it must come back as OW even without explicit VRs in the file.
    assert item["LUTData"].VR == "OW" and len(item.LUTData) == 2 * n_entries
    lut = np.frombuffer(item.LUTData, dtype="<u2")
    assert np.all(np.diff(lut.astype(np.int32)) >= 0) and lut[0] == 0 and lut[-1] == 4095

    rescaled = apply_modality_lut(ds.pixel_array, ds)
    shown = apply_voi_lut(rescaled.astype(np.int64), ds).astype(np.int64)
    order = np.argsort(rescaled.ravel(), kind="stable")
    assert np.all(np.diff(shown.ravel()[order]) >= 0)
    assert shown.min() == 0 and shown.max() == 4095


def test_voi_none_has_neither(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_write(tmp_path, "n.dcm", make_image(), make_header(), make_encoding(voi="none")))
    assert not {"WindowCenter", "WindowWidth", "VOILUTSequence"} & set(ds.dir())


@pytest.mark.parametrize("flag", ["YES", "NO", None])
def test_burned_in_annotation_flag(tmp_path: Path, flag: str | None) -> None:
    enc = make_encoding(burned_in_annotation=flag)
    ds = pydicom.dcmread(_write(tmp_path, "b.dcm", make_image(), make_header(), enc))
    assert ds.get("BurnedInAnnotation") == flag


def test_non_latin_name_switches_to_utf8(tmp_path: Path) -> None:
    header = make_header(patient_name="Łukasiewicz^Zoë")
    ds = pydicom.dcmread(_write(tmp_path, "u.dcm", make_image(), header, make_encoding()))
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert ds.PatientName == "Łukasiewicz^Zoë"


def test_study_time_crossing_midnight(tmp_path: Path) -> None:
    header = make_header(study_time=datetime.time(23, 59, 50))
    ds = pydicom.dcmread(_write(tmp_path, "t.dcm", make_image(), header, make_encoding()))
    assert ds.StudyDate == "20170506"
    assert ds.ContentDate == "20170507"
    assert ds.AcquisitionDateTime.startswith("20170507")


@pytest.mark.parametrize("corner", CORNERS)
def test_burn_in_changes_only_the_chosen_corner(corner: str) -> None:
    image = np.full((128, 112), 0.5, dtype=np.float32)
    original = image.copy()
    lines = ["DOE^JANE", "MRN00412345", "2017-05-06"]
    out, box = burn_in_text_with_box(image, lines, corner)

    np.testing.assert_array_equal(image, original)  # input untouched
    assert out.shape == image.shape and out.dtype == np.float32
    changed = out != image
    assert changed.sum() > 50
    rows, cols = np.nonzero(changed)
    top, left = corner.startswith("top"), corner.endswith("left")
    assert (rows < 64).all() if top else (rows >= 64).all()
    assert (cols < 56).all() if left else (cols >= 56).all()
    assert box is not None
    r0, r1, c0, c1 = box
    assert r0 <= rows.min() and rows.max() < r1 and c0 <= cols.min() and cols.max() < c1
    # Bright text on a dark box.
    assert out[changed].min() == 0.0 and out[changed].max() == 1.0
    np.testing.assert_array_equal(out, burn_in_text(image, lines, corner))


def test_burn_in_long_text_stays_in_its_quadrant() -> None:
    image = np.full((64, 64), 0.3, dtype=np.float32)
    lines = ["A VERY LONG INSTITUTION NAME THAT DOES NOT FIT", "X"]
    out = burn_in_text(image, lines, "bottom_right", scale=3.0)
    rows, cols = np.nonzero(out != image)
    assert rows.size and rows.min() >= 32 and cols.min() >= 32


def test_burn_in_rejects_unknown_corner() -> None:
    with pytest.raises(ValueError, match="corner"):
        burn_in_text(make_image(), ["X"], "middle")


@pytest.mark.parametrize("kind", OFF_SCOPE_KINDS)
def test_off_scope_files(tmp_path: Path, kind: str) -> None:
    header = make_header()
    path = tmp_path / f"{kind}.dcm"
    reason = write_off_scope_file(path, kind, header, np.random.default_rng(3), 64)
    assert isinstance(reason, str) and reason

    if kind == "truncated":
        with pytest.raises(Exception):  # noqa: B017 - either the read or the decode must fail
            pydicom.dcmread(path).pixel_array  # noqa: B018
        return

    ds = pydicom.dcmread(path)
    # Every kind still carries the identifying values a de-identifier must remove.
    assert ds.PatientName == header.patient_name and ds.PatientID == header.patient_id
    assert ds.RequestAttributesSequence[0].AccessionNumber == header.accession_number
    if kind == "missing_pixel_data":
        assert "PixelData" not in ds and ds.Rows == 64
    elif kind == "rgb_secondary_capture":
        assert ds.SOPClassUID == pydicom.uid.SecondaryCaptureImageStorage
        assert ds.SamplesPerPixel == 3 and ds.PhotometricInterpretation == "RGB"
        assert ds.pixel_array.shape == (64, 64, 3)
    elif kind == "multi_frame":
        assert ds.NumberOfFrames == 3
        assert ds.pixel_array.shape == (3, 64, 64)
    elif kind == "non_chest":
        assert ds.Modality == "CR" and ds.BodyPartExamined in ("HAND", "KNEE")
        assert ds.Laterality in ("L", "R")
        assert ds.pixel_array.shape == (64, 64)


def test_off_scope_files_are_deterministic(tmp_path: Path) -> None:
    for kind in OFF_SCOPE_KINDS:
        a, b = tmp_path / f"{kind}_a.dcm", tmp_path / f"{kind}_b.dcm"
        write_off_scope_file(a, kind, make_header(), np.random.default_rng(9), 64)
        write_off_scope_file(b, kind, make_header(), np.random.default_rng(9), 64)
        assert a.read_bytes() == b.read_bytes(), kind


def test_derive_uid() -> None:
    uid = derive_uid("patient", 42, datetime.date(2017, 1, 1))
    assert uid == derive_uid("patient", 42, datetime.date(2017, 1, 1))
    assert uid != derive_uid("patient", 43, datetime.date(2017, 1, 1))
    assert uid.startswith("2.25.") and len(uid) <= 64 and UID(uid).is_valid
    assert all(UID(derive_uid(i)).is_valid for i in range(200))


def test_invalid_inputs_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="modality"):
        make_header(modality="MR")
    with pytest.raises(ValueError, match="accession_number"):
        make_header(accession_number="X" * 17)
    with pytest.raises(ValueError, match="transfer_syntax"):
        make_encoding(transfer_syntax="jpeg_baseline")
    with pytest.raises(ValueError, match="bits_stored"):
        make_encoding(bits_stored=8)
    with pytest.raises(ValueError, match="NaN"):
        nan_image = np.full((8, 8), np.nan, np.float32)
        write_radiograph(tmp_path / "x.dcm", nan_image, make_header(), make_encoding())
    with pytest.raises(ValueError, match="kind"):
        write_off_scope_file(tmp_path / "x.dcm", "bogus", make_header(), np.random.default_rng(0), 64)


def test_header_replace_keeps_validation() -> None:
    with pytest.raises(ValueError, match="laterality"):
        dataclasses.replace(make_header(), laterality="X")
