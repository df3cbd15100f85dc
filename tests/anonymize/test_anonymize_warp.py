"""The warp's coordinate convention, its exact identity at mu = 0, and the bound on the smoothed field."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from cxrpriv.anonymize.warp import (
    bounded_displacement,
    displacement_pixels,
    gaussian_kernel1d,
    identity_grid,
    normalized_from_pixels,
    smooth_displacement,
    warp,
)


def _raw_fields(shape: tuple[int, ...], seed: int = 0) -> list[torch.Tensor]:
    """Generator-like outputs in [-1, 1]: uniform, saturated +-1 at random, all +1, all -1."""
    g = torch.Generator().manual_seed(seed)
    uniform = torch.rand(shape, generator=g) * 2 - 1
    signs = torch.where(torch.rand(shape, generator=g) < 0.5, -1.0, 1.0)
    return [uniform, signs, torch.ones(shape), -torch.ones(shape)]


def test_identity_grid_is_the_pixel_centres_of_align_corners_false():
    grid = identity_grid(2, 3, 5, "cpu")
    assert grid.shape == (2, 3, 5, 2)
    torch.testing.assert_close(grid[0, 0, :, 0], torch.tensor([-0.8, -0.4, 0.0, 0.4, 0.8]))
    torch.testing.assert_close(grid[0, :, 0, 1], torch.tensor([-2 / 3, 0.0, 2 / 3]))
    theta = torch.eye(2, 3).expand(2, 2, 3)
    torch.testing.assert_close(grid, F.affine_grid(theta, [2, 1, 3, 5], align_corners=False))
    other = F.affine_grid(theta, [2, 1, 3, 5], align_corners=True)
    assert (grid - other).abs().max() > 0.1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("h", "w"), [(24, 24), (32, 20), (7, 13)])
def test_mu_zero_returns_the_input_bit_for_bit_also_after_smoothing(h, w, dtype):
    images = torch.rand(3, 1, h, w, generator=torch.Generator().manual_seed(1)).to(dtype)
    for raw in _raw_fields((3, 2, h, w)):
        displacement = bounded_displacement(raw.to(dtype), 0.0, sigma=2.0, kernel=9)
        assert torch.equal(warp(images, displacement), images)


def test_pixels_with_zero_displacement_stay_exact_when_others_move():
    images = torch.rand(1, 1, 24, 24, generator=torch.Generator().manual_seed(2))
    displacement = torch.zeros(1, 2, 24, 24)
    displacement[..., :, 12:] = 0.05
    warped = warp(images, displacement)
    assert torch.equal(warped[..., :12], images[..., :12])
    assert not torch.allclose(warped[..., 12:-3], images[..., 12:-3])


@pytest.mark.parametrize("mu", [0.1, 0.037, 1 / 3])
@pytest.mark.parametrize(("sigma", "kernel"), [(0.0, 9), (2.0, 9), (1.0, 5), (3.0, 15)])
def test_the_bound_holds_for_the_smoothed_field_including_saturated_inputs(mu, sigma, kernel):
    for raw in _raw_fields((2, 2, 16, 12), seed=3):
        displacement = bounded_displacement(raw, mu, sigma, kernel)
        assert displacement.abs().max().item() <= mu  # exact: no tolerance
    # A saturated field keeps its full size everywhere, the border included (replicate padding).
    full = bounded_displacement(torch.ones(1, 2, 16, 12), mu, sigma, kernel)
    torch.testing.assert_close(full, torch.full_like(full, mu))


def test_out_of_range_raw_values_are_still_bounded():
    raw = torch.randn(2, 2, 16, 16, generator=torch.Generator().manual_seed(4)) * 5
    assert bounded_displacement(raw, 0.2, sigma=1.0, kernel=5).abs().max().item() <= 0.2


def test_smoothing_is_a_separable_gaussian_that_keeps_constants_at_the_border():
    impulse = torch.zeros(1, 2, 15, 15)
    impulse[:, :, 7, 7] = 1.0
    weights = gaussian_kernel1d(2.0, 9)
    expected = torch.zeros(15, 15)
    expected[3:12, 3:12] = torch.outer(weights, weights)
    smoothed = smooth_displacement(impulse, sigma=2.0, kernel=9)
    torch.testing.assert_close(smoothed[0, 0], expected)
    torch.testing.assert_close(smoothed[0, 1], expected)
    constant = torch.full((1, 2, 6, 10), 0.3)
    # Zero padding would pull the outer ring towards 0 (the published grid smoothing's artifact).
    torch.testing.assert_close(smooth_displacement(constant, 2.0, 9), constant)


def test_smoothing_is_off_for_sigma_zero_and_rejects_even_kernels():
    field = torch.rand(1, 2, 8, 8)
    assert smooth_displacement(field, 0.0, 9) is field
    with pytest.raises(ValueError, match="odd"):
        smooth_displacement(field, 2.0, 8)


@pytest.mark.parametrize("axis", [0, 1])
def test_a_displacement_of_two_over_size_shifts_by_exactly_one_pixel(axis):
    size = 24  # not a power of two: the conversion has to be right, not lucky
    images = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(5))
    displacement = torch.zeros(2, 2, size, size)
    displacement[:, axis] = normalized_from_pixels(1.0, size)
    warped = warp(images, displacement)
    if axis == 0:  # x: the pixel at column j shows what was at column j + 1
        torch.testing.assert_close(warped[..., :, :-1], images[..., :, 1:], atol=2e-6, rtol=0)
    else:
        torch.testing.assert_close(warped[..., :-1, :], images[..., 1:, :], atol=2e-6, rtol=0)


def test_border_padding_repeats_the_edge_when_sampling_outside():
    images = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(6))
    displacement = torch.zeros(1, 2, 8, 8)
    displacement[:, 0] = 10.0  # far beyond the right edge
    warped = warp(images, displacement)
    torch.testing.assert_close(warped, images[..., -1:].expand_as(images), atol=2e-6, rtol=0)


def test_gradients_flow_from_the_warped_image_to_the_raw_field():
    images = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(7))
    raw = (torch.rand(2, 2, 16, 16, generator=torch.Generator().manual_seed(8)) * 2 - 1).requires_grad_()
    warped = warp(images, bounded_displacement(torch.tanh(raw), 0.1, sigma=1.0, kernel=5))
    (warped - images.flip(-1)).pow(2).mean().backward()
    assert raw.grad is not None and torch.isfinite(raw.grad).all()
    assert raw.grad.abs().sum() > 0


def test_displacement_pixels_uses_half_the_side_per_unit_and_axis():
    displacement = torch.zeros(2, 2, 32, 64)
    displacement[1, 0, 3, 4] = -0.1  # x: 0.1 * 64 / 2 = 3.2 px
    displacement[0, 1, 5, 6] = 0.15  # y: 0.15 * 32 / 2 = 2.4 px
    assert displacement_pixels(displacement, (32, 64)) == pytest.approx(3.2)
    displacement[0, 1, 5, 6] = 0.25  # y: 4.0 px now dominates
    assert displacement_pixels(displacement, (32, 64)) == pytest.approx(4.0)
    # PriCheXy-Net's mu = 0.01 at 256 px
    assert displacement_pixels(torch.full((1, 2, 4, 4), 0.01), 256) == pytest.approx(1.28)
    assert normalized_from_pixels(1.28, 256) == pytest.approx(0.01)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="does not match"):
        warp(torch.zeros(2, 1, 8, 8), torch.zeros(2, 2, 8, 6))
    with pytest.raises(ValueError, match="mu"):
        bounded_displacement(torch.zeros(1, 2, 4, 4), -0.1)
