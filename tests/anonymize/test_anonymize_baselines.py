"""DP-Pix and the random warp: exact cell means, the Laplace scale, and per-image seeding."""

from __future__ import annotations

import math

import pytest
import torch

from cxrpriv.anonymize.baselines import (
    cell_means,
    dp_pix,
    dp_pix_scale,
    random_displacement,
    random_warp,
)


def _films(n: int = 3, h: int = 16, w: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, h, w, generator=torch.Generator().manual_seed(seed))


def _cell_means_by_loop(images: torch.Tensor, b: int) -> torch.Tensor:
    out = torch.empty_like(images)
    h, w = images.shape[-2:]
    for top in range(0, h, b):
        for left in range(0, w, b):
            cell = images[..., top : top + b, left : left + b]
            out[..., top : top + b, left : left + b] = cell.mean(dim=(-2, -1), keepdim=True)
    return out


@pytest.mark.parametrize(("h", "w", "b"), [(12, 12, 4), (10, 7, 3), (5, 9, 8), (6, 6, 1)])
def test_without_noise_dp_pix_is_the_exact_cell_means_partial_cells_included(h, w, b):
    images = _films(2, h, w)
    expected = _cell_means_by_loop(images, b)
    torch.testing.assert_close(cell_means(images, b), expected)
    torch.testing.assert_close(dp_pix(images, b, math.inf, seeds=[0, 1]), expected)


def test_the_laplace_scale_is_m_over_b_squared_eps():
    assert dp_pix_scale(8, 0.1, 1.0) == pytest.approx(1 / 6.4)
    assert dp_pix_scale(2, 0.5, 3.0) == pytest.approx(1.5)
    assert dp_pix_scale(4, math.inf) == 0.0
    with pytest.raises(ValueError, match="eps"):
        dp_pix_scale(4, 0.0)


@pytest.mark.parametrize("m", [1.0, 2.0])
def test_the_noise_has_the_laplace_scale_one_draw_per_cell(m):
    b, scale = 2, 0.02
    eps = m / (b * b * scale)
    grey = torch.full((8, 1, 64, 64), 0.5)  # 8 x 32 x 32 = 8192 cells; 0.5 +- 0.2 never clips
    noisy = dp_pix(grey, b, eps, m, seeds=range(8))
    # One value per cell: the 2 x 2 block is constant.
    assert torch.equal(noisy[..., ::2, ::2], noisy[..., 1::2, 1::2])
    per_cell = noisy[..., ::2, ::2] - 0.5
    assert 0.0 < per_cell.abs().max() < 0.5
    # Laplace(0, s): E|X| = s (standard error here s / sqrt(8192) ~ 2e-4) and mean 0.
    assert per_cell.abs().mean().item() == pytest.approx(scale, rel=0.06)
    assert abs(per_cell.mean().item()) < 4 * scale * math.sqrt(2) / math.sqrt(8192)


def test_dp_pix_clips_to_the_unit_range():
    noisy = dp_pix(_films(2), 2, 0.5, seeds=[1, 2])  # scale 0.5: clipping bites
    assert noisy.min() == 0.0 and noisy.max() == 1.0


def test_dp_pix_depends_on_the_seed_not_on_the_batch():
    images = _films(3)
    batch = dp_pix(images, 4, 2.0, seeds=[5, 6, 7])
    assert torch.equal(batch, dp_pix(images, 4, 2.0, seeds=[5, 6, 7]))
    assert torch.equal(batch[1:2], dp_pix(images[1:2], 4, 2.0, seeds=[6]))
    reordered = dp_pix(images[[2, 0]], 4, 2.0, seeds=[7, 5])
    assert torch.equal(reordered, batch[[2, 0]])
    assert not torch.equal(batch[1:2], dp_pix(images[1:2], 4, 2.0, seeds=[8]))
    with pytest.raises(ValueError, match="one seed per image"):
        dp_pix(images, 4, 2.0, seeds=[1, 2])


@pytest.mark.parametrize("mu", [0.02, 0.16])
def test_the_random_field_reaches_exactly_mu_in_every_image(mu):
    field = random_displacement(range(6), mu, 32)
    peaks = field.abs().flatten(1).amax(dim=1)
    torch.testing.assert_close(peaks, torch.full((6,), mu), atol=1e-6, rtol=0)
    assert field.abs().max().item() <= mu
    # Rescaled, not clipped: the peak is a point, not a plateau of clipped overshoot.
    at_peak = (field.abs() > mu - 1e-6).flatten(1).sum(dim=1)
    assert (at_peak <= 2).all()
    # Smooth: neighbouring pixels move nearly together (5 control points over 32 px).
    assert (field[..., 1:] - field[..., :-1]).abs().max() < 0.5 * mu  # white noise: up to 2 mu


def test_random_warp_is_deterministic_per_seed_and_batch_independent():
    images = _films(3, 24, 24)
    batch = random_warp(images, 0.1, seeds=[3, 4, 5])
    assert torch.equal(batch, random_warp(images, 0.1, seeds=[3, 4, 5]))
    assert torch.equal(batch[2:], random_warp(images[2:], 0.1, seeds=[5]))
    assert not torch.allclose(batch[2:], random_warp(images[2:], 0.1, seeds=[6]))
    assert not torch.allclose(batch, images)
    fields = random_displacement([3, 4], 0.1, (24, 24), control_points=3)
    assert not torch.allclose(fields, random_displacement([3, 4], 0.1, (24, 24)))


def test_random_warp_with_mu_zero_is_the_identity():
    images = _films(2, 20, 12)
    assert torch.equal(random_warp(images, 0.0, seeds=[1, 2]), images)
