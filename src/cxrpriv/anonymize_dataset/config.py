"""Typed configuration of the ``anonymize`` stage (the dataset, the trained anonymizer's directory and the
device are CLI options)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from cxrpriv.config import ConfigError, help_field

METHODS = ("learned", "dp_pix", "random_warp", "none")


@dataclass(frozen=True)
class AnonymizeConfig:
    method: Literal["learned", "dp_pix", "random_warp", "none"] = help_field(
        "learned (the train_anonymizer generator), dp_pix (cell means + Laplace noise), random_warp (an "
        "unguided smooth field of bound random_warp_mu) or none (the films copied unchanged: the reference)."
    )
    seed: int = help_field(
        "Seed of the per-image randomness (noise channels, DP-Pix noise, random fields); image i's draws "
        "come from this seed and its pseudonymous image id, so they do not depend on batches or shards."
    )
    batch_size: int = help_field("Films per forward pass.")
    dp_pix_cell: int = help_field("DP-Pix: side b of the pixelization cells, in stored pixels.")
    dp_pix_epsilon: float = help_field("DP-Pix: privacy parameter eps (Laplace scale 255 m / (b^2 eps)).")
    dp_pix_neighbours: float = help_field(
        "DP-Pix: m, how many pixels two neighbouring images may differ in (Fan 2018: 1)."
    )
    random_warp_mu: float = help_field(
        "random_warp: bound of every displacement component, normalized units like train_anonymizer.mu "
        "(keep them equal to compare at the same bound)."
    )
    random_warp_control_points: int = help_field(
        "random_warp: control points per side of the random field (bicubic in between); fewer is smoother."
    )

    def validate(self) -> None:
        checks = [
            (self.method in METHODS, f"method must be one of {', '.join(METHODS)}"),
            (self.batch_size >= 1, "batch_size must be at least 1"),
            (self.dp_pix_cell >= 1, "dp_pix_cell must be at least 1"),
            (self.dp_pix_epsilon > 0, "dp_pix_epsilon must be > 0"),
            (self.dp_pix_neighbours >= 0, "dp_pix_neighbours must be >= 0"),
            (
                math.isfinite(self.random_warp_mu) and self.random_warp_mu >= 0,
                "random_warp_mu must be a finite bound >= 0",
            ),
            (self.random_warp_control_points >= 2, "random_warp_control_points must be at least 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"anonymize: {message}")
