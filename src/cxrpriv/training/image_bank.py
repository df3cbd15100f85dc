"""The images a training run needs, gathered once from the ingest shards into one uint8 tensor.

Batches are then a tensor index away: no per-item Python, no worker processes, and on a GPU the bank lives in
GPU memory (uint8: 100,000 images at 256x256 take 6.6 GB), so the accelerator never waits for the disk or the
CPU. Conversion to float, resizing and augmentation happen per batch on the bank's device.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from cxrpriv.ingest.shards import ShardReader


class ImageBank:
    def __init__(self, images: torch.Tensor, scale: float) -> None:
        if images.ndim != 3:
            raise ValueError(
                f"an image bank holds [n, height, width] images, got shape {tuple(images.shape)}"
            )
        self.images = images
        self.scale = scale  # the integer value of white (255 for uint8 shards, 65535 for uint16)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def device(self) -> torch.device:
        return self.images.device

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    def batch(self, indices: torch.Tensor | np.ndarray | Sequence[int]) -> torch.Tensor:
        """Float images in [0, 1], shape [B, 1, size, size], on the bank's device."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=self.device)
        return (self.images.index_select(0, index).float() / self.scale).unsqueeze(1)

    @classmethod
    def from_shards(
        cls,
        reader: ShardReader,
        rows: Sequence[int] | np.ndarray,
        device: torch.device | str = "cpu",
        *,
        size: int | None = None,
        progress: bool = True,
        description: str = "loading images",
    ) -> ImageBank:
        """Manifest ``rows`` of an ingest output, in that order, optionally area-resized to ``size``."""
        rows = np.asarray(rows, dtype=np.int64)
        manifest = reader.manifest
        shards = manifest["shard"].to_numpy()[rows]
        offsets = manifest["offset"].to_numpy()[rows]
        first = reader[int(rows[0])] if len(rows) else np.zeros((1, 1), np.uint8)
        dtype = first.dtype
        native = first.shape[-1]
        out_size = size or native
        # Images are gathered shard by shard (sequential reads of the memory map), in slices of this many.
        chunk = 512
        images = np.empty((len(rows), out_size, out_size), dtype=dtype)
        with tqdm(total=len(rows), desc=description, disable=not progress, leave=False) as bar:
            for shard in np.unique(shards):
                where = np.flatnonzero(shards == shard)
                order = where[np.argsort(offsets[where], kind="stable")]
                data = reader.shard(int(shard))
                for start in range(0, len(order), chunk):
                    part = order[start : start + chunk]
                    block = np.asarray(data[offsets[part]])
                    images[part] = block if out_size == native else _resize(block, out_size)
                    bar.update(len(part))
        scale = float(np.iinfo(dtype).max)
        return cls(torch.from_numpy(images).to(device), scale)


def _resize(block: np.ndarray, size: int) -> np.ndarray:
    """Area resize (antialiased) of a uint block, back to its integer type."""
    tensor = torch.from_numpy(block.astype(np.float32)).unsqueeze(1)
    resized = F.interpolate(tensor, size=(size, size), mode="area").squeeze(1)
    maximum = np.iinfo(block.dtype).max
    return resized.round_().clamp_(0, maximum).numpy().astype(block.dtype)
