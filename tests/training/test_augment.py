"""The one augmentation module: the re-identification families' normal jitter and the classifier's uniform
zoom, shift and crop, over one resampling."""

from __future__ import annotations

import numpy as np
import torch

from cxrpriv.training.augment import ZoomShiftCrop, random_affine


def _images(n: int = 2, size: int = 16) -> torch.Tensor:
    return torch.arange(n * size * size, dtype=torch.float32).reshape(n, 1, size, size)


def test_a_random_crop_in_training_and_the_central_window_at_evaluation():
    augmenter = ZoomShiftCrop(size=16, crop=12, scale=0.0, shift=0.0)
    images, masks = _images(), torch.ones(2, 3, 16, 16)
    out, out_masks = augmenter.apply(images, augmenter.draw(np.random.default_rng(0), 2), masks)
    assert out.shape == (2, 1, 12, 12) and out_masks is not None and out_masks.shape == (2, 3, 12, 12)
    assert (out_masks == 1).all()  # a crop inside the image: no padding reaches the masks
    assert torch.equal(augmenter.center(images), images[..., 2:14, 2:14])


def test_without_jitter_or_crop_the_training_view_is_the_image():
    plain = ZoomShiftCrop(size=16, crop=16, scale=0.0, shift=0.0)
    same, no_masks = plain.apply(_images(), plain.draw(np.random.default_rng(0), 2))
    assert torch.allclose(same, _images(), atol=1e-3) and no_masks is None
    assert torch.equal(random_affine(_images(), np.random.default_rng(0), 0.0, 0.0, 0.0), _images())


def test_a_zoom_shift_crop_draw_moves_each_image_and_masks_move_with_it():
    augmenter = ZoomShiftCrop(size=16, crop=16, scale=0.2, shift=0.2)
    params = augmenter.draw(np.random.default_rng(1), 2)
    assert params.shape == (2, 3) and not np.allclose(params[0], params[1])
    images = _images()
    out, masks = augmenter.apply(images, params, images.clone())
    assert not torch.allclose(out, images, atol=1e-3)
    assert masks is not None
    # Nearest sampling reads existing pixels only: every mask value is one of the image's.
    assert set(masks.unique().tolist()) <= set(images.unique().tolist())


def test_the_same_stream_draws_the_same_jitter():
    draws = [random_affine(_images(), np.random.default_rng(7), 0.1, 0.1, 5.0) for _ in range(2)]
    assert torch.equal(*draws) and not torch.allclose(draws[0], _images(), atol=1e-3)
