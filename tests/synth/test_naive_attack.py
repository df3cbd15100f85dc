from __future__ import annotations

import numpy as np
import pytest

from cxrpriv.synth.cohort import synthesize
from cxrpriv.synth.naive_attack import pair_attack, thumbnail
from tests.conftest import tiny_synth_config


def test_thumbnail_is_a_normalized_block_mean():
    image = np.arange(64 * 64, dtype=np.float32).reshape(64, 64)
    thumb = thumbnail(image, 32)
    expected = image.reshape(32, 2, 32, 2).mean(axis=(1, 3)).ravel()
    expected = (expected - expected.mean()) / np.linalg.norm(expected - expected.mean())
    np.testing.assert_allclose(thumb, expected, rtol=1e-5)
    assert abs(float(thumb @ thumb) - 1.0) < 1e-5


def test_pair_attack_on_a_toy_case():
    rng = np.random.default_rng(0)
    identity = rng.standard_normal((5, 16))
    patients = np.repeat(np.arange(5), 3)
    # same patient: identical thumbnails (score 1); different: independent noise (score near 0)
    thumbs = identity[patients] / np.linalg.norm(identity[patients], axis=1, keepdims=True)
    result = pair_attack(thumbs, patients, 100, rng)
    assert result.n_positive == 15 and result.n_negative == 15
    assert result.auc == 1.0
    with pytest.raises(ValueError, match="no patient has two images"):
        pair_attack(thumbs[:5:3], np.array([0, 1]), 10, rng)


def test_naive_attacker_stays_weak_on_a_small_default_cohort(tmp_path):
    """Identity must not be trivially in the pixels (issue bound: AUC about 0.75 at most)."""
    config = tiny_synth_config(
        n_patients=60,
        image_size=128,
        max_images_per_patient=4,
        workers=2,
        naive_attack_pairs=2000,
        broken_per_kind=0,
        reread_fraction=0.0,
    )
    summary = synthesize(config, tmp_path / "cohort", progress=False)
    auc = summary.metrics["naive_attacker_auc"]
    # about 100 same-patient pairs: the standard error of the AUC is about 0.03
    assert 0.5 < auc < 0.80, auc
