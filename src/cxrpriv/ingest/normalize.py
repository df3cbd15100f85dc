"""Intensity standardization and resizing of display-oriented images.

Intensity. Scanners, detectors and vendor post-processing (VOI LUTs, sigmoid tone curves, bit depths from 10
to 16, rescales) leave the same anatomy at very different grey levels. Both methods here are rank-based on
the image's own histogram, measured on the central region (10% margins dropped, so collimator blades, side
markers and corner annotations do not count), on at most 16,384 evenly strided samples (80 in each 0.5% tail):

- ``percentile``: the ``percentile_low`` and ``percentile_high`` values map linearly to 0 and 1, clipped.
  Invariant to any linear change of the pixel values (rescale slope/intercept, window, bit depth).
- ``landmarks``: piecewise-linear histogram standardization (Nyul & Udupa 1999) onto a uniform standard
  scale: the eleven percentiles evenly spaced from low to high map to 0, 0.1, ..., 1. Also invariant to
  monotone tone curves up to the piecewise-linear approximation, so sigmoid-processed and raw images look
  alike; contrast within each decile is kept.

Size. The output is a square ``image_size`` image. ``pad`` (the default) scales the long side to the size and
pads the short side symmetrically with black, keeping the whole image undistorted; ``crop`` takes the
central square; ``stretch`` scales each axis on its own. Downsampling uses Pillow's antialiased bilinear
(triangle) filter on float32 data, which does not ring.
"""

from __future__ import annotations

import numpy as np

CENTRAL_MARGIN = 0.10
MAX_SAMPLES = 16384
N_LANDMARKS = 11
LUT_STEPS = 8192


class NoContrastError(ValueError):
    """The central region has (almost) a single grey level: nothing to standardize."""


def central_sample(image: np.ndarray) -> np.ndarray:
    h, w = image.shape
    mh, mw = int(h * CENTRAL_MARGIN), int(w * CENTRAL_MARGIN)
    region = image[mh : h - mh, mw : w - mw]
    step = max(1, int(np.ceil(np.sqrt(region.size / MAX_SAMPLES))))
    return region[::step, ::step].ravel()


def sorted_percentiles(ordered: np.ndarray, percents: np.ndarray | list[float]) -> np.ndarray:
    """``np.percentile(ordered, percents)`` (linear method, bit for bit) of an already sorted 1-D array.

    numpy's own call partitions the sample again and costs ~4x a sort of 16k values in overhead; one sort
    serves both standardizations of an image.
    """
    q = np.asarray(percents, dtype=np.float64) / 100
    n = len(ordered)
    if n and np.isnan(ordered[-1]):  # NaNs sort last; numpy's percentile is then NaN throughout
        return np.full(q.shape, np.nan)
    virtual = (n - 1) * q
    below = np.floor(virtual)
    gamma = virtual - below
    low = np.clip(below, 0, n - 1).astype(np.intp)
    a, b = ordered[low], ordered[np.minimum(low + 1, n - 1)]
    # numpy's _lerp: from the nearer end, so that gamma 1 gives b exactly.
    diff = b - a
    out = a + diff * gamma
    upper = gamma >= 0.5
    out[upper] = (b - diff * (1 - gamma))[upper]
    return np.asarray(out, dtype=np.float64)


def standardize(image: np.ndarray, method: str, p_low: float, p_high: float) -> np.ndarray:
    """The image mapped to [0, 1] by its own central-region histogram."""
    knots = standard_knots(np.sort(central_sample(image)), method, p_low, p_high)
    return apply_knots(image, knots)


def percentile_standardize(image: np.ndarray, p_low: float, p_high: float) -> tuple[np.ndarray, np.ndarray]:
    """``standardize(image, "percentile", ...)`` and the sorted central sample of that result.

    The sample of the result is the mapped sample of the input (the same elementwise float32 operations on
    the same pixels), and the map is monotone, so it stays sorted: landmarks of the standardized image then
    cost neither a second sample nor a second sort.
    """
    ordered = np.sort(central_sample(image))
    knots = standard_knots(ordered, "percentile", p_low, p_high)
    return apply_knots(image, knots), apply_knots(ordered, knots)


def standard_knots(ordered: np.ndarray, method: str, p_low: float, p_high: float) -> np.ndarray:
    """The input values mapped to the standard scale's landmarks, from a sorted central sample."""
    if method == "landmarks":
        knots = sorted_percentiles(ordered, np.linspace(p_low, p_high, N_LANDMARKS))
    else:
        knots = sorted_percentiles(ordered, [p_low, p_high])
    spread = knots[-1] - knots[0]
    if not np.isfinite(spread) or spread <= 1e-6 * max(1.0, abs(knots[-1])):
        raise NoContrastError("image has no contrast in its central region (constant pixel values)")
    if len(knots) > 2:
        # Ties (large flat areas) make equal knots; nudge them apart so the mapping stays a function.
        knots = np.maximum.accumulate(knots + np.arange(N_LANDMARKS) * spread * 1e-6)
    return knots


def apply_knots(image: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Two knots: linear to [0, 1], clipped. More: piecewise linear onto evenly spaced targets."""
    lo, hi = knots[0], knots[-1]
    if len(knots) == 2:
        out = (image - np.float32(lo)) / np.float32(hi - lo)
        return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)
    targets = np.linspace(0.0, 1.0, len(knots))
    # The piecewise-linear map tabulated on LUT_STEPS steps between the outer knots and applied by lookup:
    # ~10x faster than np.interp per pixel, within 1e-3 of it (a quarter of an 8-bit step).
    table = np.interp(np.linspace(lo, hi, LUT_STEPS + 1), knots, targets).astype(np.float32)
    scaled = np.subtract(image, np.float32(lo), dtype=np.float32)
    scaled *= np.float32(LUT_STEPS / (hi - lo))
    scaled += np.float32(0.5)
    np.clip(scaled, 0, LUT_STEPS, out=scaled)
    return table[scaled.astype(np.int32)]


def resize(image: np.ndarray, size: int, aspect: str) -> np.ndarray:
    """A ``size`` x ``size`` float32 image under the aspect policy (``pad``, ``crop`` or ``stretch``)."""
    from PIL import Image

    arr = np.asarray(image, dtype=np.float32)
    h, w = arr.shape
    if aspect == "crop":
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        arr = arr[top : top + side, left : left + side]
        h = w = side
    if aspect == "pad":
        scale = size / max(h, w)
        new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    else:
        new_h, new_w = size, size
    resized = np.asarray(
        Image.fromarray(arr, mode="F").resize((new_w, new_h), Image.Resampling.BILINEAR), dtype=np.float32
    )
    if (new_h, new_w) == (size, size):
        return resized
    out = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def quantize(image: np.ndarray, dtype: str) -> np.ndarray:
    top = 255 if dtype == "uint8" else 65535
    return np.rint(np.clip(image, 0.0, 1.0) * top).astype(dtype)
