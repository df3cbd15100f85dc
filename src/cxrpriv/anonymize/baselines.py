"""Baselines the anonymizer is compared with at equal budget: DP-Pix and an unguided random smooth warp.

DP-Pix (Fan 2018) pixelizes a film into b x b cell means and adds Laplace noise to each cell; on 8-bit
values the scale is 255 m / (b^2 eps) (m: how many pixels two neighbouring images may differ in), i.e.
m / (b^2 eps) on [0, 1] films, and the result is clipped to [0, 1]. The random warp draws a smooth field
(values in [-1, 1] on a coarse control grid, bicubic-upsampled) and rescales it so its largest component is
exactly mu, the anonymizer's bound: what a deformation of that size does without any guidance.

Randomness is per image, from one seed each (:mod:`cxrpriv.anonymize.noise`): the result for a film depends
on its seed, never on the batch it was processed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cxrpriv.anonymize.noise import Seeds, image_generators, seed_list
from cxrpriv.anonymize.warp import ALIGN_CORNERS, bound_in_dtype, warp


def cell_means(images: torch.Tensor, b: int) -> torch.Tensor:
    """Each b x b cell of ``images`` [B, C, H, W] replaced by its mean, at full size.

    When a side is not a multiple of b, the last (partial) cells average the pixels they have.
    """
    if b < 1:
        raise ValueError(f"the cell side b must be >= 1, got {b}")
    h, w = images.shape[-2:]
    # ceil_mode keeps the partial last cell, and without padding it divides by the pixels it covers.
    means = F.avg_pool2d(images, kernel_size=b, stride=b, ceil_mode=True)
    return means.repeat_interleave(b, dim=-2).repeat_interleave(b, dim=-1)[..., :h, :w]


def dp_pix_scale(b: int, eps: float, m: float = 1.0) -> float:
    """The Laplace scale of DP-Pix on [0, 1] images: m / (b^2 eps) (0 when eps is infinite)."""
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    if m < 0:
        raise ValueError(f"m must be >= 0, got {m}")
    return 0.0 if math.isinf(eps) else m / (b * b * eps)


def _laplace(shape: tuple[int, ...], scale: float, generator: torch.Generator) -> torch.Tensor:
    """Laplace(0, scale) as the difference of two Exp(1) draws (no log(0) at the tails)."""
    draws = torch.empty((2, *shape), dtype=torch.float64).exponential_(generator=generator)
    return (draws[0] - draws[1]) * scale


def dp_pix_noise(images: torch.Tensor, b: int, scale: float, seeds: Seeds) -> torch.Tensor:
    """One Laplace draw per cell and image, image i from seed ``seeds[i]``, expanded to full size."""
    n, c, h, w = images.shape
    cells = (c, math.ceil(h / b), math.ceil(w / b))
    draws = [_laplace(cells, scale, g) for g in image_generators(seeds, n)]
    if not draws:
        return torch.zeros_like(images)
    per_cell = torch.stack(draws).to(device=images.device, dtype=images.dtype)
    return per_cell.repeat_interleave(b, dim=-2).repeat_interleave(b, dim=-1)[..., :h, :w]


def dp_pix(images: torch.Tensor, b: int, eps: float, m: float = 1.0, *, seeds: Seeds) -> torch.Tensor:
    """DP-Pix of ``images`` [B, C, H, W] in [0, 1]: cell means + Laplace(m / (b^2 eps)) per cell, clipped.

    ``eps=math.inf`` gives the exact cell means (no noise). ``seeds``: one integer per image.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W], got shape {tuple(images.shape)}")
    means = cell_means(images, b)
    scale = dp_pix_scale(b, eps, m)
    if scale == 0:
        seed_list(seeds, images.shape[0])  # the same contract with or without noise
        return means.clamp(0.0, 1.0)
    return (means + dp_pix_noise(images, b, scale, seeds)).clamp(0.0, 1.0)


def random_displacement(
    seeds: Seeds,
    mu: float,
    size: int | Sequence[int],
    *,
    control_points: int = 5,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Smooth random fields [len(seeds), 2, H, W], each with its largest component exactly mu.

    Uniform values in [-1, 1] on a ``control_points`` square grid per image and component, bicubic-upsampled
    (``align_corners=False``, like the warp), divided by the image's largest absolute value and multiplied
    by mu. Drawn and upsampled on the CPU in float64, per image.
    """
    if not (math.isfinite(mu) and mu >= 0):
        raise ValueError(f"mu must be a finite bound >= 0, got {mu}")
    if control_points < 2:
        raise ValueError(f"need at least 2 control points per side, got {control_points}")
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    fields = []
    for generator in image_generators(seeds, len(seeds)):
        control = torch.rand((1, 2, control_points, control_points), generator=generator, dtype=torch.float64)
        field = F.interpolate(
            control * 2 - 1, size=(height, width), mode="bicubic", align_corners=ALIGN_CORNERS
        )[0]
        peak = field.abs().amax()
        fields.append(field * (mu / peak) if peak > 0 else field * 0)
    if not fields:
        return torch.empty((0, 2, height, width), device=device, dtype=dtype)
    stacked = torch.stack(fields).to(dtype)
    # Rounding of the rescale (or the cast) may overshoot mu by an ulp; the bound is a promise.
    bound = bound_in_dtype(mu, dtype)
    return torch.maximum(torch.minimum(stacked, bound), -bound).to(device)


def random_warp(images: torch.Tensor, mu: float, control_points: int = 5, *, seeds: Seeds) -> torch.Tensor:
    """``images`` [B, C, H, W] warped by :func:`random_displacement` (largest component mu, per image)."""
    if images.ndim != 4:
        raise ValueError(f"expected images [B, C, H, W], got shape {tuple(images.shape)}")
    field = random_displacement(
        seeds,
        mu,
        tuple(images.shape[-2:]),
        control_points=control_points,
        device=images.device,
        dtype=images.dtype,
    )
    return warp(images, field)
