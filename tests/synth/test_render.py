from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cxrpriv.synth.acquisition import sample_acquisition
from cxrpriv.synth.anatomy import sample_anatomy
from cxrpriv.synth.findings import sample_sites
from cxrpriv.synth.render import MASK_HEART, MASK_LEFT_LUNG, MASK_RIGHT_LUNG, render_image
from cxrpriv.synth.stats import FINDINGS, load_lung_shape_model
from tests.conftest import tiny_synth_config

SIZE = 96


def _patient(seed: int):
    rng = np.random.default_rng(seed)
    anatomy = sample_anatomy(rng, load_lung_shape_model(), "F")
    return anatomy, sample_sites(rng)


def _render(anatomy, sites, labels, acq_seed=0, noise_seed=0, **acq_changes):
    config = tiny_synth_config()
    acq = sample_acquisition(np.random.default_rng(acq_seed), config, "PA", 0.0)
    acq = dataclasses.replace(acq, collimation=(0.0, 0.0, 0.0, 0.0), **acq_changes)
    return render_image(anatomy, acq, labels, sites, size=SIZE, rng=np.random.default_rng(noise_seed))


def test_image_range_masks_and_anatomy_contrast():
    anatomy, sites = _patient(0)
    image, mask = _render(anatomy, sites, np.zeros(14, np.uint8))
    assert image.shape == mask.shape == (SIZE, SIZE) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    right, left, heart = (mask & MASK_RIGHT_LUNG) > 0, (mask & MASK_LEFT_LUNG) > 0, (mask & MASK_HEART) > 0
    for region in (right, left, heart):
        assert 0.01 < region.mean() < 0.4
    assert right[:, : SIZE // 2].mean() > right[:, SIZE // 2 :].mean()  # patient's right lung on image left
    # air in the lungs: darker than the heart and the mediastinum (MONOCHROME2 sense, 1 = dense)
    assert image[right | left].mean() < image[heart].mean() - 0.15


def test_render_is_deterministic_given_its_generator():
    anatomy, sites = _patient(1)
    a, _ = _render(anatomy, sites, np.zeros(14, np.uint8))
    b, _ = _render(anatomy, sites, np.zeros(14, np.uint8))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("finding", FINDINGS)
def test_every_finding_changes_the_chest(finding):
    anatomy, sites = _patient(2)
    labels = np.zeros(14, np.uint8)
    base, mask = _render(anatomy, sites, labels)
    labels[FINDINGS.index(finding)] = 1
    sick, _ = _render(anatomy, sites, labels)
    chest = mask > 0
    diff = np.abs(sick - base)
    assert diff[chest].mean() > 0.002, finding
    assert diff[~chest].mean() < diff[chest].mean() * 3  # findings live in the chest, not in the corners


def test_cardiomegaly_enlarges_the_heart_mask():
    anatomy, sites = _patient(3)
    labels = np.zeros(14, np.uint8)
    _, normal = _render(anatomy, sites, labels)
    labels[FINDINGS.index("Cardiomegaly")] = 1
    _, big = _render(anatomy, sites, labels)
    assert ((big & MASK_HEART) > 0).sum() > 1.3 * ((normal & MASK_HEART) > 0).sum()


def test_patients_differ_more_than_one_patients_films():
    """The identity signal: same-patient masks overlap more than different-patient masks."""

    def lung_mask(seed, acq_seed):
        anatomy, sites = _patient(seed)
        _, mask = _render(
            anatomy,
            sites,
            np.zeros(14, np.uint8),
            acq_seed=acq_seed,
            shift=(0.0, 0.0),
            scale=1.0,
            rotation_deg=0.0,
        )
        return (mask & (MASK_RIGHT_LUNG | MASK_LEFT_LUNG)) > 0

    def dice(a, b):
        return 2 * (a & b).sum() / (a.sum() + b.sum())

    same = [dice(lung_mask(s, 1), lung_mask(s, 2)) for s in range(10, 16)]
    different = [dice(lung_mask(s, 1), lung_mask(s + 100, 1)) for s in range(10, 16)]
    assert np.mean(same) > np.mean(different) + 0.03
