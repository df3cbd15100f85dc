from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cxrpriv.ingest.shards import ShardReader, ShardWriter
from cxrpriv.training.image_bank import ImageBank


@pytest.fixture
def reader(tmp_path: Path) -> ShardReader:
    writer = ShardWriter(tmp_path, shard_size=3, image_size=8, dtype="uint8")
    rows = []
    for i in range(7):
        shard, offset = writer.add(np.full((8, 8), 10 * i, np.uint8), f'{{"image_id": "i{i}"}}')
        rows.append({"image_id": f"i{i}", "shard": shard, "offset": offset})
    writer.close()
    return ShardReader(tmp_path, pd.DataFrame(rows))


def test_bank_keeps_the_requested_row_order_across_shards(reader: ShardReader) -> None:
    bank = ImageBank.from_shards(reader, [6, 0, 4, 3], progress=False)
    assert len(bank) == 4 and bank.size == 8
    batch = bank.batch([0, 1, 2, 3])
    assert batch.shape == (4, 1, 8, 8)
    assert np.allclose(batch[:, 0, 0, 0].numpy(), np.array([60, 0, 40, 30]) / 255)


def test_bank_resizes_by_area(reader: ShardReader) -> None:
    bank = ImageBank.from_shards(reader, [2], size=4, progress=False)
    assert bank.size == 4
    assert (bank.images.numpy() == 20).all()
