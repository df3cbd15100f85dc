"""Scope rules and the burned-in text detector (side markers are not text)."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cxrpriv.ingest.screening import _component_boxes, blank_regions, detect_text, scope_reason, view_position
from cxrpriv.synth.dicom_writer import burn_in_text

MODALITIES, VIEWS = ("CR", "DX"), ("PA", "AP")


def chest(**changes: object) -> Dataset:
    ds = Dataset()
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 64
    ds.ViewPosition = "PA"
    ds.PixelData = b"\0" * 64 * 64 * 2
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"Modality": "MR"}, "modality MR"),
        ({"BodyPartExamined": "HAND"}, "body part HAND is not chest"),
        ({"BodyPartExamined": None}, "body part missing"),
        ({"BodyPartExamined": None, "StudyDescription": "XR THORAX PA"}, None),
        ({"SamplesPerPixel": 3, "PhotometricInterpretation": "RGB"}, "not grayscale (RGB, 3 samples"),
        ({"NumberOfFrames": 3}, "multi-frame (3 frames)"),
        ({"ViewPosition": "LL"}, "view LL is not one of PA/AP"),
        ({"ViewPosition": None}, "view UNKNOWN"),
        ({"PixelData": None}, "no pixel data"),
    ],
)
def test_scope_rules_give_a_reason(changes: dict, reason: str | None):
    got = scope_reason(chest(**changes), MODALITIES, VIEWS)
    assert got == reason if reason is None else reason in got


def test_views_and_body_parts_from_code_sequences():
    item = Dataset()
    item.CodeValue = "399182009"
    ds = chest(ViewPosition=None, BodyPartExamined=None)
    ds.ViewCodeSequence = Sequence([item])
    region = Dataset()
    region.CodeValue = "51185008"  # Thorax
    ds.AnatomicRegionSequence = Sequence([region])
    assert view_position(ds) == "AP"
    assert scope_reason(ds, MODALITIES, VIEWS) is None
    assert scope_reason(chest(ViewPosition=None), MODALITIES, ("PA", "AP", "UNKNOWN")) is None


def radiograph(size: int = 256, seed: int = 0) -> np.ndarray:
    """A smooth chest-like image with a bright side marker 'L' and noise."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    image = 0.6 - 0.35 * np.exp(-(((x - 0.3) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2))
    image -= 0.35 * np.exp(-(((x - 0.7) / 0.12) ** 2 + ((y - 0.5) / 0.25) ** 2))
    image += rng.normal(0, 0.015, image.shape)
    patch = Image.new("L", (size // 16, size // 16), 0)
    ImageDraw.Draw(patch).text((2, 0), "L", fill=255, font=ImageFont.load_default(size=size // 18))
    marker = np.asarray(patch, dtype=np.float32) / 255
    image[20 : 20 + marker.shape[0], -40 : -40 + marker.shape[1]] = np.maximum(
        image[20 : 20 + marker.shape[0], -40 : -40 + marker.shape[1]], marker
    )
    return np.clip(image, 0, 1).astype(np.float32)


def test_burned_in_text_is_found_and_the_side_marker_is_not():
    clean = radiograph()
    assert not detect_text(clean, 6, 0.3).has_text
    for corner in ("top_left", "bottom_left", "bottom_right"):
        burned = burn_in_text(clean, ["ROBINSON HELEN", "ID 91367866", "04.10.2018"], corner)
        finding = detect_text(burned, 6, 0.3)
        assert finding.has_text and finding.glyphs >= 8, corner
    dark_text = 1 - burn_in_text(1 - clean, ["SMITH JOHN", "ID 12345678"], "top_left")
    assert detect_text(dark_text, 6, 0.3).has_text, "dark text on a bright box counts too"


def test_anatomy_and_wires_are_not_text():
    image = radiograph(seed=3)
    image[40:200, 128:131] = 1.0  # a wire
    image[100:104, 60:64] = 1.0  # a clip
    for k in range(4):  # sternotomy wires stacked vertically
        image[60 + 25 * k : 64 + 25 * k, 126:134] = 1.0
    assert not detect_text(image, 6, 0.3).has_text


def test_blanking_a_region_removes_the_text_in_it():
    burned = burn_in_text(radiograph(), ["ROBINSON HELEN", "ID 91367866"], "bottom_left")
    assert not detect_text(blank_regions(burned, {"bottom_left": [0.5, 0.0, 1.0, 0.5]}), 6, 0.3).has_text
    assert detect_text(blank_regions(burned, {"top_band": [0.0, 0.0, 0.1, 1.0]}), 6, 0.3).has_text


@pytest.mark.parametrize("density", [0.0, 0.01, 0.05, 0.3, 0.5, 0.6, 0.9, 1.0])
def test_component_boxes_equal_label_and_find_objects(density: float):
    """Same boxes in the same (raster) order as scipy's 4-connected labelling, which the detector used."""
    from scipy import ndimage

    rng = np.random.default_rng(int(density * 100))
    for shape in ((1, 1), (1, 40), (40, 1), (37, 53), (128, 96)):
        mask = rng.random(shape) < density
        labels, _ = ndimage.label(mask)
        expected = [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(labels)]
        assert _component_boxes(mask).tolist() == [list(box) for box in expected]
    spiral = np.zeros((41, 41), dtype=bool)  # one long winding component: many union-find rounds
    for k in range(0, 20, 2):
        spiral[k, k : 41 - k] = spiral[k : 41 - k, 40 - k] = spiral[40 - k, k + 2 : 41 - k] = True
        spiral[k + 2 : 41 - k, k] = True
    labels, _ = ndimage.label(spiral)
    expected = [(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(labels)]
    assert _component_boxes(spiral).tolist() == [list(box) for box in expected]
