"""Displacement fields and the differentiable warp of the anonymizer, in one coordinate convention.

Convention, used everywhere here: ``grid_sample`` coordinates with ``align_corners=False``. A normalized
coordinate in [-1, 1] spans the image's outer pixel *edges*, pixel i (of n) has its centre at
(2i + 1) / n - 1, and one normalized unit is n / 2 pixels (128 px at 256 px). A displacement field is
[B, 2, H, W] in normalized units, channel 0 along the width (x) and channel 1 along the height (y), the order
``grid_sample`` reads its grid in. PriCheXy-Net used ``align_corners=True`` (one unit = (n - 1) / 2 px);
its mu = 0.01 is 1.28 px at 256 px either way, up to that half pixel.

Why not the published warp: it smoothed the whole sampling grid (identity + displacement) with zero
padding, which pulls the border ring of the grid towards zero, i.e. towards the image centre, even at
mu = 0. Here only the displacement is smoothed, with replicate padding, and the bound is applied after the
smoothing, so mu = 0 is the identity and mu bounds the field that is actually used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

ALIGN_CORNERS = False


def identity_grid(
    n: int, h: int, w: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The sampling grid [n, h, w, 2] (x, y) of the identity under ``align_corners=False``: pixel centres.

    Computed in float64 from (2i + 1) / size - 1 and rounded once, which is closer than ``F.affine_grid``
    (a float32 ``linspace`` times (size - 1) / size).
    """

    def axis(size: int) -> torch.Tensor:
        return (torch.arange(size, dtype=torch.float64, device=device) * 2 + 1) / size - 1

    y, x = torch.meshgrid(axis(h), axis(w), indexing="ij")
    grid = torch.stack([x, y], dim=-1).to(dtype)
    return grid.unsqueeze(0).expand(n, h, w, 2).contiguous()


def gaussian_kernel1d(sigma: float, kernel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalized 1-D Gaussian weights of odd length ``kernel``."""
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"the smoothing kernel needs an odd length >= 1, got {kernel}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    offsets = torch.arange(kernel, dtype=torch.float64) - kernel // 2
    weights = torch.exp(-(offsets**2) / (2 * sigma**2))
    return (weights / weights.sum()).to(dtype)


def smooth_displacement(field: torch.Tensor, sigma: float = 2.0, kernel: int = 9) -> torch.Tensor:
    """Separable Gaussian smoothing of a field [B, C, H, W], each channel alone, replicate padding.

    Every output value is a convex combination of input values (non-negative weights summing to one, the
    padding repeats edge values), so a field inside [-a, a] stays inside it (up to rounding, see
    :func:`bounded_displacement`), and a constant field (the zero field included) is unchanged.
    ``sigma <= 0`` or ``kernel <= 1`` means no smoothing.
    """
    if field.ndim != 4:
        raise ValueError(f"expected a field [B, C, H, W], got shape {tuple(field.shape)}")
    if sigma <= 0 or kernel <= 1:
        return field
    channels = field.shape[1]
    weights = gaussian_kernel1d(sigma, kernel, field.dtype).to(field.device)
    half = kernel // 2
    along_w = weights.view(1, 1, 1, kernel).expand(channels, 1, 1, kernel)
    along_h = weights.view(1, 1, kernel, 1).expand(channels, 1, kernel, 1)
    out = F.conv2d(F.pad(field, (half, half, 0, 0), mode="replicate"), along_w, groups=channels)
    return F.conv2d(F.pad(out, (0, 0, half, half), mode="replicate"), along_h, groups=channels)


def bound_in_dtype(mu: float, dtype: torch.dtype) -> torch.Tensor:
    """The largest value of ``dtype`` that is <= mu (0.1 in float32 rounds *up* to 0.10000000149)."""
    bound = torch.tensor(mu, dtype=dtype)
    if float(bound) > mu:
        bound = torch.nextafter(bound, torch.tensor(0.0, dtype=dtype))
    return bound


def bounded_displacement(raw: torch.Tensor, mu: float, sigma: float = 0.0, kernel: int = 9) -> torch.Tensor:
    """A generator output ``raw`` in [-1, 1] (tanh) -> a displacement with every component in [-mu, mu].

    Order: smooth ``raw`` (convex combinations keep it in [-1, 1]), clamp to [-1, 1] (only float rounding
    of the smoothing can leave it, by an ulp; the clamp also catches a caller's out-of-range ``raw``), then
    multiply by mu, rounded down to the field's dtype. Rounding is monotone, so |r| <= 1 gives
    |fl(mu * r)| <= mu exactly: the bound holds for the field that is used, not only for the generator's
    output. Smoothing is linear, so this is the same field as scaling first and smoothing second, without
    the rounding hole.
    """
    if not (math.isfinite(mu) and mu >= 0):
        raise ValueError(f"mu must be a finite bound >= 0, got {mu}")
    smoothed = smooth_displacement(raw, sigma, kernel)
    return smoothed.clamp(-1.0, 1.0) * bound_in_dtype(mu, raw.dtype).to(raw.device)


def resize_displacement(displacement: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """A field [B, 2, h, w] resampled (bilinear) to [B, 2, *size], for a film stored at another size.

    Normalized units do not depend on the image size, so the values are kept as they are: a field computed
    at the generator's size moves the anatomy of a larger film by the same fraction of its width. Bilinear
    weights are convex, so the resized field keeps every bound of the original one.
    """
    height, width = (int(side) for side in size)
    if displacement.shape[-2:] == (height, width):
        return displacement
    return F.interpolate(displacement, size=(height, width), mode="bilinear", align_corners=ALIGN_CORNERS)


def _sample(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=ALIGN_CORNERS)


def warp(images: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of ``images`` [B, C, H, W] at identity + ``displacement`` [B, 2, H, W].

    Border padding (a pixel pulled from outside takes the nearest edge value), ``align_corners=False``,
    differentiable in both arguments. ``grid_sample`` does not reproduce an image exactly at the identity
    grid (its unnormalization rounds: ~1e-5 at 256 px in float32), so the result is
    ``images + (sample(identity + d) - sample(identity))``: wherever d is zero, the pixel is returned
    bit-exactly (mu = 0 is the identity), and elsewhere the sampler's identity error is removed.
    """
    if images.ndim != 4 or displacement.ndim != 4 or displacement.shape[1] != 2:
        raise ValueError(
            f"expected images [B, C, H, W] and a displacement [B, 2, H, W], got {tuple(images.shape)} and "
            f"{tuple(displacement.shape)}"
        )
    b, _, h, w = images.shape
    if displacement.shape[0] != b or displacement.shape[2:] != (h, w):
        raise ValueError(
            f"displacement {tuple(displacement.shape)} does not match images {tuple(images.shape)}"
        )
    grid = identity_grid(b, h, w, images.device, images.dtype)
    moved = (grid + displacement.to(images.dtype).permute(0, 2, 3, 1)).contiguous()
    return images + (_sample(images, moved) - _sample(images, grid))


def normalized_from_pixels(pixels: float, size: int) -> float:
    """A distance of ``pixels`` along an axis of ``size`` pixels, in normalized units (2 / size per px)."""
    return 2.0 * pixels / size


def displacement_pixels(displacement: torch.Tensor, size: int | Sequence[int]) -> float:
    """The largest displacement component of ``displacement`` [B, 2, H, W], in pixels.

    ``size`` is the image side, or (height, width); one normalized unit is size / 2 px along each axis.
    Per component, like the bound mu: the Euclidean length can be up to sqrt(2) times more.
    """
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if displacement.numel() == 0:
        return 0.0
    x_px = displacement[:, 0].abs().amax() * (width / 2)
    y_px = displacement[:, 1].abs().amax() * (height / 2)
    return float(torch.maximum(x_px, y_px))
