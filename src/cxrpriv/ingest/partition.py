"""Partitioned ingest: N tasks, each over one partition of the source listing, then one merge.

A file belongs to partition ``sha256(path) mod N`` (a stable key of its path relative to the source, so
membership does not depend on the listing order or on which task lists first). Each partition task lists the
whole source, sends only its own files through the workers and the labels-table join, exactly as a single
run does, and writes a **partial** under its own folder: its shards, its manifest rows (no split yet), its
report rows with each file's position in the whole listing and, where the worker ingested it, its image ID
(``candidate_image_id``), its PHI hashes and ``partition.json`` (the partition, the count, a keyed digest
of the listed paths, the key's check value and the settings).

The merge checks that the partials are one complete set made with the same key, settings and listing
(every listed file accounted for exactly once), puts the report rows back in listing order, rejects as
duplicates the images already ingested earlier in the listing (what a single run decides while it goes),
copies the images into new shards in that order, then assigns the patient-wise splits over the whole set,
validates and writes the dataset like a single run (:func:`cxrpriv.ingest.stage.conclude`). The result is the
single run's, file for file: the same manifest, shards, headers, report, PHI hashes and state
(``tests/ingest/test_ingest_partition.py``). Partitions and merge write new outputs only: adding to an
earlier dataset (an incremental run) is a single run's job.

The same key in every task gives the same pseudonyms. ``--path-map`` is written by each partition for its
own files (one file per partition: their rows together are the single run's map); a pseudonym map needs
the original patient IDs in the merge and is refused here (use a single run).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrpriv.config import config_to_dict
from cxrpriv.dataset import (
    FILES_REPORT_COLUMNS,
    MANIFEST_COLUMNS,
    REPORT_DIR,
    STATE_FILE,
    files_report_path,
    manifest_path,
    phi_hashes_path,
)
from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.ingest.labels import LabelsTable
from cxrpriv.ingest.phi_hashes import merge_hashes
from cxrpriv.ingest.process import INGESTED, REJECTED
from cxrpriv.ingest.shards import IMAGES_DIR, ShardWriter, shard_header_lines, shard_name
from cxrpriv.ingest.sources import Source, SourceFile
from cxrpriv.ingest.stage import (
    DUPLICATE,
    Assembly,
    IngestResult,
    RunOutput,
    StageError,
    conclude,
    load_previous,
    remove_shards,
    run_workers,
    typed_manifest,
    write_maps,
)

PARTITION_FILE = "partition.json"
LISTING_INDEX = "listing_index"  # the file's position in the whole listing
CANDIDATE = "candidate_image_id"  # the image ID when the worker ingested the file (before the join)
# Settings that change no output: partitions may differ in them.
FREE_SETTINGS = ("workers",)


@dataclass(frozen=True)
class Partition:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index}/{self.count}: need 0 <= I < N")

    @classmethod
    def parse(cls, text: str) -> Partition:
        """``I/N``: partition I (from 0) of N."""
        index, slash, count = str(text).partition("/")
        if not slash or not index.strip().isdigit() or not count.strip().isdigit():
            raise ValueError(f"partition {text!r}: expected I/N, e.g. 0/4")
        return cls(int(index), int(count))

    def holds(self, path: str) -> bool:
        return partition_of(path, self.count) == self.index


def partition_of(path: str, count: int) -> int:
    """The partition of a source path (relative to the source root) among ``count``."""
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") % count


def _settings(config: PreprocessConfig) -> dict[str, Any]:
    return {k: v for k, v in config_to_dict(config).items() if k not in FREE_SETTINGS}


def _refuse_earlier_output(out_dir: Path, what: str) -> None:
    for name in (STATE_FILE, PARTITION_FILE):
        if (out_dir / name).exists():
            raise StageError(f"{out_dir / name}: {what} writes a new output; use an empty output directory")


class _Listing:
    """The whole listing, streamed: this partition's files, with their positions and the listing digest
    (keyed: paths can name patients, and the partial may be kept where its report's paths are keyed)."""

    def __init__(
        self, source: Source, partition: Partition, assembly: Assembly, key: DeidKey, keep_paths: bool
    ) -> None:
        self.source, self.partition, self.assembly, self.keep_paths = source, partition, assembly, keep_paths
        self.positions: deque[int] = deque()
        self.digest = hmac.new(key.secret, b"listing\x00", hashlib.sha256)
        self.listed = 0

    def __iter__(self) -> Iterator[SourceFile]:
        for item in self.source.list():
            position = self.listed
            self.listed += 1
            self.digest.update(item.path.encode() + b"\0")
            if not self.partition.holds(item.path):
                continue
            if self.keep_paths:
                self.assembly.output.listed_paths[self.assembly.shown_path(item.path)] = item.path
            self.positions.append(position)
            yield item


def preprocess_partition(
    config: PreprocessConfig,
    source: Source,
    labels: LabelsTable | None,
    out_dir: Path,
    key: DeidKey,
    *,
    partition: Partition,
    progress: bool = False,
    path_map: Path | None = None,
) -> dict[str, Any]:
    """Ingest the files of one partition of ``source`` into a partial under ``out_dir``; returns metrics."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    _refuse_earlier_output(out_dir, "a partition")
    out_dir.mkdir(parents=True, exist_ok=True)
    assembly = Assembly(out_dir, config, key, labels, load_previous(out_dir, key, config), keep_map=False)
    listing = _Listing(source, partition, assembly, key, keep_paths=path_map is not None)
    extra: list[tuple[int, str | None]] = []

    def note(row: dict[str, Any] | None) -> None:
        extra.append((listing.positions.popleft(), assembly.last_candidate))

    output = run_workers(listing, assembly, source, progress=progress, out_dir=out_dir, on_row=note)
    _write_partial(out_dir, output, extra, config, key)
    if path_map is not None and config.log_paths == "keyed" and output.listed_paths:
        write_maps(output, config, None, path_map)
    info = {
        "partition": [partition.index, partition.count],
        "listed": listing.listed,
        "listing_digest": listing.digest.hexdigest(),
        "key_check": key.check_value(),
        "settings": _settings(config),
        "labels_table": labels is not None,
        "worker_seconds": output.worker_seconds,
    }
    (out_dir / PARTITION_FILE).write_text(json.dumps(info, indent=1, sort_keys=True, default=str) + "\n")
    wall = time.perf_counter() - start
    outcomes = output.this_run["outcome"].value_counts()
    return {
        "partition": partition.index,
        "partitions": partition.count,
        "files_listed": listing.listed,
        "files_processed": len(output.this_run),
        "outcomes_this_run": {o: int(outcomes.get(o, 0)) for o in ("ingested", "quarantined", "rejected")},
        "wall_seconds": round(wall, 2),
        "images_per_second": round(len(output.this_run) / wall, 2) if wall > 0 else None,
    }


def _write_partial(
    out_dir: Path,
    output: RunOutput,
    extra: list[tuple[int, str | None]],
    config: PreprocessConfig,
    key: DeidKey,
) -> None:
    files = output.this_run.copy()
    files[LISTING_INDEX] = pd.array([position for position, _ in extra], dtype="int64")
    files[CANDIDATE] = pd.array([candidate for _, candidate in extra], dtype="string")
    (out_dir / REPORT_DIR).mkdir(exist_ok=True)
    files.to_parquet(files_report_path(out_dir), index=False)
    rows = output.new_rows if len(output.new_rows) else pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    typed_manifest(rows).to_parquet(manifest_path(out_dir), index=False)
    merge_hashes(phi_hashes_path(out_dir), output.phi_hashes)


# --------------------------------------------------------------------------- the merge


@dataclass(frozen=True)
class _Partial:
    root: Path
    info: dict[str, Any]


def _read_partial(root: Path) -> _Partial:
    path = Path(root) / PARTITION_FILE
    if not path.is_file():
        raise StageError(f"{path}: not found; {root} is not the output of a partition task")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StageError(f"{path}: not readable JSON ({exc.msg})") from exc
    return _Partial(Path(root), info)


def _check_partials(partials: list[_Partial], config: PreprocessConfig, key: DeidKey) -> None:
    """One complete set of partitions, made with this key and these settings over the same listing."""
    if not partials:
        raise StageError("no partitions to merge")
    count = len(partials)
    indices = sorted(p.info["partition"][0] for p in partials)
    if indices != list(range(count)) or any(p.info["partition"][1] != count for p in partials):
        raise StageError(
            f"the partitions to merge are {sorted(tuple(p.info['partition']) for p in partials)}: "
            f"need each of 0..{count - 1} of {count} exactly once"
        )
    first = partials[0].info
    for partial in partials:
        where = partial.root / PARTITION_FILE
        if partial.info["key_check"] != key.check_value():
            raise StageError(f"{where}: made with another de-identification key: pseudonyms would not match")
        if partial.info["settings"] != _settings(config):
            raise StageError(f"{where}: made with other preprocess settings than this merge's")
        if (partial.info["listing_digest"], partial.info["listed"]) != (
            first["listing_digest"],
            first["listed"],
        ):
            raise StageError(
                f"{where}: listed another source than partition {first['partition'][0]} (the source changed "
                "while the partitions ran?): run every partition again"
            )


def _files_in_listing_order(partials: list[_Partial]) -> pd.DataFrame:
    frames = []
    for number, partial in enumerate(partials):
        frame = pd.read_parquet(files_report_path(partial.root))
        frames.append(frame.assign(_partial=number))
    files = pd.concat(frames, ignore_index=True).sort_values(LISTING_INDEX, kind="stable")
    listed = int(partials[0].info["listed"])
    if not np.array_equal(files[LISTING_INDEX].to_numpy(), np.arange(listed)):
        raise StageError(
            f"the partitions account for {len(files)} rows over {files[LISTING_INDEX].nunique()} of the "
            f"{listed} listed files: every file must be in exactly one partition"
        )
    return files.reset_index(drop=True)


def _reject_duplicates(files: pd.DataFrame) -> pd.DataFrame:
    """What a single run decides as it goes: an image already ingested earlier in the listing is a
    duplicate, whatever else its own partition found."""
    ingested: set[str] = set()
    files = files.copy()
    for i, candidate, outcome in zip(files.index, files[CANDIDATE], files["outcome"], strict=True):
        if pd.isna(candidate):
            continue
        if candidate in ingested:
            files.loc[i, ["outcome", "reason", "image_id"]] = [REJECTED, DUPLICATE, None]
        elif outcome == INGESTED:
            ingested.add(candidate)
    return files


class _PartialImages:
    """The images and header lines of the partials, by (partial, shard, offset)."""

    def __init__(self, partials: list[_Partial]) -> None:
        self.partials = partials
        self._images: dict[tuple[int, int], np.ndarray] = {}
        self._headers: dict[tuple[int, int], list[str]] = {}

    def get(self, partial: int, shard: int, offset: int) -> tuple[np.ndarray, str]:
        slot = (partial, shard)
        root = self.partials[partial].root
        if slot not in self._images:
            path = root / IMAGES_DIR / f"{shard_name(shard)}.npy"
            self._images[slot] = np.load(path, mmap_mode="r", allow_pickle=False)
            self._headers[slot] = shard_header_lines(root, shard)
        return np.asarray(self._images[slot][offset]), self._headers[slot][offset]


def merge_partitions(
    config: PreprocessConfig,
    partial_dirs: Sequence[Path],
    out_dir: Path,
    key: DeidKey,
    on_validation_report: Callable[[dict[str, Any]], None] | None = None,
) -> IngestResult:
    """The dataset of a whole source from the partials of its partitions, as a single run writes it."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    _refuse_earlier_output(out_dir, "the merge")
    partials = [_read_partial(Path(d)) for d in partial_dirs]
    _check_partials(partials, config, key)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = _reject_duplicates(_files_in_listing_order(partials))
    previous = load_previous(out_dir, key, config)
    writer = ShardWriter(out_dir, config.shard_size, config.image_size, config.dtype)
    try:
        new_rows = _copy_images(partials, files, writer)
        new_shards = writer.close()
    except BaseException:
        remove_shards(out_dir, writer.written)
        raise
    hashes: set[tuple[str, str]] = set()
    for partial in partials:
        table = pd.read_parquet(phi_hashes_path(partial.root))
        hashes.update(zip(table["kind"].astype(str), table["hash"].astype(str), strict=True))
    this_run = pd.DataFrame(
        files[list(FILES_REPORT_COLUMNS)].to_dict("records"), columns=FILES_REPORT_COLUMNS
    )
    output = RunOutput(
        this_run=this_run,
        new_rows=new_rows,
        new_shards=new_shards,
        phi_hashes=hashes,
        worker_seconds=sum(float(p.info["worker_seconds"]) for p in partials),
    )
    result = conclude(
        out_dir,
        config,
        key,
        previous,
        output,
        has_labels=bool(partials[0].info["labels_table"]),
        on_validation_report=on_validation_report,
        maps=(None, None),
        start=start,
    )
    result.metrics["partitions"] = len(partials)
    return result


def _copy_images(partials: list[_Partial], files: pd.DataFrame, writer: ShardWriter) -> pd.DataFrame:
    """The manifest rows of the ingested files in listing order, their images copied into new shards."""
    manifests = [pd.read_parquet(manifest_path(p.root)) for p in partials]
    by_id = [dict(zip(m["image_id"], m.index, strict=True)) for m in manifests]
    images = _PartialImages(partials)
    rows = []
    ingested = files[files["outcome"] == INGESTED]
    for number, image_id in zip(ingested["_partial"], ingested["image_id"], strict=True):
        manifest = manifests[number]
        record = manifest.loc[by_id[number][image_id]].to_dict()
        image, header_line = images.get(number, int(record["shard"]), int(record["offset"]))
        record["shard"], record["offset"] = writer.add(image, header_line)
        rows.append(record)
    return pd.DataFrame(rows, columns=list(MANIFEST_COLUMNS))
