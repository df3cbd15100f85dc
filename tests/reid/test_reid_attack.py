"""attack() on any film sets: a gallery that is the query set itself gives the self-attack's numbers; a
different gallery changes them; a gallery of other films is refused."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from cxrpriv.reid.attack import AttackSettings, FilmSet, attack
from cxrpriv.reid.embedding import build_embedder
from cxrpriv.training.image_bank import ImageBank

SETTINGS = AttackSettings(
    seed=0, max_pairs_per_patient=6, n_boot=10, confidence=0.95, eval_batch_size=8, retrieval_k=20,
    retrieval_chunk=4,
)  # fmt: skip


def _films(images: torch.Tensor) -> FilmSet:
    patients = np.repeat([f"p{i}" for i in range(6)], 3)
    ids = np.array([f"i{i}" for i in range(len(patients))])
    return FilmSet(ImageBank(images, 255.0), np.arange(len(patients)), patients, ids)


def _model(films: FilmSet) -> torch.nn.Module:
    """An untrained embedder whose batch norm has seen the films (fresh statistics make every cosine ~1)."""
    torch.manual_seed(0)
    model = build_embedder("small_cnn", width=4, depth=2, feature_dim=8, pool="average")
    for layer in model.modules():
        if isinstance(layer, torch.nn.modules.batchnorm._BatchNorm):
            layer.momentum = None  # one training-mode pass sets the statistics to the films' own
    with torch.no_grad():
        model.embed(films.bank.batch(films.rows))
    return model.eval()


def test_an_aligned_gallery_of_the_same_films_is_the_self_attack():
    films = _films(torch.randint(0, 256, (18, 16, 16), dtype=torch.uint8))
    model = _model(films)
    alone = attack(model, films, SETTINGS)
    against = attack(model, films, SETTINGS, gallery=films)
    assert against.verification["auc"]["value"] == pytest.approx(alone.verification["auc"]["value"])
    assert against.retrieval == pytest.approx(alone.retrieval)

    noisy = dataclasses.replace(
        films, bank=ImageBank(torch.randint(0, 256, (18, 16, 16), dtype=torch.uint8), 255.0)
    )
    other = attack(model, films, SETTINGS, gallery=noisy)
    assert np.abs(other.pairs["probability"] - alone.pairs["probability"]).max() > 1e-3


def test_a_gallery_of_other_films_is_refused():
    films = _films(torch.zeros((18, 16, 16), dtype=torch.uint8))
    shuffled = dataclasses.replace(films, image_ids=films.image_ids[::-1].copy())
    model = _model(films)
    with pytest.raises(ValueError, match="same order"):
        attack(model, films, SETTINGS, gallery=shuffled)
