"""Random affine jitter of image batches, drawn from a seeded stream (so a resumed run draws the same).

Without it an identity model learns films, not anatomy: it memorizes exact pixel positions that the next
film of the same patient does not share.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


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
    grid = F.affine_grid(theta_t, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, align_corners=False, padding_mode="zeros")
