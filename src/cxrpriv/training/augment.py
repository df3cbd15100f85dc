"""Random affine jitter of image batches, drawn from a seeded stream (so a resumed run draws the same).

Without it an identity model learns films, not anatomy: it memorizes exact pixel positions that the next
film of the same patient does not share; a classifier likewise overfits a small cohort's exact framing.

Two draws over one resampling (:func:`sampling_grid`, :func:`resample`):

- :func:`random_affine` (the re-identification families): normal shift, zoom and rotation, drawn batch by
  batch;
- :class:`ZoomShiftCrop` (the classifier): uniform zoom and shift and an optional random crop, drawn for the
  whole epoch at once; the crop's central window at evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


def sampling_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The [n, height, width, 2] sampling grid of the affine maps ``theta`` [n, 2, 3] (normalized
    coordinates, pixel centres: ``align_corners=False``)."""
    return F.affine_grid(theta, [len(theta), 1, height, width], align_corners=False)


def resample(images: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """``images`` read at ``grid``; zero outside the film (``nearest`` keeps masks binary)."""
    return F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)


def random_affine(
    images: torch.Tensor, rng: np.random.Generator, shift: float, scale: float, rotation_deg: float
) -> torch.Tensor:
    """Each image shifted, zoomed and rotated by normal draws of these standard deviations.

    ``shift`` is a fraction of the half-width, ``scale`` a relative zoom, ``rotation_deg`` degrees; zero
    padding outside the film. All zero: the images are returned as they are.
    """
    n = len(images)
    if n == 0 or shift == scale == rotation_deg == 0:
        return images
    angle = rng.normal(0.0, math.radians(rotation_deg), n)
    zoom = 1.0 + rng.normal(0.0, scale, n)
    offset = rng.normal(0.0, shift, (n, 2))
    theta = np.zeros((n, 2, 3), dtype=np.float32)
    theta[:, 0, 0] = theta[:, 1, 1] = np.cos(angle) / zoom
    theta[:, 0, 1], theta[:, 1, 0] = -np.sin(angle) / zoom, np.sin(angle) / zoom
    theta[:, :, 2] = offset
    theta_t = torch.from_numpy(theta).to(images.device)
    return resample(images, sampling_grid(theta_t, *images.shape[-2:]))


@dataclass(frozen=True)
class ZoomShiftCrop:
    """Per-image uniform zoom and shift plus a random ``crop``-px window of ``size``-px images, as one
    affine resampling (masks follow the images); the central window at evaluation.

    ``scale`` is the largest relative zoom, ``shift`` the largest shift as a fraction of the width.
    """

    size: int  # the images' side
    crop: int  # the side of what the network sees (``size``: no crop)
    scale: float
    shift: float

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """[n, 3]: zoom, x shift, y shift in normalized coordinates."""
        zoom = 1 + rng.uniform(-self.scale, self.scale, n)
        shift = rng.uniform(-self.shift, self.shift, (n, 2)) * 2
        crop_room = 1 - self.crop / self.size  # a random crop is a shift within this room
        shift += rng.uniform(-crop_room, crop_room, (n, 2))
        return np.column_stack([zoom, shift]).astype(np.float32)

    def apply(
        self, images: torch.Tensor, params: np.ndarray, masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The training view of ``images`` (and ``masks``) under the drawn ``params``, ``crop`` px."""
        p = torch.as_tensor(params, device=images.device)
        ratio = self.crop / self.size
        theta = torch.zeros(len(p), 2, 3, device=images.device)
        theta[:, 0, 0] = ratio / p[:, 0]
        theta[:, 1, 1] = ratio / p[:, 0]
        theta[:, :, 2] = p[:, 1:]
        grid = sampling_grid(theta, self.crop, self.crop)
        if masks is not None:
            masks = resample(masks.float(), grid, mode="nearest")
        return resample(images, grid), masks

    def center(self, images: torch.Tensor) -> torch.Tensor:
        """The central ``crop``-px window (the evaluation view)."""
        if self.crop == self.size:
            return images
        start = (self.size - self.crop) // 2
        return images[..., start : start + self.crop, start : start + self.crop]
