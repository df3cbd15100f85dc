"""The anonymize stage as a function: an ingest output in, the same dataset with anonymized pixels out.

It streams shard by shard: one source shard (memory-mapped) is anonymized in batches of ``batch_size``
films and written whole under the same shard number, so memory is one shard whatever the dataset size and
every image keeps its shard and offset. Every image of a shard is anonymized, whether or not the manifest
still lists it, so no original pixels are carried into the output. Headers, the files report and the
validation report are copied unchanged; the manifest is copied with ``pixel_mean``/``pixel_std`` of the
anonymized films; ``state.json`` is the source's plus the anonymizer that was applied
(:func:`cxrpriv.dataset.derive_dataset`).
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from cxrpriv.anonymize.warp import displacement_pixels
from cxrpriv.anonymize_dataset.config import AnonymizeConfig
from cxrpriv.anonymize_dataset.methods import FilmAnonymizer, image_seeds
from cxrpriv.dataset import Dataset, derive_dataset, open_dataset, write_manifest
from cxrpriv.ingest.shards import shard_header_lines, write_shard

EXAMPLES = 4  # films (of different patients, from the test split when it has them) kept for the plot


@dataclass
class AnonymizeResult:
    metrics: dict[str, Any]
    examples: dict[str, np.ndarray] = field(default_factory=dict)  # original, anonymized: [k, H, W] float


def to_float(block: np.ndarray) -> torch.Tensor:
    """uint [n, H, W] -> float32 [n, 1, H, W] in [0, 1]."""
    scale = float(np.iinfo(block.dtype).max)
    return torch.from_numpy(np.asarray(block, dtype=np.float32) / scale).unsqueeze(1)


def to_stored(films: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """float [n, 1, H, W] in [0, 1] -> the stored integer type, rounded to the nearest level."""
    scale = float(np.iinfo(dtype).max)
    values = films[:, 0].detach().float().cpu().numpy() * scale
    return np.clip(np.rint(values), 0, scale).astype(dtype)


@dataclass
class _Tally:
    images: int = 0
    largest_px: float = 0.0
    abs_change: float = 0.0  # sum over images of the mean |anonymized - original| (in [0, 1] units)
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)  # image_id -> (mean, std)


def _anonymize_shard(
    method: FilmAnonymizer,
    config: AnonymizeConfig,
    block: np.ndarray,
    image_ids: list[str],
    *,
    device: torch.device,
    tally: _Tally,
    bar: tqdm,
) -> np.ndarray:
    out = np.empty_like(block)
    for start in range(0, len(block), config.batch_size):
        stop = min(start + config.batch_size, len(block))
        films = to_float(block[start:stop]).to(device)
        anonymized, field_ = method(films, image_seeds(config.seed, image_ids[start:stop]))
        out[start:stop] = to_stored(anonymized, block.dtype)
        stored = to_float(out[start:stop])
        for image_id, film in zip(image_ids[start:stop], stored, strict=True):
            tally.stats[image_id] = (float(film.mean()), float(film.std(correction=0)))
        tally.abs_change += float((stored - films.cpu()).abs().mean(dim=(1, 2, 3)).sum())
        if field_ is not None:
            tally.largest_px = max(tally.largest_px, displacement_pixels(field_, tuple(block.shape[-2:])))
        tally.images += stop - start
        bar.update(stop - start)
    return out


def anonymize_dataset(
    config: AnonymizeConfig,
    method: FilmAnonymizer,
    ingest_dir: Path,
    out: Path,
    *,
    device: torch.device,
    progress: bool = True,
) -> AnonymizeResult:
    """Write ``ingest_dir`` anonymized by ``method`` to ``out`` (replaced), in the ingest format."""
    source = open_dataset(ingest_dir)
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    reader = source.images()
    shards = sorted({int(s) for s in source.manifest["shard"]})
    total = sum(len(reader.shard(n)) for n in shards)
    tally, started = _Tally(), time.perf_counter()
    with tqdm(total=total, desc=f"anonymize ({method.method})", disable=not progress, unit="img") as bar:
        for number in shards:
            block = reader.shard(number)
            lines = shard_header_lines(source.root, number)
            ids = _shard_image_ids(source, number, lines)
            write_shard(
                out,
                number,
                _anonymize_shard(method, config, block, ids, device=device, tally=tally, bar=bar),
                lines,
            )
    seconds = time.perf_counter() - started
    manifest = source.manifest.copy()
    for column, index in (("pixel_mean", 0), ("pixel_std", 1)):
        if column in manifest.columns:  # the source's columns, no more: the ingest format is kept as it is
            manifest[column] = [round(tally.stats[i][index], 5) for i in manifest["image_id"]]
    write_manifest(out, manifest)
    applied = {
        "method": method.method,
        "description": method.description,
        "settings": method.settings,
        "seed": config.seed,
    }
    derive_dataset(source.root, out, applied)
    result = AnonymizeResult(_metrics(method, source, tally, seconds, len(shards)))
    # From the test split when it has films, else from any split.
    rows = source.first_films(EXAMPLES)
    rows = rows if len(rows) else source.first_films(EXAMPLES, split=None)
    anonymized = open_dataset(out).images()
    result.examples = {
        "original": np.stack([reader.as_float(int(r)) for r in rows]),
        "anonymized": np.stack([anonymized.as_float(int(r)) for r in rows]),
    }
    return result


def _shard_image_ids(source: Dataset, number: int, lines: list[str]) -> list[str]:
    """The image id of every image of a shard: the manifest's, else its header line's (an image the
    manifest no longer lists is still anonymized, with a seed of its own)."""
    rows = source.manifest[source.manifest["shard"] == number]
    by_offset = dict(zip(rows["offset"].astype(int), rows["image_id"].astype(str), strict=True))
    ids = []
    for offset, line in enumerate(lines):
        if offset not in by_offset:
            by_offset[offset] = str(json.loads(line).get("image_id", f"shard-{number}-image-{offset}"))
        ids.append(by_offset[offset])
    return ids


def _metrics(
    method: FilmAnonymizer, source: Dataset, tally: _Tally, seconds: float, shards: int
) -> dict[str, Any]:
    counts = {name: len(rows) for name, rows in source.split_rows().items()}
    return {
        "method": method.method,
        "settings": method.settings,
        "images": tally.images,
        "manifest_rows": len(source.manifest),
        "split_images": counts,
        "shards": shards,
        "seconds": seconds,
        "images_per_s": tally.images / seconds if seconds > 0 else float("nan"),
        "largest_displacement_px": tally.largest_px,
        "mean_abs_change": tally.abs_change / tally.images if tally.images else 0.0,
    }
