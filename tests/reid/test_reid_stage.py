"""The stage on a tiny ingested cohort: it trains, evaluates, and a run interrupted mid-epoch resumes to the
weights of an uninterrupted run."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrpriv.reid import ReidInputError
from cxrpriv.reid.attack import embed_bank
from cxrpriv.reid.metric import FilmBatches
from cxrpriv.reid.model import build_verifier
from cxrpriv.reid.siamese import PairBatches
from cxrpriv.reid.stage import train_reid
from cxrpriv.training.checkpoint import CheckpointMismatch
from cxrpriv.training.image_bank import ImageBank
from tests.reid.conftest import tiny_reid_config


class Interrupted(RuntimeError):
    pass


def test_tiny_training_run_reports_verification_retrieval_and_throughput(tiny_ingest: Path):
    result = train_reid(tiny_reid_config(), tiny_ingest, None, device="cpu", progress=False)
    metrics = result.metrics
    assert metrics["training"]["epochs"] == 2
    assert all(r["train_steps"] <= 3 for r in result.history)
    assert metrics["training"]["train_images_per_s"] > 0 and metrics["training"]["data_seconds"] >= 0
    assert metrics["verification"]["n_pairs"] == len(result.test_pairs)
    assert set(result.test_pairs["label"]) <= {0, 1}
    retrieval = metrics["retrieval"]
    assert retrieval["n_queries"] == metrics["data"]["test_images"] == len(result.retrieval)
    assert retrieval["n_queries_scored"] + retrieval["n_queries_without_match"] == retrieval["n_queries"]
    assert result.spec["builder"] == "cxrpriv.reid.embedding:build_embedder"
    assert result.spec["image_size"] == 32
    assert metrics["attacker"]["method"] == "metric"
    # pseudonyms only: no original identifier can reach the outputs from here
    assert result.test_pairs["patient_a"].str.len().min() >= 8


def test_training_is_deterministic_under_a_seed(tiny_ingest: Path):
    config = tiny_reid_config(max_epochs=1)
    first = train_reid(config, tiny_ingest, None, device="cpu", progress=False).model.state_dict()
    second = train_reid(config, tiny_ingest, None, device="cpu", progress=False).model.state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize("method", ["metric", "siamese"])
def test_a_run_interrupted_mid_epoch_resumes_to_the_uninterrupted_weights(
    tiny_ingest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
):
    config = tiny_reid_config(method=method, max_epochs=3, patience=5)
    reference = train_reid(config, tiny_ingest, tmp_path / "a", device="cpu", progress=False)

    batches = {"metric": FilmBatches, "siamese": PairBatches}[method]
    original = batches.__iter__

    def crash_in_epoch_two(self: FilmBatches | PairBatches):
        for step, batch in enumerate(original(self)):
            if self.epoch == 2 and step == 1:
                raise Interrupted("killed mid-epoch")
            yield batch

    monkeypatch.setattr(batches, "__iter__", crash_in_epoch_two)
    with pytest.raises(Interrupted):
        train_reid(config, tiny_ingest, tmp_path / "b", device="cpu", progress=False)
    assert (tmp_path / "b" / "checkpoint.pt").is_file()
    monkeypatch.setattr(batches, "__iter__", original)
    resumed = train_reid(config, tiny_ingest, tmp_path / "b", device="cpu", progress=False)

    assert resumed.metrics["training"]["resumed_after_epoch"] == 1
    expected, got = reference.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in reference.history]
    # a checkpoint of another configuration is refused, not mixed in
    with pytest.raises(CheckpointMismatch):
        train_reid(dataclasses.replace(config, seed=1), tiny_ingest, tmp_path / "b", "cpu", False)


@pytest.mark.parametrize(("method", "images_per_step"), [("metric", 4), ("siamese", 2 * 4)])
def test_max_steps_per_epoch_caps_a_paper_profile_style_run(
    tiny_ingest: Path, method: str, images_per_step: int
):
    config = tiny_reid_config(method=method, max_epochs=1, max_steps_per_epoch=1)
    result = train_reid(config, tiny_ingest, None, "cpu", progress=False)
    assert result.history[0]["train_steps"] == 1
    assert result.history[0]["train_images"] == images_per_step


def test_embed_bank_matches_the_pair_forward():
    torch.manual_seed(0)
    model = build_verifier("small_cnn", width=4, depth=2, feature_dim=8).eval()
    bank = ImageBank(torch.randint(0, 256, (5, 16, 16), dtype=torch.uint8), 255.0)
    features = embed_bank(model, bank, batch=2)
    pairs = torch.cat([bank.batch([0, 1]), bank.batch([2, 3])], dim=1)
    with torch.no_grad():
        expected = model(pairs)
    torch.testing.assert_close(model.score(features[[0, 1]], features[[2, 3]]), expected)


def test_missing_manifest_is_a_clear_error(tmp_path: Path):
    with pytest.raises(ReidInputError, match=r"manifest\.parquet: not found"):
        train_reid(tiny_reid_config(), tmp_path, None, "cpu", False)


def test_pair_batches_hold_pairs_of_the_train_split(tiny_ingest: Path):
    import pandas as pd

    manifest = pd.read_parquet(tiny_ingest / "manifest.parquet")
    patients = manifest.loc[manifest["split"] == "train", "patient_id"].astype(str).to_numpy()
    bank = ImageBank(torch.zeros((len(patients), 32, 32), dtype=torch.uint8), 255.0)
    batches = PairBatches(
        tiny_reid_config(max_steps_per_epoch=0), bank, np.arange(len(patients)), patients, 1
    )
    pairs, labels = next(iter(batches))
    assert pairs.shape[1:] == (2, 32, 32) and len(pairs) == len(labels) <= 4
    assert len(batches) == int(np.ceil(len(batches.pairs) / 4))
