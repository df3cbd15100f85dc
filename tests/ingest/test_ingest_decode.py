"""Pixel decoding on real DICOM from pydicom-data and on synthetic encodings of one known image."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from cxrpriv.ingest.decode import box_reduce, decode_dicom, decode_png, read_dicom, sniff
from cxrpriv.ingest.normalize import resize, standardize
from cxrpriv.synth.dicom_writer import PatientStudyHeader, PixelEncoding, write_radiograph

RG1 = ("RG1_UNCI.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm")


def normalized(path: str | Path, size: int = 64) -> np.ndarray:
    decoded = decode_dicom(read_dicom(Path(path).read_bytes()), 384)
    return resize(standardize(decoded.pixels, "percentile", 0.5, 99.5), size, "pad")


@pytest.fixture(scope="module")
def rg1() -> dict[str, np.ndarray]:
    return {name: normalized(get_testdata_file(name)) for name in RG1}


def test_rg1_in_its_three_encodings_gives_the_same_normalized_image(rg1: dict[str, np.ndarray]):
    reference = rg1["RG1_UNCI.dcm"]
    for name in ("RG1_J2KR.dcm", "RG1_J2KI.dcm"):
        diff = np.abs(rg1[name] - reference)
        # JPEG 2000 is decoded from its half-resolution wavelet band, the uncompressed file box-averaged:
        # both approximate the same downsampled image; the lossy file adds its 10:1 compression error.
        assert diff.mean() < 0.01 and diff.max() < 0.08, (name, diff.mean(), diff.max())


def test_rg1_monochrome1_is_inverted_so_the_lungs_are_dark(rg1: dict[str, np.ndarray]):
    image = rg1["RG1_UNCI.dcm"]
    assert pydicom.dcmread(
        get_testdata_file("RG1_UNCI.dcm"), stop_before_pixels=True
    ).PhotometricInterpretation == ("MONOCHROME1")
    h, w = image.shape
    band = slice(int(0.3 * h), int(0.6 * h))
    lungs = (image[band, int(0.2 * w) : int(0.4 * w)].mean(), image[band, int(0.6 * w) : int(0.8 * w)].mean())
    mediastinum = image[band, int(0.45 * w) : int(0.55 * w)].mean()
    assert max(lungs) < 0.6 < mediastinum


def test_jpeg2000_is_decoded_at_reduced_resolution_when_much_larger_than_needed():
    decoded = decode_dicom(read_dicom(Path(get_testdata_file("RG1_J2KR.dcm")).read_bytes()), 384)
    assert decoded.reduction == 4 and min(decoded.pixels.shape) >= 384


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_every_lossless_transfer_syntax_decodes_to_the_same_pixels(name: str):
    reference = decode_dicom(pydicom.dcmread(get_testdata_file("MR_small.dcm")), 384).pixels
    assert np.array_equal(decode_dicom(pydicom.dcmread(get_testdata_file(name)), 384).pixels, reference)


def test_jpeg_lossless_decodes_with_the_permissive_plugins():
    decoded = decode_dicom(pydicom.dcmread(get_testdata_file("JPEG-LL.dcm")), 4096)
    assert decoded.pixels.shape == (1024, 256) and decoded.pixels.max() > decoded.pixels.min()


@pytest.mark.parametrize("name", ["mlut_18.dcm", "vlut_04.dcm"])
def test_modality_and_voi_lut_sequences_match_pydicom(name: str):
    ds = pydicom.dcmread(get_testdata_file(name))
    expected = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds).astype(np.float32)
    assert np.allclose(decode_dicom(ds, 4096).pixels, expected)


def _header() -> PatientStudyHeader:
    return PatientStudyHeader(
        patient_name="DOE^JANE",
        patient_id="12345678",
        birth_date=dt.date(1960, 1, 2),
        sex="F",
        age_years=60,
        accession_number="A1",
        institution_name="HOSPITAL",
        institution_address="STREET",
        referring_physician="REF^DR",
        performing_physician="PERF^DR",
        operator_name="TECH^A",
        station_name="ST1",
        study_date=dt.date(2020, 3, 4),
        study_time=dt.time(10, 0),
        study_description="XR CHEST PA",
        study_instance_uid="2.25.1",
        series_instance_uid="2.25.2",
        sop_instance_uid="2.25.3",
        series_number=1,
        instance_number=1,
        view_position="PA",
        modality="CR",
        manufacturer="M",
        model_name="X",
        device_serial_number="S",
        pixel_spacing_mm=0.5,
    )


@pytest.mark.parametrize(
    "encoding",
    [
        dict(photometric="MONOCHROME1", bits_stored=12, rescale_slope=1.0, rescale_intercept=0.0, voi="none"),
        dict(
            photometric="MONOCHROME2",
            bits_stored=16,
            rescale_slope=2.0,
            rescale_intercept=100.0,
            voi="window",
        ),
        dict(
            photometric="MONOCHROME1", bits_stored=10, rescale_slope=0.5, rescale_intercept=0.0, voi="window"
        ),
        dict(photometric="MONOCHROME2", bits_stored=15, rescale_slope=1.0, rescale_intercept=0.0, voi="none"),
    ],
)
@pytest.mark.parametrize(
    "syntax", ["explicit_le", "implicit_le", "deflated_le", "j2k_lossless", "rle_lossless"]
)
def test_linear_encodings_of_one_image_standardize_alike(tmp_path: Path, encoding: dict, syntax: str):
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:96, 0:96] / 95.0
    image = np.clip(0.2 + 0.6 * x * y + rng.normal(0, 0.02, (96, 96)), 0, 1).astype(np.float32)
    path = tmp_path / "a.dcm"
    write_radiograph(
        path, image, _header(), PixelEncoding(transfer_syntax=syntax, burned_in_annotation=None, **encoding)
    )
    decoded = decode_dicom(read_dicom(path.read_bytes()), 384)
    got = standardize(decoded.pixels, "percentile", 0.5, 99.5)
    expected = standardize(image, "percentile", 0.5, 99.5)
    assert np.abs(got - expected).max() < 0.01


def test_a_voi_lut_sequence_keeps_the_order_of_grey_levels(tmp_path: Path):
    x = np.mgrid[0:64, 0:64][1] / 63.0
    image = (0.1 + 0.8 * x).astype(np.float32)
    path = tmp_path / "lut.dcm"
    encoding = PixelEncoding("MONOCHROME1", 10, 1.0, 0.0, "lut", "explicit_le", None)
    write_radiograph(path, image, _header(), encoding)
    row = decode_dicom(read_dicom(path.read_bytes()), 384).pixels[32]
    assert np.all(np.diff(row) >= 0) and row[-1] > row[0]  # brighter to the right, as in the source image


def test_sniff_png_and_decode_grayscale_and_colour(tmp_path: Path):
    from PIL import Image

    gray = np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1))
    path = tmp_path / "g.png"
    Image.fromarray(gray).convert("RGBA").save(path)  # ChestX-ray14 stores some grayscale images as RGBA
    assert sniff(path.read_bytes()) == "png"
    assert np.array_equal(decode_png(path.read_bytes(), 384).pixels, gray.astype(np.float32))
    colour = np.stack([gray, gray.T, gray], axis=-1)
    Image.fromarray(colour).save(path)
    with pytest.raises(ValueError, match="colour"):
        decode_png(path.read_bytes(), 384)
    assert sniff(b"not an image") == "unknown"


def test_box_reduce_averages_blocks():
    image = np.arange(16, dtype=np.uint16).reshape(4, 4)
    assert np.array_equal(box_reduce(image, 2), np.array([[2.5, 4.5], [10.5, 12.5]], dtype=np.float32))
    assert box_reduce(image, 1).dtype == np.float32
