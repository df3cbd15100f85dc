"""What ingest accepts: scope rules (frontal chest CR/DX, one grayscale frame) and burned-in text.

Scope rules read only coded header values (Modality, Body Part Examined, view, photometric), so a reason can
quote them without quoting anything that identifies a patient.

The text detector looks for what burned-in annotations are made of: rows of small, high-contrast glyphs.
On the working-size image (display orientation, [0, 1]) it takes a 3x3 white and black top-hat (strokes at
most two pixels wide that stand out from their surround by ``contrast``), labels the connected components,
keeps glyph-shaped ones (3 px to a tenth of the image high, at most ~2.5x as wide as high), and chains them
into lines: neighbours at about the same height, separated by at most 1.5 glyph heights. A line of at least
``min_glyphs`` glyphs is text. A side marker ("L", "R") is a single glyph and never makes a line; anatomy,
wires and clips are either wider than the top-hat or do not repeat along a row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

CHEST_BODY_PARTS = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS", "CHEST_TO_ABDOMEN", "TORSO"})
# SNOMED CT codes of CID 4031 for the chest: Chest, Thorax, Lung, Entire thorax.
CHEST_REGION_CODES = frozenset({"43799004", "51185008", "39607008", "302551006"})
CHEST_WORDS = ("CHEST", "THORA", "LUNG", "TORAX", "TORACE", "POUMON", "PULMO")
GRAYSCALE = frozenset({"MONOCHROME1", "MONOCHROME2"})
# ViewCodeSequence (CID 4010) codes of the frontal views.
VIEW_CODES = {"399348003": "PA", "399182009": "AP", "399136009": "LL", "399173006": "RL"}


def coded(value: object) -> str:
    """A coded header value made safe to quote in a reason: uppercase, short, letters/digits/underscores."""
    text = re.sub(r"[^A-Z0-9_ ]", "", str(value or "").upper()).strip()
    return text[:16] or "missing"


def view_position(ds: Dataset) -> str:
    """PA, AP, LL, ... from View Position, else from the View Code Sequence, else 'UNKNOWN'."""
    view = str(ds.get("ViewPosition", "") or "").strip().upper()
    if view:
        return view
    for item in ds.get("ViewCodeSequence", []) or []:
        code = str(item.get("CodeValue", ""))
        if code in VIEW_CODES:
            return VIEW_CODES[code]
    return "UNKNOWN"


def _is_chest(ds: Dataset) -> bool | None:
    """True/False from Body Part Examined or the Anatomic Region Sequence; None when neither says."""
    part = str(ds.get("BodyPartExamined", "") or "").strip().upper()
    if part:
        return part in CHEST_BODY_PARTS
    codes = {str(item.get("CodeValue", "")) for item in ds.get("AnatomicRegionSequence", []) or []}
    if codes:
        return bool(codes & CHEST_REGION_CODES)
    return None


def _described_as_chest(ds: Dataset) -> bool:
    text = " ".join(
        str(ds.get(k, "") or "") for k in ("StudyDescription", "SeriesDescription", "ProtocolName")
    ).upper()
    return any(word in text for word in CHEST_WORDS)


def scope_reason(ds: Dataset, modalities: Sequence[str], views: Sequence[str]) -> str | None:
    """Why a dataset is not a single-frame grayscale frontal chest CR/DX image, or None if it is one."""
    if "PixelData" not in ds:
        return "no pixel data (no PixelData element)"
    modality = str(ds.get("Modality", "") or "").upper()
    if modality not in modalities:
        return f"modality {coded(modality)} is not one of {'/'.join(modalities)}"
    chest = _is_chest(ds)
    if chest is False or (chest is None and not _described_as_chest(ds)):
        return f"body part {coded(ds.get('BodyPartExamined'))} is not chest"
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").upper()
    if samples != 1 or photometric not in GRAYSCALE:
        return f"not grayscale ({coded(photometric)}, {samples} samples per pixel)"
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        return f"multi-frame ({frames} frames)"
    view = view_position(ds)
    if view not in views:
        return f"view {coded(view)} is not one of {'/'.join(views)}"
    if int(ds.get("Rows", 0) or 0) < 16 or int(ds.get("Columns", 0) or 0) < 16:
        return "image smaller than 16 x 16 pixels"
    return None


def burned_in_flag(ds: Dataset) -> bool:
    return str(ds.get("BurnedInAnnotation", "") or "").strip().upper() == "YES"


# --------------------------------------------------------------------------- text detector


@dataclass(frozen=True)
class TextFinding:
    glyphs: int  # glyphs on the longest line found
    lines: tuple[tuple[int, int, int, int], ...]  # (row0, row1, col0, col1) of each text line

    @property
    def has_text(self) -> bool:
        return bool(self.lines)


def _erode3(a: np.ndarray) -> np.ndarray:
    """3x3 minimum filter (separable); the outermost pixels keep their 1-D minimum (no padding copy)."""
    across = a.copy()
    across[:, 1:-1] = np.minimum(np.minimum(a[:, :-2], a[:, 1:-1]), a[:, 2:])
    out = across.copy()
    out[1:-1] = np.minimum(np.minimum(across[:-2], across[1:-1]), across[2:])
    return out


def _dilate3(a: np.ndarray) -> np.ndarray:
    """3x3 maximum filter, as ``_erode3``."""
    across = a.copy()
    across[:, 1:-1] = np.maximum(np.maximum(a[:, :-2], a[:, 1:-1]), a[:, 2:])
    out = across.copy()
    out[1:-1] = np.maximum(np.maximum(across[:-2], across[1:-1]), across[2:])
    return out


def _component_boxes(mask: np.ndarray) -> np.ndarray:
    """(row0, row1, col0, col1) of each 4-connected component of ``mask``, in raster order of its first pixel.

    The same boxes, in the same order, as ``ndimage.find_objects(ndimage.label(mask)[0])``, but computed on
    the set pixels only: stroke masks hold a few hundred of ~10^5 pixels, and the two full-image passes of
    label + find_objects cost several times more than this.
    """
    width = mask.shape[1]
    idx = np.flatnonzero(mask)  # raster order
    if len(idx) == 0:
        return np.zeros((0, 4), dtype=np.int64)
    rows, cols = np.divmod(idx, width)
    src, dst = _neighbour_pairs(idx, cols, width)
    root = _min_roots(len(idx), src, dst)
    # Each root is its component's first pixel in raster order, so sorted roots are find_objects' order.
    firsts, labels = np.unique(root, return_inverse=True)
    boxes = np.empty((len(firsts), 4), dtype=np.int64)
    boxes[:, 0] = rows[firsts]  # the first pixel is on the top row
    boxes[:, 1] = boxes[:, 3] = -1
    boxes[:, 2] = width
    np.maximum.at(boxes[:, 1], labels, rows)
    np.minimum.at(boxes[:, 2], labels, cols)
    np.maximum.at(boxes[:, 3], labels, cols)
    boxes[:, 1] += 1
    boxes[:, 3] += 1
    return boxes


def _neighbour_pairs(idx: np.ndarray, cols: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (in ``idx``) of set pixels joined to their right or lower set neighbour."""
    n = len(idx)
    src, dst = [], []
    for offset, allowed in ((1, cols < width - 1), (width, None)):
        at = np.minimum(np.searchsorted(idx, idx + offset), n - 1)
        linked = idx[at] == idx + offset
        if allowed is not None:
            linked &= allowed
        src.append(np.flatnonzero(linked))
        dst.append(at[linked])
    return np.concatenate(src), np.concatenate(dst)


def _min_roots(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """For each of ``n`` nodes, the smallest node of its connected component (edges ``src``-``dst``).

    Union-find in whole-array steps: every edge between two trees hooks the larger root under the smaller
    one, then paths are compressed until every node points at a root. A root is always its tree's smallest
    node, and each round at least halves the trees an edge can still join, so a few rounds suffice.
    """
    root = np.arange(n)
    while len(src):
        a, b = root[src], root[dst]
        apart = a != b
        src, dst, a, b = src[apart], dst[apart], a[apart], b[apart]
        np.minimum.at(root, np.maximum(a, b), np.minimum(a, b))
        while True:
            up = root[root]
            if np.array_equal(up, root):
                break
            root = up
    return root


def _glyph_boxes(mask: np.ndarray, max_height: int) -> np.ndarray:
    boxes = _component_boxes(mask)
    height = boxes[:, 1] - boxes[:, 0]
    width = boxes[:, 3] - boxes[:, 2]
    keep = (height >= 3) & (height <= max_height) & (width <= 2.5 * height + 2)
    return boxes[keep]


def _lines(boxes: np.ndarray, min_glyphs: int) -> tuple[int, list[tuple[int, int, int, int]]]:
    """Chain glyph boxes left to right into lines; the longest line's length and the text lines' boxes."""
    if len(boxes) < 2:
        return len(boxes), []
    # Python ints: the chaining loop does scalar arithmetic, ~5x slower on numpy scalars.
    ordered: list[list[int]] = boxes[np.argsort(boxes[:, 2], kind="stable")].tolist()
    used = [False] * len(ordered)
    longest, found = 0, []
    for i, first in enumerate(ordered):
        if used[i]:
            continue
        used[i] = True
        chain = [first]
        cur = first
        for j in range(i + 1, len(ordered)):
            if used[j]:
                continue
            cand = ordered[j]
            height = max(cur[1] - cur[0], cand[1] - cand[0])
            if cand[2] - cur[3] > 1.5 * height:
                if cand[2] - cur[3] > 3 * height:
                    break  # sorted by left edge: nothing further right can still join this line
                continue
            if abs((cur[0] + cur[1]) - (cand[0] + cand[1])) <= 1.2 * height:
                used[j] = True
                chain.append(cand)
                cur = cand
        longest = max(longest, len(chain))
        if len(chain) >= min_glyphs:
            found.append(
                (
                    min(b[0] for b in chain),
                    max(b[1] for b in chain),
                    min(b[2] for b in chain),
                    max(b[3] for b in chain),
                )
            )
    return longest, found


def detect_text(image: np.ndarray, min_glyphs: int, contrast: float) -> TextFinding:
    """Rows of bright-on-dark or dark-on-bright glyphs in a [0, 1] display image."""
    # Standardized images are already within [0, 1]; the clip only guards other callers.
    u8 = (np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    threshold = round(contrast * 255)
    opened = _dilate3(_erode3(u8))
    closed = _erode3(_dilate3(u8))
    max_height = max(8, min(u8.shape) // 10)
    longest, lines = 0, []
    for strokes in (u8 - opened, closed - u8):
        mask = strokes > threshold
        if np.count_nonzero(mask) < 3 * min_glyphs:
            continue  # fewer stroke pixels than the shortest line of glyphs has: labelling is wasted
        n, found = _lines(_glyph_boxes(mask, max_height), min_glyphs)
        longest = max(longest, n)
        lines += found
    return TextFinding(longest, tuple(lines))


def blank_regions(image: np.ndarray, regions: Mapping[str, Sequence[float]]) -> np.ndarray:
    """A copy with each [top, left, bottom, right] fraction box set to black."""
    out = np.array(image, copy=True)
    h, w = out.shape
    for top, left, bottom, right in regions.values():
        out[int(top * h) : int(np.ceil(bottom * h)), int(left * w) : int(np.ceil(right * w))] = 0
    return out
