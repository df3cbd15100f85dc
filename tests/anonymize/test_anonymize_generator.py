"""The anonymizer module: shapes, the bound, a near-identity start, seeded noise, a spec that rebuilds it."""

from __future__ import annotations

import json

import pytest
import torch

from cxrpriv.anonymize.generator import (
    BUILDER,
    PAPER_PROFILE,
    anonymizer_spec,
    build_anonymizer,
    build_generator,
)
from cxrpriv.training.registry import build_from_spec

TINY = {"widths": (4, 8, 16), "mu": 0.05, "sigma": 1.0, "kernel": 5, "init_scale": 1.0}


def _films(n: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def test_generator_maps_films_to_a_two_channel_field_in_the_tanh_range():
    generator = build_generator(widths=(4, 8, 16), noise_channels=2, init_scale=1.0)
    raw = generator(torch.rand(2, 3, 16, 16))
    assert raw.shape == (2, 2, 16, 16)
    assert raw.abs().max() < 1 and raw.abs().max() > 1e-3


def test_anonymizer_returns_warped_films_and_a_field_within_mu():
    torch.manual_seed(0)
    anonymizer = build_anonymizer(**{**TINY, "init_scale": 50.0})  # a saturated head: the bound must hold
    images = _films()
    warped, displacement = anonymizer(images)
    assert warped.shape == images.shape and displacement.shape == (3, 2, 16, 16)
    assert displacement.abs().max().item() <= 0.05
    assert displacement.abs().max().item() > 0.04
    assert not torch.allclose(warped, images)


def test_an_untrained_anonymizer_starts_near_the_identity():
    torch.manual_seed(1)
    images = _films()
    _, displacement = build_anonymizer(widths=(4, 8, 16), mu=0.05)(images)
    assert displacement.abs().max().item() < 0.1 * 0.05
    warped, displacement = build_anonymizer(widths=(4, 8, 16), mu=0.05, init_scale=0.0)(images)
    assert torch.equal(warped, images) and not displacement.any()


def test_gradients_reach_every_generator_parameter():
    torch.manual_seed(2)
    anonymizer = build_anonymizer(widths=(4, 8, 16), mu=0.05, init_scale=1e-2)
    images = _films()
    warped, _ = anonymizer(images)
    (warped - images.flip(-1)).pow(2).mean().backward()
    missing = [name for name, p in anonymizer.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_noise_channels_give_two_films_of_one_patient_different_warps():
    torch.manual_seed(3)
    anonymizer = build_anonymizer(**TINY, noise_channels=1).eval()
    film = _films(1).expand(2, 1, 16, 16)
    with torch.no_grad():
        _, both = anonymizer(film, generator=torch.Generator().manual_seed(0))
        _, again = anonymizer(film, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(both[0], both[1])
    assert torch.equal(both, again)
    with pytest.raises(ValueError, match="noise"):
        anonymizer(film)


def test_seeded_noise_makes_an_image_warp_independent_of_its_batch():
    torch.manual_seed(4)
    anonymizer = build_anonymizer(**TINY, noise_channels=2).eval()
    images = _films(3)
    seeds = [11, 12, 13]
    with torch.no_grad():
        _, batch = anonymizer(images, noise=anonymizer.seeded_noise(seeds, images))
        _, alone = anonymizer(images[1:2], noise=anonymizer.seeded_noise(seeds[1:2], images[1:2]))
        _, other = anonymizer(images[1:2], noise=anonymizer.seeded_noise([99], images[1:2]))
    torch.testing.assert_close(alone[0], batch[1], atol=1e-6, rtol=0)
    assert not torch.allclose(other[0], batch[1])


def test_state_dict_and_spec_rebuild_the_same_anonymizer(tmp_path):
    kwargs = {**TINY, "noise_channels": 1}
    torch.manual_seed(5)
    original = build_anonymizer(**kwargs)
    spec = json.loads(json.dumps(anonymizer_spec(kwargs, image_size=16)))
    assert spec["builder"] == BUILDER and spec["image_size"] == 16
    torch.save(original.state_dict(), tmp_path / "model.pt")

    rebuilt = build_anonymizer(**spec["kwargs"])
    images = _films(2)
    noise = original.seeded_noise([1, 2], images)
    with torch.no_grad():
        expected, _ = original.eval()(images, noise)
        before, _ = rebuilt.eval()(images, noise)
    assert not torch.allclose(before, expected)  # a fresh initialisation differs
    rebuilt.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    with torch.no_grad():
        warped, _ = rebuilt(images, noise)
    assert torch.equal(warped, expected)
    assert isinstance(build_from_spec(spec), type(original))
    assert (rebuilt.mu, rebuilt.sigma, rebuilt.kernel) == (0.05, 1.0, 5)


def test_the_paper_profile_builds_a_five_level_batchnorm_unet():
    anonymizer = build_anonymizer(**PAPER_PROFILE).eval()
    norms = [m for m in anonymizer.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and anonymizer.generator.multiple == 16
    with torch.no_grad():
        warped, displacement = anonymizer(torch.rand(1, 1, 32, 32))
    assert warped.shape == (1, 1, 32, 32) and displacement.abs().max().item() <= 0.01


def test_sides_the_unet_cannot_halve_are_refused_with_a_reason():
    anonymizer = build_anonymizer(widths=(4, 8, 16))
    with pytest.raises(ValueError, match="multiples of 4"):
        anonymizer(torch.rand(2, 1, 18, 16))
