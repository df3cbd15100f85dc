"""Shard writer and reader: round trip, bounded buffers, no half-written files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrpriv.ingest.shards import ShardReader, ShardWriter


def test_round_trip_through_several_shards(tmp_path: Path):
    writer = ShardWriter(tmp_path, shard_size=3, image_size=8, dtype="uint8")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(7)]
    rows = []
    for i, image in enumerate(images):
        shard, offset = writer.add(image, json.dumps({"image_id": f"I{i}", "header": {"n": i}}))
        rows.append({"image_id": f"I{i}", "shard": shard, "offset": offset})
    assert writer.close() == ["shard-00000", "shard-00001", "shard-00002"]
    assert not list(tmp_path.rglob("*.tmp"))
    manifest = pd.DataFrame(rows)
    manifest.to_parquet(tmp_path / "manifest.parquet")
    reader = ShardReader(tmp_path)
    assert len(reader) == 7
    for i, image in enumerate(images):
        assert np.array_equal(reader[i], image)
        assert reader.header(i) == {"n": i}
    assert np.array_equal(reader.image("I5"), images[5])
    assert reader.as_float(0).max() <= 1.0
    assert np.load(tmp_path / "images" / "shard-00002.npy").shape == (1, 8, 8)


def test_a_new_writer_appends_after_existing_shards(tmp_path: Path):
    first = ShardWriter(tmp_path, 4, 4, "uint16")
    first.add(np.zeros((4, 4), dtype=np.uint16), "{}")
    first.close()
    second = ShardWriter(tmp_path, 4, 4, "uint16")
    assert second.add(np.ones((4, 4), dtype=np.uint16), "{}") == (1, 0)
    assert second.close() == ["shard-00001"]


def test_images_that_do_not_fit_are_refused(tmp_path: Path):
    writer = ShardWriter(tmp_path, 4, 4, "uint8")
    with pytest.raises(ValueError, match="does not fit"):
        writer.add(np.zeros((5, 4), dtype=np.uint8), "{}")
    with pytest.raises(ValueError, match="does not fit"):
        writer.add(np.zeros((4, 4), dtype=np.uint16), "{}")
