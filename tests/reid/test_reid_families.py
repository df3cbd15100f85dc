"""Both attacker families learn identity on an easy case, well above an untrained network of the same kind,
and the metric family's pieces (CosFace loss, calibration, cosine head) do what they say."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cxrpriv.reid.embedding import CosFaceHead, build_embedder
from cxrpriv.reid.metric import calibrate, cosine_learning_rate
from cxrpriv.reid.stage import train_reid
from tests.reid.conftest import tiny_reid_config

FAMILIES = {
    "metric": {
        "method": "metric",
        "pool": "average",
        "learning_rate": 3e-3,
        "cosine_scale": 10.0,
        "margin": 0.1,
    },
    "siamese": {"method": "siamese", "pool": "average", "learning_rate": 1e-3},
    "siamese-batch_all": {
        "method": "siamese",
        "pool": "average",
        "learning_rate": 1e-3,
        "pair_sampling": "batch_all",
        "films_per_patient": 4,
    },
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_learns_identity_well_above_an_untrained_network(easy_ingest: Path, family: str):
    config = tiny_reid_config(
        **FAMILIES[family], batch_size=16, max_epochs=20, patience=50, max_steps_per_epoch=0
    )
    untrained = dataclasses.replace(config, max_epochs=1, max_steps_per_epoch=1, learning_rate=1e-12)
    before = train_reid(untrained, easy_ingest, None, "cpu", False).metrics
    after = train_reid(config, easy_ingest, None, "cpu", False).metrics
    auc_before, auc_after = (m["verification"]["auc"]["value"] for m in (before, after))
    assert auc_after > 0.9, f"{family}: test AUC {auc_after:.3f} after training"
    assert auc_after > auc_before + 0.2, f"{family}: {auc_before:.3f} untrained, {auc_after:.3f} trained"
    assert after["retrieval"]["precision_at_1"] > 0.7


def test_cosface_loss_is_lower_for_embeddings_at_their_class_than_elsewhere():
    torch.manual_seed(0)
    head = CosFaceHead(feature_dim=8, n_classes=4, scale=10.0, margin=0.2)
    centres = F.normalize(head.weight.detach(), dim=-1)
    classes = torch.arange(4)
    assert head(centres, classes) < head(centres, classes.roll(1)) - 1.0
    # the margin makes a correct but close call still cost something
    no_margin = CosFaceHead(feature_dim=8, n_classes=4, scale=10.0, margin=0.0)
    no_margin.load_state_dict(head.state_dict())
    assert head(centres, classes) > no_margin(centres, classes)


def test_calibration_fits_the_logit_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    labels = np.repeat([1.0, 0.0], 200)
    cosine = np.where(labels > 0, rng.normal(0.8, 0.1, 400), rng.normal(0.2, 0.1, 400))
    model = build_embedder("small_cnn", width=4, depth=2, feature_dim=8, pool="average")
    fitted = calibrate(model, cosine, labels)
    assert fitted["calibration_slope"] > 0
    midpoint = -fitted["calibration_intercept"] / fitted["calibration_slope"]
    assert 0.4 < midpoint < 0.6  # where the two classes meet
    a, b = F.normalize(torch.randn(5, 8), dim=-1), F.normalize(torch.randn(5, 8), dim=-1)
    logits = model.score(a, b)
    torch.testing.assert_close(logits, model.slope * (a * b).sum(-1) + model.intercept)


def test_cosine_learning_rate_decays_from_the_base_to_zero():
    rates = [cosine_learning_rate(1.0, step, 10) for step in range(11)]
    assert rates[0] == 1.0 and rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in itertools.pairwise(rates))


def test_batch_all_batches_hold_several_films_of_several_patients(easy_ingest: Path):
    import pandas as pd

    from cxrpriv.reid.siamese import PatientBatches
    from cxrpriv.training.image_bank import ImageBank

    manifest = pd.read_parquet(easy_ingest / "manifest.parquet")
    patients = manifest.loc[manifest["split"] == "train", "patient_id"].to_numpy()
    bank = ImageBank(torch.zeros((len(patients), 8, 8), dtype=torch.uint8), 255.0)
    config = tiny_reid_config(pair_sampling="batch_all", films_per_patient=3, batch_size=9)
    batches = PatientBatches(config, bank, np.arange(len(patients)), patients, epoch=1)
    seen = np.concatenate(batches.batches)
    assert len(seen) == len(set(seen.tolist())), "a film twice in one epoch"
    assert len(set(patients[seen])) == len(set(patients)), "every training patient, every epoch"
    for images, identity in batches:
        counts = np.bincount(identity.numpy())
        assert len(counts) >= 2 and counts.max() <= 3 and len(images) == len(identity)


def test_all_pairs_loss_weighs_both_kinds_of_pair_equally():
    from cxrpriv.reid.model import build_verifier
    from cxrpriv.reid.siamese import all_pairs_loss

    torch.manual_seed(0)
    model = build_verifier("small_cnn", width=4, depth=2, feature_dim=8, pool="average")
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.fill_(3.0)  # every pair called "same patient" with confidence
    images = torch.rand(6, 1, 16, 16)
    one_same_pair = torch.tensor([0, 0, 1, 2, 3, 4])  # 1 same-patient pair, 14 different-patient pairs
    loss = all_pairs_loss(model, images, one_same_pair)
    expected = 0.5 * F.softplus(torch.tensor(-3.0)) + 0.5 * F.softplus(torch.tensor(3.0))
    torch.testing.assert_close(loss, expected)
