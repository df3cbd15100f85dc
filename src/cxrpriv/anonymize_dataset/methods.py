"""The anonymizers ``cxrpriv anonymize`` applies, by name, to films of any size.

Each is a callable ``(films [B, 1, H, W] in [0, 1], seeds) -> (anonymized films, displacement or None)``
with a ``settings`` dict and a one-line ``description`` (what the release's DICOM DerivationDescription
says). ``seeds`` holds one integer per film (:func:`image_seeds`): an image's result never depends on its
batch.

The learned warp is computed where the generator was trained: the film is area-resized to the generator's
size, the generator's smoothed and bounded field is computed there, upsampled (bilinear, it is smooth) to
the stored size and applied to the full-size film. Normalized units do not depend on the size, so a
generator trained at 64 px moves the anatomy of a 1024-px film by the same fraction of its width, and the
bound mu holds at every size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from cxrpriv.anonymize.baselines import dp_pix, random_displacement
from cxrpriv.anonymize.data import resize
from cxrpriv.anonymize.generator import Anonymizer
from cxrpriv.anonymize.warp import resize_displacement, warp
from cxrpriv.anonymize_dataset import AnonymizeInputError
from cxrpriv.anonymize_dataset.config import AnonymizeConfig


class FilmAnonymizer(Protocol):
    method: str

    @property
    def settings(self) -> dict[str, Any]: ...

    @property
    def description(self) -> str: ...

    def __call__(
        self, films: torch.Tensor, seeds: Sequence[int]
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...


def image_seeds(seed: int, image_ids: Sequence[str]) -> list[int]:
    """One 63-bit seed per image from the stage seed and the (pseudonymous) image id."""
    return [
        int.from_bytes(hashlib.blake2b(f"{seed}:{image_id}".encode(), digest_size=8).digest(), "big") >> 1
        for image_id in image_ids
    ]


@dataclass
class LearnedWarp:
    model: Anonymizer
    size: int  # the side the generator was trained at (its spec's image_size)
    source: str  # the train_anonymizer output it was loaded from
    method: str = "learned"

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "mu": self.model.mu,
            "mu_pixels_at_generator_size": self.model.mu * self.size / 2,
            "generator_size": self.size,
            "smoothing_sigma": self.model.sigma,
            "noise_channels": self.model.noise_channels,
        }

    @property
    def description(self) -> str:
        return (
            f"cxr-privacy learned anonymizer: smooth deformation (U-Net displacement field, bound mu = "
            f"{self.model.mu:g} normalized units)"
        )

    @torch.no_grad()
    def __call__(self, films: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        small = resize(films, self.size)
        noise = self.model.seeded_noise(seeds, small) if self.model.noise_channels else None
        field = resize_displacement(self.model.displacement(small, noise), films.shape[-2:])
        return warp(films, field).clamp(0.0, 1.0), field


@dataclass
class DPPix:
    cell: int
    epsilon: float
    neighbours: float
    method: str = "dp_pix"

    @property
    def settings(self) -> dict[str, Any]:
        return {"b": self.cell, "eps": self.epsilon, "m": self.neighbours}

    @property
    def description(self) -> str:
        return (
            f"DP-Pix: {self.cell} x {self.cell} cell means + Laplace noise (eps = {self.epsilon:g}, "
            f"m = {self.neighbours:g})"
        )

    def __call__(self, films: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, None]:
        return dp_pix(films, self.cell, self.epsilon, self.neighbours, seeds=seeds), None


@dataclass
class RandomWarp:
    mu: float
    control_points: int
    method: str = "random_warp"

    @property
    def settings(self) -> dict[str, Any]:
        return {"mu": self.mu, "control_points": self.control_points}

    @property
    def description(self) -> str:
        return (
            f"random smooth deformation (bound mu = {self.mu:g} normalized units, {self.control_points} "
            "control points)"
        )

    def __call__(self, films: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        field = random_displacement(
            seeds,
            self.mu,
            tuple(films.shape[-2:]),
            control_points=self.control_points,
            device=films.device,
            dtype=films.dtype,
        )
        return warp(films, field).clamp(0.0, 1.0), field


@dataclass
class Unchanged:
    method: str = "none"

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    @property
    def description(self) -> str:
        return "none (pixels as ingested)"

    def __call__(self, films: torch.Tensor, seeds: Sequence[int]) -> tuple[torch.Tensor, None]:
        return films, None


def build_method(
    config: AnonymizeConfig, anonymizer_dir: Path | None, device: torch.device | str = "cpu"
) -> FilmAnonymizer:
    """The anonymizer ``config.method`` names; ``learned`` loads the generator from ``anonymizer_dir``."""
    if config.method == "dp_pix":
        return DPPix(config.dp_pix_cell, config.dp_pix_epsilon, config.dp_pix_neighbours)
    if config.method == "random_warp":
        return RandomWarp(config.random_warp_mu, config.random_warp_control_points)
    if config.method == "none":
        return Unchanged()
    if anonymizer_dir is None:
        raise AnonymizeInputError("method learned needs --anonymizer (a train_anonymizer output)")
    from cxrpriv.anonymize.model import load_anonymizer

    try:
        model, spec = load_anonymizer(Path(anonymizer_dir), device)
    except (FileNotFoundError, ValueError) as exc:
        raise AnonymizeInputError(f"--anonymizer {anonymizer_dir}: {exc}") from exc
    return LearnedWarp(model, int(spec["image_size"]), str(anonymizer_dir))
