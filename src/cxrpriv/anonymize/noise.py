"""Per-image seeded randomness for the anonymizer and its baselines.

Each image gets its own ``torch.Generator`` seeded from one integer the caller derives (for example from the
image id), and its random draws are made on the CPU, then moved: an image's noise is then the same whatever
batch it is in, whatever its position there, and on whichever device the batch lives.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

Seeds = Sequence[int] | np.ndarray | torch.Tensor
SEED_MASK = 2**64 - 1  # torch.Generator.manual_seed takes 64 bits; larger or negative seeds are wrapped


def seed_list(seeds: Seeds, count: int) -> list[int]:
    """``seeds`` as Python integers, checked to hold exactly one per image."""
    values = [int(seed) for seed in (seeds.tolist() if isinstance(seeds, torch.Tensor) else seeds)]
    if len(values) != count:
        raise ValueError(f"expected one seed per image ({count}), got {len(values)}")
    return values


def image_generators(seeds: Seeds, count: int) -> Iterator[torch.Generator]:
    """One CPU generator per image, seeded with ``seeds[i]`` (wrapped to 64 bits)."""
    for seed in seed_list(seeds, count):
        generator = torch.Generator(device="cpu")
        generator.manual_seed(seed & SEED_MASK)
        yield generator


def image_noise(
    seeds: Seeds,
    shape: Sequence[int],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Standard normal noise [len(seeds), *shape]; image i is drawn from a generator seeded ``seeds[i]``."""
    draws = [torch.randn(tuple(shape), generator=g) for g in image_generators(seeds, len(seeds))]
    stacked = torch.stack(draws) if draws else torch.empty((0, *shape))
    return stacked.to(device=device, dtype=dtype)
