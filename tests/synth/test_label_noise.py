from __future__ import annotations

import numpy as np

from cxrpriv.synth.label_noise import apply_text_mining_noise, reread, sample_readers
from cxrpriv.synth.stats import FINDINGS, load_label_noise


def test_mined_labels_follow_calibrated_rates():
    noise = load_label_noise()
    rng = np.random.default_rng(0)
    clean = (rng.random((100_000, len(FINDINGS))) < 0.3).astype(np.uint8)
    mined = apply_text_mining_noise(clean, noise, rng)
    for i, name in enumerate(FINDINGS):
        sens = mined[clean[:, i] == 1, i].mean()
        fpr = mined[clean[:, i] == 0, i].mean()
        assert abs(sens - noise[name].sensitivity) < 0.01, name
        assert abs(fpr - noise[name].false_positive_rate) < 0.005, name


def test_readers_err_with_their_own_rates():
    rng = np.random.default_rng(1)
    readers = sample_readers(4, rng)
    assert [r.reader_id for r in readers] == ["R1", "R2", "R3", "R4"]
    assert len({tuple(r.sensitivity) for r in readers}) == 4  # every radiologist differs
    clean = (rng.random((50_000, len(FINDINGS))) < 0.5).astype(np.uint8)
    reads = reread(clean, readers, rng)
    for r, reader in enumerate(readers):
        sens = (reads[r] & clean).sum(0) / clean.sum(0)
        spec = ((1 - reads[r]) & (1 - clean)).sum(0) / (1 - clean).sum(0)
        np.testing.assert_allclose(sens, reader.sensitivity, atol=0.02)
        np.testing.assert_allclose(spec, reader.specificity, atol=0.01)
