"""The anonymizers `cxrpriv anonymize` applies: the learned warp at any size, baselines, per-image seeds."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cxrpriv.anonymize.generator import build_anonymizer
from cxrpriv.anonymize_dataset.methods import DPPix, LearnedWarp, RandomWarp, Unchanged, image_seeds


def _generator(mu: float = 0.1, noise_channels: int = 0) -> LearnedWarp:
    torch.manual_seed(0)
    # a large head init: an untrained generator with a clearly non-zero field
    model = build_anonymizer(
        widths=(4, 8), mu=mu, sigma=1.0, kernel=5, noise_channels=noise_channels, init_scale=5.0
    )
    return LearnedWarp(model.eval(), size=32, source="test")


def _films(n: int = 3, size: int = 32) -> torch.Tensor:
    torch.manual_seed(1)
    smooth = F.interpolate(torch.rand(n, 1, 8, 8), size=(size, size), mode="bicubic", align_corners=False)
    return smooth.clamp(0, 1)


def test_at_the_generator_size_the_learned_warp_is_the_trained_forward():
    warp = _generator()
    films = _films()
    anonymized, field = warp(films, image_seeds(1, ["a", "b", "c"]))
    with torch.no_grad():
        expected, expected_field = warp.model(films)
    assert torch.allclose(anonymized, expected.clamp(0, 1), atol=1e-6)
    assert torch.equal(field, expected_field)
    assert not torch.allclose(anonymized, films, atol=1e-3)  # it does move the film


def test_a_larger_film_gets_the_same_warp_up_to_resampling():
    warp = _generator()
    small = _films(size=32)
    large = F.interpolate(small, size=(128, 128), mode="bilinear", align_corners=False)
    seeds = image_seeds(1, ["a", "b", "c"])
    at_32, _ = warp(small, seeds)
    at_128, field = warp(large, seeds)
    assert field.shape[-2:] == (128, 128)
    back = F.interpolate(at_128, size=(32, 32), mode="area")
    # the same anatomy moved by the same fraction of the width: equal up to resampling blur
    assert (back - at_32).abs().mean() < 0.01
    assert (back - small).abs().mean() > 5 * (back - at_32).abs().mean()


def test_the_bound_holds_at_every_size():
    warp = _generator(mu=0.05)
    for size in (32, 64, 96):
        _, field = warp(_films(size=size), image_seeds(1, ["a", "b", "c"]))
        assert float(field.abs().max()) <= 0.05


def test_noise_is_seeded_per_image_not_per_batch():
    warp = _generator(noise_channels=2)
    films = _films()
    ids = ["a", "b", "c"]
    together, _ = warp(films, image_seeds(1, ids))
    alone, _ = warp(films[1:2], image_seeds(1, ids[1:2]))
    assert torch.allclose(together[1:2], alone, atol=1e-6)
    other_seed, _ = warp(films, image_seeds(2, ids))
    assert not torch.allclose(together, other_seed)


def test_dp_pix_random_warp_and_none():
    films = _films()
    seeds = image_seeds(1, ["a", "b", "c"])
    pixelized, field = DPPix(cell=8, epsilon=1e9, neighbours=1.0)(films, seeds)  # ~no noise: cell means
    assert field is None
    assert torch.allclose(
        pixelized[..., :8, :8],
        films[..., :8, :8].mean(dim=(-2, -1), keepdim=True).expand(-1, -1, 8, 8),
        atol=1e-6,
    )
    _, field = RandomWarp(mu=0.05, control_points=4)(films, seeds)
    assert float(field.abs().max()) <= 0.05 and float(field.abs().max()) > 0.04
    assert torch.equal(Unchanged()(films, seeds)[0], films)


def test_image_seeds_depend_on_the_seed_and_the_id_only():
    assert image_seeds(1, ["a", "b"]) == [image_seeds(1, ["a"])[0], image_seeds(1, ["b"])[0]]
    assert image_seeds(1, ["a"]) != image_seeds(2, ["a"])
    assert all(0 <= s < 2**63 for s in image_seeds(3, ["x", "y", "z"]))
