"""The learned anonymizer: a U-Net proposes a displacement field, bounded by mu, that warps the film.

:func:`build_generator` is MONAI's 2-D ``UNet`` (any depth: one stride-2 level per width after the first)
followed by an activation, a 1x1 convolution to the two displacement channels and ``tanh``. The 1x1 head
starts with its weights scaled by ``init_scale`` and a zero bias, so an untrained anonymizer is already
close to the identity (PriCheXy-Net spent 200 epochs of MSE pretraining to get there) while every layer
receives gradient from the first step; ``init_scale=0`` starts at exactly the identity, with gradient
reaching only the head at the first step.

Optional noise channels are concatenated to the film, so two films of one patient (or one film twice) can
be warped differently: training draws them from a ``torch.Generator``, evaluation from per-image seeds
(:func:`cxrpriv.anonymize.noise.image_noise`), which makes an image's warp independent of its batch.

Kept as a state dict plus a spec (builder and its arguments), like the verifier
(:func:`cxrpriv.reid.model.verifier_spec`), so later stages rebuild it and never unpickle code.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from cxrpriv.anonymize.noise import Seeds, image_noise
from cxrpriv.anonymize.warp import bounded_displacement, warp

BUILDER = "cxrpriv.anonymize.generator:build_anonymizer"
DEFAULT_WIDTHS = (16, 32, 64, 128)
# PriCheXy-Net's generator and warp: base 32, four downsamplings, BatchNorm, mu = 0.01, Gaussian 9 / 2.
PAPER_PROFILE: dict[str, Any] = {
    "widths": (32, 64, 128, 256, 512),
    "norm": "batch",
    "mu": 0.01,
    "sigma": 2.0,
    "kernel": 9,
}


class DisplacementGenerator(nn.Module):
    """[B, 1 + noise_channels, H, W] -> a raw displacement field [B, 2, H, W] in (-1, 1)."""

    def __init__(self, body: nn.Module, head: nn.Module, in_channels: int, levels: int) -> None:
        super().__init__()
        self.body = body
        self.head = head
        self.in_channels = in_channels
        self.multiple = 2 ** (levels - 1)  # H and W must be multiples of this (one halving per level)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.head(self.body(x)))


def _head(width: int, act: str, init_scale: float) -> nn.Sequential:
    conv = nn.Conv2d(width, 2, kernel_size=1)
    assert conv.bias is not None  # bias=True, the default, gives the layer one
    with torch.no_grad():
        conv.weight.mul_(init_scale)
        conv.bias.zero_()
    from monai.networks.layers.factories import Act  # lazily: `import monai` imports mlflow

    return nn.Sequential(Act[act](), conv)


def build_generator(
    widths: Sequence[int] = DEFAULT_WIDTHS,
    *,
    noise_channels: int = 0,
    norm: str = "batch",
    num_res_units: int = 2,
    act: str = "prelu",
    init_scale: float = 1e-2,
) -> DisplacementGenerator:
    """A MONAI U-Net with channel ``widths`` per level (stride 2 between levels) and the tanh head."""
    widths = tuple(int(width) for width in widths)
    if len(widths) < 2:
        raise ValueError(f"a U-Net needs at least two levels of widths, got {widths}")
    if noise_channels < 0:
        raise ValueError(f"noise_channels must be >= 0, got {noise_channels}")
    from monai.networks.nets import UNet  # lazily: `import monai` imports mlflow, and is slow

    in_channels = 1 + noise_channels
    body = UNet(
        spatial_dims=2,
        in_channels=in_channels,
        out_channels=widths[0],
        channels=widths,
        strides=(2,) * (len(widths) - 1),
        num_res_units=num_res_units,
        act=act,
        norm=norm,
    )
    return DisplacementGenerator(body, _head(widths[0], act, init_scale), in_channels, len(widths))


class Anonymizer(nn.Module):
    """Generator + bound + smoothing: ``forward(images) -> (warped, displacement)``.

    ``images`` are [B, 1, H, W] in [0, 1]; ``displacement`` is [B, 2, H, W] in normalized units
    (``align_corners=False``, see :mod:`cxrpriv.anonymize.warp`), every component within [-mu, mu].
    """

    def __init__(
        self,
        generator: DisplacementGenerator,
        mu: float,
        sigma: float = 2.0,
        kernel: int = 9,
        noise_channels: int = 0,
    ) -> None:
        super().__init__()
        if generator.in_channels != 1 + noise_channels:
            raise ValueError(
                f"the generator takes {generator.in_channels} channels, not 1 + {noise_channels} noise"
            )
        self.generator = generator
        self.mu = float(mu)
        self.sigma = float(sigma)
        self.kernel = int(kernel)
        self.noise_channels = int(noise_channels)

    def seeded_noise(self, seeds: Seeds, images: torch.Tensor) -> torch.Tensor:
        """Noise channels for ``images``, image i drawn from seed ``seeds[i]``: independent of the batch."""
        _, _, h, w = images.shape
        return image_noise(seeds, (self.noise_channels, h, w), images.device, images.dtype)

    def _noise(
        self, images: torch.Tensor, noise: torch.Tensor | None, generator: torch.Generator | None
    ) -> torch.Tensor | None:
        b, _, h, w = images.shape
        if self.noise_channels == 0:
            if noise is not None:
                raise ValueError("this anonymizer has no noise channels; do not pass noise")
            return None
        if noise is None:
            if generator is None:
                raise ValueError(
                    f"this anonymizer takes {self.noise_channels} noise channel(s): pass noise (e.g. "
                    "seeded_noise(seeds, images)) or a torch.Generator to draw it from"
                )
            shape = (b, self.noise_channels, h, w)
            noise = torch.randn(shape, generator=generator, device=generator.device)
        if noise.shape != (b, self.noise_channels, h, w):
            raise ValueError(
                f"expected noise [{b}, {self.noise_channels}, {h}, {w}], got {tuple(noise.shape)}"
            )
        return noise.to(device=images.device, dtype=images.dtype)

    def raw_field(
        self,
        images: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The generator's output [B, 2, H, W] in (-1, 1), before smoothing and the bound (what identity
        pretraining pulls to zero: independent of mu, so it also works at mu = 0)."""
        if images.ndim != 4 or images.shape[1] != 1:
            raise ValueError(f"expected grayscale films [B, 1, H, W], got shape {tuple(images.shape)}")
        multiple = self.generator.multiple
        if images.shape[2] % multiple or images.shape[3] % multiple:
            raise ValueError(
                f"image sides {tuple(images.shape[2:])} must be multiples of {multiple} for this U-Net depth"
            )
        extra = self._noise(images, noise, generator)
        inputs = images if extra is None else torch.cat([images, extra], dim=1)
        # float32 from here on: under autocast the U-Net may run in half precision, but the smoothing,
        # the bound and the sampling grid should not (a bfloat16 grid is off by a pixel at 256 px).
        return self.generator(inputs).float()

    def displacement(
        self,
        images: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """The smoothed, bounded field [B, 2, H, W] (normalized units) that :meth:`forward` warps with."""
        raw = self.raw_field(images, noise, generator)
        return bounded_displacement(raw, self.mu, self.sigma, self.kernel)

    def forward(
        self,
        images: torch.Tensor,
        noise: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        displacement = self.displacement(images, noise, generator)
        return warp(images, displacement), displacement

    def predict_images(self, images: torch.Tensor) -> torch.Tensor:
        """The anonymized films alone (what the registered MLflow model returns), noise seeded from each
        film's own pixels: a film gets the same warp whatever batch it comes in."""
        noise = None
        if self.noise_channels:
            seeds = [zlib.crc32(image.detach().cpu().numpy().tobytes()) for image in images]
            noise = self.seeded_noise(seeds, images)
        return self(images, noise=noise)[0]


# Keyword-only hyperparameters that spec.json stores as the builder's arguments (training.artifacts): a
# dataclass of them would change the stored format.
def build_anonymizer(  # noqa: PLR0913
    *,
    widths: Sequence[int] = DEFAULT_WIDTHS,
    noise_channels: int = 0,
    mu: float = 0.01,
    sigma: float = 2.0,
    kernel: int = 9,
    norm: str = "batch",
    num_res_units: int = 2,
    act: str = "prelu",
    init_scale: float = 1e-2,
) -> Anonymizer:
    """The registry builder (``cxrpriv.anonymize.generator:build_anonymizer``): an untrained anonymizer.

    ``mu`` is in normalized units (``align_corners=False``: mu * size / 2 px); ``sigma``/``kernel`` are the
    Gaussian smoothing of the raw field (``sigma=0``: none).
    """
    generator = build_generator(
        widths,
        noise_channels=noise_channels,
        norm=norm,
        num_res_units=num_res_units,
        act=act,
        init_scale=init_scale,
    )
    return Anonymizer(generator, mu, sigma, kernel, noise_channels)


def _jsonable(value: Any) -> Any:
    return [_jsonable(item) for item in value] if isinstance(value, tuple | list) else value


def anonymizer_spec(kwargs: Mapping[str, Any], image_size: int) -> dict[str, Any]:
    """What rebuilds a trained anonymizer: ``build_anonymizer(**spec["kwargs"])`` + ``load_state_dict``."""
    return {
        "builder": BUILDER,
        "kwargs": {key: _jsonable(value) for key, value in kwargs.items()},
        "image_size": int(image_size),
        "input": "float [B, 1, image_size, image_size] in [0, 1] (+ noise [B, noise_channels, H, W])",
        "output": "(warped [B, 1, H, W], displacement [B, 2, H, W] in normalized units, align_corners=False)",
    }
