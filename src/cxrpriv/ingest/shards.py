"""Image shards: a few large ``.npy`` files instead of one small file per image.

Layout under the output directory::

    images/shard-00000.npy     uint8 or uint16 array [n, size, size], n <= shard_size
    headers/shard-00000.jsonl  one JSON object per image, line k <-> image k of the same shard:
                               {"image_id": ..., "header": <de-identified DICOM JSON>, "dropped_bulk": [...]}

A manifest row's ``shard`` and ``offset`` locate its image (and its header line). Shards are written whole
by the parent process from a bounded buffer (memory is one shard, whatever the number of images), to a
temporary name and then renamed, so a crash never leaves a half-written shard under a final name. Existing
shards are never rewritten: an incremental run appends new shards after the last one, so DVC and S3 only
move the new files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from cxrpriv.dataset import manifest_path

IMAGES_DIR = "images"
HEADERS_DIR = "headers"


def shard_name(number: int) -> str:
    return f"shard-{number:05d}"


def next_shard_number(images_dir: Path) -> int:
    numbers = [int(p.stem.split("-")[1]) for p in Path(images_dir).glob("shard-*.npy")]
    return max(numbers) + 1 if numbers else 0


def write_shard(out_dir: Path, number: int, images: np.ndarray, header_lines: list[str]) -> None:
    """Write shard ``number`` (images [n, H, W] and their n header lines) under ``out_dir``, each file to a
    temporary name first and then renamed, so a crash never leaves a half-written shard under its name."""
    if len(images) != len(header_lines):
        raise ValueError(f"{len(images)} images but {len(header_lines)} header lines for one shard")
    name = shard_name(number)
    for directory, suffix, write in (
        (IMAGES_DIR, ".npy", lambda fh: np.save(fh, images, allow_pickle=False)),
        (HEADERS_DIR, ".jsonl", lambda fh: fh.write("".join(f"{line}\n" for line in header_lines).encode())),
    ):
        path = Path(out_dir) / directory / f"{name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f"{suffix}.tmp")
        with tmp.open("wb") as fh:
            write(fh)
        os.replace(tmp, path)


def shard_header_lines(root: Path, number: int) -> list[str]:
    """The header lines of shard ``number`` of an ingest output, as stored (line k <-> image k)."""
    return (Path(root) / HEADERS_DIR / f"{shard_name(number)}.jsonl").read_text().splitlines()


class ShardWriter:
    def __init__(self, out_dir: Path, shard_size: int, image_size: int, dtype: str) -> None:
        self.images_dir = Path(out_dir) / IMAGES_DIR
        self.headers_dir = Path(out_dir) / HEADERS_DIR
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.headers_dir.mkdir(parents=True, exist_ok=True)
        self.shard_size = shard_size
        self.shape = (image_size, image_size)
        self.dtype = np.dtype(dtype)
        self.number = next_shard_number(self.images_dir)
        self._buffer: np.ndarray | None = None
        self._headers: list[str] = []
        self.written: list[str] = []

    def add(self, image: np.ndarray, header_line: str) -> tuple[int, int]:
        """Queue one image and its header line; returns its (shard, offset)."""
        if image.shape != self.shape or image.dtype != self.dtype:
            raise ValueError(
                f"image {image.shape} {image.dtype} does not fit shards of {self.shape} {self.dtype}"
            )
        if self._buffer is None:
            self._buffer = np.empty((self.shard_size, *self.shape), dtype=self.dtype)
        offset = len(self._headers)
        self._buffer[offset] = image
        self._headers.append(header_line)
        location = (self.number, offset)
        if len(self._headers) == self.shard_size:
            self.flush()
        return location

    def flush(self) -> None:
        if not self._headers or self._buffer is None:
            return
        n = len(self._headers)
        write_shard(self.images_dir.parent, self.number, self._buffer[:n], self._headers)
        self.written.append(shard_name(self.number))
        self.number += 1
        self._headers = []

    def close(self) -> list[str]:
        self.flush()
        self._buffer = None
        return self.written


class ShardReader:
    """Images (and de-identified headers) of an ingest output by manifest row, memory-mapped.

    >>> reader = ShardReader(Path("data/ingest"))
    >>> image = reader[0]                      # uint8 [size, size] of manifest row 0
    >>> train = reader.manifest.query("split == 'train'").index
    """

    def __init__(self, root: Path, manifest: pd.DataFrame | None = None) -> None:
        self.root = Path(root)
        self.manifest = manifest if manifest is not None else pd.read_parquet(manifest_path(self.root))
        self._images: dict[int, np.ndarray] = {}
        self._headers: dict[int, list[str]] = {}
        self._row_by_id = {image_id: i for i, image_id in enumerate(self.manifest["image_id"])}

    def __len__(self) -> int:
        return len(self.manifest)

    def shard(self, number: int) -> np.ndarray:
        """The memory-mapped image array of one shard."""
        if number not in self._images:
            path = self.root / IMAGES_DIR / f"{shard_name(number)}.npy"
            self._images[number] = np.load(path, mmap_mode="r", allow_pickle=False)
        return self._images[number]

    def __getitem__(self, row: int) -> np.ndarray:
        record = self.manifest.iloc[row]
        return np.asarray(self.shard(int(record["shard"]))[int(record["offset"])])

    def image(self, image_id: str) -> np.ndarray:
        return self[self._row_by_id[image_id]]

    def as_float(self, row: int) -> np.ndarray:
        """The image of a row in [0, 1] as float32."""
        image = self[row]
        return image.astype(np.float32) / np.float32(np.iinfo(image.dtype).max)

    def header(self, row: int) -> dict:
        """The de-identified DICOM JSON of a row (PNG sources have none: an empty dict)."""
        record = self.manifest.iloc[row]
        number = int(record["shard"])
        if number not in self._headers:
            self._headers[number] = shard_header_lines(self.root, number)
        entry = json.loads(self._headers[number][int(record["offset"])])
        if entry["image_id"] != record["image_id"]:
            raise ValueError(
                f"header line of {record['image_id']} holds {entry['image_id']}: shards are corrupt"
            )
        return entry["header"]
