"""Soft-edged primitives evaluated on patient-frame coordinate grids (vectorized numpy)."""

from __future__ import annotations

import itertools

import numpy as np


def soft_step(x: np.ndarray, width: float) -> np.ndarray:
    """0 -> 1 as x crosses 0, over about ``width``: anti-aliased edges at any image size.

    A cubic smoothstep over [-width, width]: the shape of tanh at a fraction of its cost (it is the
    renderer's innermost operation).
    """
    t = np.clip(x * (0.5 / max(width, 1e-6)) + 0.5, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def window(u: np.ndarray, v: np.ndarray, center: tuple[float, float], reach: float) -> tuple[slice, slice]:
    """The pixel rows and columns where a shape within ``reach`` of ``center`` can be non-zero.

    The grids are a (slightly rotated) regular lattice, so v varies along rows and u along columns; small
    shapes are then evaluated on a small window instead of the whole image.
    """
    rows = np.nonzero((v.max(axis=1) >= center[1] - reach) & (v.min(axis=1) <= center[1] + reach))[0]
    cols = np.nonzero((u.max(axis=0) >= center[0] - reach) & (u.min(axis=0) <= center[0] + reach))[0]
    if len(rows) == 0 or len(cols) == 0:
        return slice(0, 0), slice(0, 0)
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


def ellipse(
    u: np.ndarray,
    v: np.ndarray,
    center: tuple[float, float],
    radii: tuple[float, float],
    *,
    angle: float = 0.0,
    edge: float = 0.004,
) -> np.ndarray:
    out = np.zeros(u.shape, dtype=np.float32)
    r, c_ = window(u, v, center, max(radii) + 2 * edge)
    du, dv = u[r, c_] - center[0], v[r, c_] - center[1]
    c, s = np.cos(angle), np.sin(angle)
    x, y = (c * du + s * dv) / radii[0], (-s * du + c * dv) / radii[1]
    dist = np.sqrt(x * x + y * y)
    out[r, c_] = soft_step((1.0 - dist) * min(radii), edge)
    return out


def band_along_curve(v: np.ndarray, curve_v: np.ndarray, thickness: float, edge: float) -> np.ndarray:
    """A band of the given thickness around v = curve(u); brighter at its rims, like a bone's cortex."""
    d = np.abs(v - curve_v) / (thickness / 2)
    inside = soft_step(1.0 - d, edge / (thickness / 2))
    return inside * (0.65 + 0.35 * np.clip(d, 0, 1) ** 2)


def segment_distance(
    u: np.ndarray, v: np.ndarray, a: tuple[float, float], b: tuple[float, float]
) -> np.ndarray:
    au, av = u - a[0], v - a[1]
    bu, bv = b[0] - a[0], b[1] - a[1]
    t = np.clip((au * bu + av * bv) / max(bu * bu + bv * bv, 1e-12), 0, 1)
    return np.hypot(au - t * bu, av - t * bv)


def polyline(u: np.ndarray, v: np.ndarray, points: np.ndarray, width: float, edge: float) -> np.ndarray:
    dist = np.full(u.shape, np.inf, dtype=np.float32)
    for a, b in itertools.pairwise(points):
        dist = np.minimum(dist, segment_distance(u, v, tuple(a), tuple(b)))
    return soft_step(width / 2 - dist, edge)
