"""The classifier learns: on an easy finding a few seconds of training go from chance to an AUC near 1.

The finding is a dark square; every image also holds zero to three bright squares of the same size and a
random overall brightness. Those nuisances are what an untrained network's random features mostly see, so
the threshold separates learning from luck. Checked by hand on this test: trained, AUC 0.99; with training
disabled (epochs without batches) 0.39; with the weights frozen (BatchNorm statistics still adapting) 0.37.
A brighter finding on a plain background is no test: random features alone scored up to 0.99 on one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrpriv.classify.data import load_data
from cxrpriv.classify.stage import train_classifier
from cxrpriv.ingest.shards import ShardWriter
from cxrpriv.training.accelerator import select_accelerator
from tests.classify.conftest import tiny_classifier_config

SIZE = 32
SQUARE = 6


def write_easy_ingest(out: Path, n_images: int, seed: int = 0) -> None:
    """An ingest output (manifest.parquet, image shards) of one finding, "Mass", visible as a dark square in
    every other image; half the images train, a quarter validate, a quarter test; one image per patient."""
    rng = np.random.default_rng(seed)
    writer = ShardWriter(out, shard_size=64, image_size=SIZE, dtype="uint8")
    splits = ["train"] * (n_images // 2) + ["validation"] * (n_images // 4)
    splits += ["test"] * (n_images - len(splits))
    rows = []
    for i, split in enumerate(splits):
        label = i % 2
        image = rng.normal(110 + rng.normal(0, 20), 12, (SIZE, SIZE))
        for _ in range(rng.integers(0, 4)):
            _add_square(image, rng, +90)
        if label:
            _add_square(image, rng, -90)
        image_id = f"img{i:04d}"
        header = json.dumps({"image_id": image_id, "header": {}, "dropped_bulk": []})
        shard, offset = writer.add(np.clip(image, 0, 255).astype(np.uint8), header)
        rows.append(
            {"image_id": image_id, "patient_id": f"P{i:04d}", "split": split}
            | {"shard": shard, "offset": offset, "Mass": label}
        )
    writer.close()
    pd.DataFrame(rows).to_parquet(out / "manifest.parquet", index=False)


def _add_square(image: np.ndarray, rng: np.random.Generator, contrast: float) -> None:
    y, x = rng.integers(1, SIZE - SQUARE - 1, 2)
    image[y : y + SQUARE, x : x + SQUARE] += contrast


@pytest.mark.slow  # about 5 s of training on one core
def test_training_finds_an_easy_finding(tmp_path: Path):
    write_easy_ingest(tmp_path, n_images=320)
    config = tiny_classifier_config(
        findings=("Mass",),
        prior_correction="none",  # the labels are exact
        width=8,
        batch_size=16,
        learning_rate=3e-3,
        max_epochs=10,
        max_steps_per_epoch=0,
        patience=10,
    )
    data = load_data(config, tmp_path, None, None, None, mask_size=SIZE)
    result = train_classifier(config, data, tmp_path, select_accelerator("cpu"), progress=False)
    assert result.metrics["noisy_auc_Mass"] > 0.9, result.fit.history
