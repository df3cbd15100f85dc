"""Intensity standardization and the aspect policies."""

from __future__ import annotations

import numpy as np
import pytest

from cxrpriv.ingest.normalize import (
    NoContrastError,
    apply_knots,
    central_sample,
    percentile_standardize,
    quantize,
    resize,
    sorted_percentiles,
    standard_knots,
    standardize,
)


@pytest.mark.parametrize("method", ["percentile", "landmarks"])
def test_standardization_ignores_linear_changes_of_the_pixel_values(method: str):
    rng = np.random.default_rng(1)
    image = rng.gamma(2.0, 1.0, size=(80, 80)).astype(np.float32)
    base = standardize(image, method, 1, 99)
    assert base.min() >= 0 and base.max() <= 1
    # landmarks are applied by table lookup: equal up to one table step (about 1e-3)
    assert np.allclose(standardize(image * 37.0 + 1000.0, method, 1, 99), base, atol=2e-3)


def test_landmarks_also_undo_monotone_tone_curves():
    rng = np.random.default_rng(2)
    image = rng.uniform(0, 1, size=(100, 100)).astype(np.float32)
    curved = 1 / (1 + np.exp(-8 * (image - 0.5)))  # a vendor's sigmoid
    flat = standardize(image, "landmarks", 0.5, 99.5)
    assert np.abs(standardize(curved, "landmarks", 0.5, 99.5) - flat).mean() < 0.01
    assert np.abs(standardize(curved, "percentile", 0.5, 99.5) - flat).mean() > 0.03


def test_a_constant_image_has_nothing_to_standardize():
    with pytest.raises(NoContrastError):
        standardize(np.full((32, 32), 7.0, dtype=np.float32), "percentile", 1, 99)


def test_aspect_policies():
    tall = np.ones((100, 50), dtype=np.float32)
    padded = resize(tall, 32, "pad")
    assert padded.shape == (32, 32)
    assert padded[:, :7].max() == 0 and padded[:, 9:23].min() > 0.99  # black bars left and right
    assert resize(tall, 32, "crop").min() > 0.99
    assert resize(tall, 32, "stretch").min() > 0.99
    assert quantize(np.array([0.0, 0.5, 1.0, 2.0]), "uint8").tolist() == [0, 128, 255, 255]
    assert quantize(np.array([1.0]), "uint16").dtype == np.uint16


@pytest.mark.parametrize("n", [1, 2, 3, 17, 1000, 16384])
def test_sorted_percentiles_equal_numpy_bit_for_bit(n: int):
    rng = np.random.default_rng(n)
    samples = [
        rng.normal(0, 1, n).astype(np.float32),
        rng.integers(0, 4, n).astype(np.float32),  # many ties
        rng.gamma(2.0, 300.0, n),  # float64
    ]
    percents = [[0.5, 99.5], np.linspace(0.5, 99.5, 11), [0, 100], [1, 99], [50]]
    for sample in samples:
        ordered = np.sort(sample)
        for q in percents:
            expected = np.percentile(sample, q)
            got = sorted_percentiles(ordered, q)
            assert got.dtype == expected.dtype and np.array_equal(got, expected)
    with_nan = np.sort(np.array([1.0, np.nan, 3.0], dtype=np.float32))
    assert np.isnan(sorted_percentiles(with_nan, [1, 99])).all()
    assert np.isnan(np.percentile(with_nan, [1, 99])).all()


@pytest.mark.parametrize("intensity", ["percentile", "landmarks"])
def test_one_sort_gives_both_standardizations(intensity: str):
    """The percentile image and the landmarks of it from the shared sample equal two separate passes."""
    rng = np.random.default_rng(3)
    image = rng.gamma(2.0, 900.0, size=(300, 280)).astype(np.float32)
    first, ordered = percentile_standardize(image, 0.5, 99.5)
    assert np.array_equal(first, standardize(image, "percentile", 0.5, 99.5))
    assert np.array_equal(ordered, np.sort(central_sample(first)))
    knots = standard_knots(ordered, intensity, 0.5, 99.5)
    assert np.array_equal(apply_knots(first, knots), standardize(first, intensity, 0.5, 99.5))
