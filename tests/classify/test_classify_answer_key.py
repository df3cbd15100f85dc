"""Linking ingested images to the synthetic answer key: true labels and masks that line up with the films."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.ingest.shards import ShardReader
from cxrpriv.synth.answer_key import AnswerKeyError, anatomy_masks, clean_labels


def test_clean_labels_are_the_answer_keys_true_labels(tiny_data: dict[str, Path]):
    manifest = pd.read_parquet(tiny_data["ingest"] / "manifest.parquet")
    linked = clean_labels(tiny_data["ingest"], tiny_data["answer_key"], manifest["image_id"].tolist())
    images = pd.read_parquet(tiny_data["answer_key"] / "images.parquet").set_index("image_index")
    expected = images.loc[list(linked.image_index), [f"true_{f}" for f in FINDINGS]].to_numpy()
    assert (linked.labels == expected).all()
    # The manifest's labels are the text-mined ones of the same images.
    mined = images.loc[list(linked.image_index), [f"mined_{f}" for f in FINDINGS]].to_numpy()
    assert (manifest[list(FINDINGS)].to_numpy() == mined).all()


def test_an_image_missing_from_the_answer_key_is_named(tiny_data: dict[str, Path]):
    with pytest.raises(AnswerKeyError, match="Inot-an-image"):
        clean_labels(tiny_data["ingest"], tiny_data["answer_key"], ["Inot-an-image"])


def test_masks_line_up_with_the_ingested_films(tiny_data: dict[str, Path]):
    manifest = pd.read_parquet(tiny_data["ingest"] / "manifest.parquet")
    linked = clean_labels(tiny_data["ingest"], tiny_data["answer_key"], manifest["image_id"].tolist())
    reader = ShardReader(tiny_data["ingest"])
    size = reader[0].shape[-1]
    masks = anatomy_masks(tiny_data["answer_key"], linked.image_index, size)
    assert masks.shape == (len(manifest), 3, size, size)
    films = np.stack([reader[i] for i in range(len(manifest))]).astype(np.float64)
    lungs = (masks[:, 0] | masks[:, 1]).astype(bool)
    # Lungs are radiolucent (dark on the displayed film). Aligned masks cover darker pixels than the same
    # masks shifted by a few pixels in any direction: a flipped, transposed or offset mask would not.
    aligned = films[lungs].mean()
    for shift, axis in ((3, 1), (-3, 1), (3, 2), (-3, 2)):
        assert aligned < films[np.roll(lungs, shift, axis=axis)].mean()
    assert aligned < films[~lungs].mean() - 20
    # Right lung (bit 1) is on the image's left side (radiological convention), the heart mostly right of
    # the middle line of the image.
    columns = np.arange(size)
    right_lung_x = (masks[:, 0].sum(axis=1) * columns).sum() / masks[:, 0].sum()
    left_lung_x = (masks[:, 1].sum(axis=1) * columns).sum() / masks[:, 1].sum()
    assert right_lung_x < size / 2 < left_lung_x
