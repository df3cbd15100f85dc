"""The ``preprocess`` stage: a source of DICOM (or ChestX-ray14 PNG) files to a de-identified, normalized,
split and validated dataset.

The output under ``out_dir`` is the ingested-dataset format of :mod:`cxrpriv.dataset` (the manifest, the
image shards of :mod:`cxrpriv.ingest.shards`, the report of every input file, the validation report and the
state the next run checks).

Every listed file ends in exactly one outcome. Re-running over the same source processes only files that
are new or changed (by path and fingerprint, then by keyed checksum): their images go to new shards,
known patients keep their split, and new patients are stratified among themselves. A changed file's new
image replaces its old manifest row (the old shard slot stays, unreferenced). The report is written even
when the manifest fails validation (an empty batch included): this run's would-be images are then rejected
as not stored, and tried again by the next run.

Workers decode in parallel; the parent alone writes shards, so memory is one shard buffer plus a bounded
window of in-flight results, whatever the number of files.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.dataset import (
    FILES_REPORT_COLUMNS,
    MANIFEST_COLUMNS,
    REPORT_DIR,
    SPLITS,
    STATE_FILE,
    files_report_path,
    manifest_path,
    phi_hashes_path,
    validation_report_path,
)
from cxrpriv.ingest.allocator import keep_freed_memory
from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.deid import Deidentifier
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.ingest.labels import LabelsTable
from cxrpriv.ingest.phi_hashes import merge_hashes
from cxrpriv.ingest.process import (
    INGESTED,
    OUTCOMES,
    QUARANTINED,
    REJECTED,
    FileResult,
    WorkerContext,
    process_file,
    reason_category,
)
from cxrpriv.ingest.screening import coded
from cxrpriv.ingest.shards import IMAGES_DIR, ShardWriter
from cxrpriv.ingest.sources import Source, SourceFile
from cxrpriv.ingest.splits import stratified_patient_splits
from cxrpriv.ingest.validation import ValidationFailed, validate_manifest

log = logging.getLogger(__name__)

# Rejections that say nothing about the file itself: a later run tries these files again.
NOT_STORED = "not stored: the manifest failed validation"
RETRYABLE_REASONS = (
    "cannot be read from the source",
    "no row for this image in the labels table",
    NOT_STORED,
)
# Report and manifest rows are folded into DataFrames this many at a time.
ROW_CHUNK = 8192
# Files per worker call, and calls in flight per worker: enough to hide IPC, small enough to bound memory.
CHUNK = 4
WINDOW_PER_WORKER = 4


class StageError(RuntimeError):
    """The stage cannot run as asked (key or settings differ from the existing output, bad paths)."""


@dataclass
class IngestResult:
    out_dir: Path
    metrics: dict[str, Any]
    validation: dict[str, Any]
    manifest: pd.DataFrame
    files: pd.DataFrame
    new_shards: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- parallel map


_CONTEXT: WorkerContext | None = None
_DEID: Deidentifier | None = None


def _init_worker(ctx: WorkerContext) -> None:
    global _CONTEXT, _DEID
    keep_freed_memory()  # reuse each file's large buffers for the next one (see allocator.py)
    _CONTEXT = ctx
    _DEID = _deidentifier(ctx.key, ctx.config)
    # Codec plugins and pydicom log per file at INFO/WARNING, sometimes with header values.
    for noisy in ("pydicom", "openjpeg", "pylibjpeg", "rle", "PIL"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _deidentifier(key: DeidKey, config: PreprocessConfig) -> Deidentifier:
    return Deidentifier(key, config.deid_options, config.max_date_shift_days, config.deid_policy)


def _run_chunk(items: list[SourceFile]) -> list[FileResult]:
    assert _CONTEXT is not None and _DEID is not None
    return [process_file(_CONTEXT, item, _DEID) for item in items]


def _chunks(items: Iterable[SourceFile], size: int) -> Iterator[list[SourceFile]]:
    chunk: list[SourceFile] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def ordered_parallel(items: Iterable[SourceFile], ctx: WorkerContext, workers: int) -> Iterator[FileResult]:
    """Results in input order, with at most ``workers * WINDOW_PER_WORKER`` chunks in flight."""
    if workers <= 1:
        _init_worker(ctx)
        for chunk in _chunks(items, CHUNK):
            yield from _run_chunk(chunk)
        return
    # fork: workers inherit the loaded modules; the key and config travel in memory only.
    mp = multiprocessing.get_context("fork")
    with mp.Pool(workers, initializer=_init_worker, initargs=(ctx,)) as pool:
        pending: deque[Any] = deque()
        for chunk in _chunks(items, CHUNK):
            pending.append(pool.apply_async(_run_chunk, (chunk,)))
            if len(pending) >= workers * WINDOW_PER_WORKER:
                yield from pending.popleft().get()
        while pending:
            yield from pending.popleft().get()


# --------------------------------------------------------------------------- state


def _read_state(out_dir: Path) -> dict[str, Any]:
    path = out_dir / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _check_state(state: dict[str, Any], key: DeidKey, config: PreprocessConfig) -> None:
    if not state:
        return
    if state.get("key_check") != key.check_value():
        raise StageError(
            "the output directory was made with a different de-identification key: pseudonyms would not "
            "match; use the original key or a new output directory"
        )
    for name in ("image_size", "dtype", "shard_size"):
        if state.get(name) != getattr(config, name):
            raise StageError(
                f"the output directory was made with {name}={state.get(name)}, not {getattr(config, name)}: "
                "its shards cannot take the new images; use a new output directory"
            )


def _previous(out_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    files_path = files_report_path(out_dir)
    manifest_file = manifest_path(out_dir)
    files = (
        pd.read_parquet(files_path)
        if files_path.is_file()
        else pd.DataFrame(columns=list(FILES_REPORT_COLUMNS))
    )
    manifest = (
        pd.read_parquet(manifest_file)
        if manifest_file.is_file()
        else pd.DataFrame(columns=list(MANIFEST_COLUMNS))
    )
    return files, manifest


# --------------------------------------------------------------------------- the stage


def preprocess(
    config: PreprocessConfig,
    source: Source,
    labels: LabelsTable,
    out_dir: Path,
    key: DeidKey,
    pseudonym_map: Path | None = None,
    progress: bool = False,
    on_validation_report: Callable[[dict[str, Any]], None] | None = None,
) -> IngestResult:
    """Ingest every new or changed file of ``source`` into ``out_dir``; returns metrics and tables."""
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    state = _read_state(out_dir)
    _check_state(state, key, config)
    run = int(state.get("runs", 0)) + 1
    previous_files, previous_manifest = _previous(out_dir)
    if "path_key" not in previous_files.columns:  # a report written before the column existed
        previous_files.insert(1, "path_key", previous_files["path"].map(key.path_tag))
    if "phi_blanked" not in previous_files.columns:  # files processed before the tripwire existed
        previous_files["phi_blanked"] = pd.Series(pd.NA, index=previous_files.index, dtype="Int64")
    # Compact views of the previous report: a few hundred bytes per file, not a dict per row.
    before = {
        path: (fingerprint, checksum, _final(checksum, reason))
        for path, fingerprint, checksum, reason in zip(
            previous_files["path"],
            previous_files["fingerprint"],
            previous_files["checksum"],
            previous_files["reason"],
            strict=True,
        )
    }
    ingested_before = previous_files[previous_files["outcome"] == INGESTED]
    path_to_image = dict(zip(ingested_before["path"], ingested_before["image_id"], strict=True))

    skipped: Counter[str] = Counter()

    def todo() -> Iterator[SourceFile]:
        for item in source.list():
            known = before.get(item.path)
            if known is not None and known[0] == item.fingerprint and known[2]:
                skipped["unchanged"] += 1
                continue
            yield item

    workers = config.workers or os.cpu_count() or 1
    ctx = WorkerContext(source, config, key, keep_original_ids=pseudonym_map is not None)
    deid = _deidentifier(key, config)
    writer = ShardWriter(out_dir, config.shard_size, config.image_size, config.dtype)
    ingested_ids = set(previous_manifest["image_id"])
    replaced: set[str] = set()
    refingerprinted: dict[str, str] = {}
    rows = _Rows(MANIFEST_COLUMNS)
    file_rows = _Rows(FILES_REPORT_COLUMNS)
    new_patients: dict[str, str] = {}  # pseudonym -> original ID, only kept for an explicit pseudonym map
    # Keyed hashes of every de-identified file, whatever its outcome: a rejected file's patient may have
    # other, ingested films, and more hashes only make the release audit stricter.
    phi_hashes: set[tuple[str, str]] = set()
    seconds = 0.0
    bar = tqdm(desc="preprocess", unit="file", disable=not progress)
    try:
        for res in ordered_parallel(todo(), ctx, workers):
            bar.update()
            seconds += res.seconds
            phi_hashes.update(res.phi_hashes)
            known = before.get(res.path)
            if known is not None and known[1] == res.checksum and known[2]:
                # Touched but unchanged: keep the earlier outcome, remember the new fingerprint.
                skipped["same_checksum"] += 1
                refingerprinted[res.path] = res.fingerprint
                continue
            if res.outcome == INGESTED:
                _join(
                    res,
                    labels,
                    deid,
                    ingested_ids,
                    path_to_image.get(res.path),
                    config.views,
                    new_patients,
                    pseudonym_map is not None,
                )
            if res.outcome == INGESTED:
                assert res.image is not None and res.header_line is not None and res.image_id is not None
                shard, offset = writer.add(res.image, res.header_line)
                ingested_ids.add(res.image_id)
                label = labels.lookup(res.path)
                assert label is not None
                rows.append(
                    {
                        "image_id": res.image_id,
                        "patient_id": res.patient_id,
                        "split": None,
                        **res.fields,
                        **dict(zip(FINDINGS, label.labels, strict=True)),
                        "source_format": res.source_format,
                        "source_checksum": res.checksum,
                        "shard": shard,
                        "offset": offset,
                        "run": run,
                    }
                )
                if res.path in path_to_image:
                    replaced.add(path_to_image[res.path])
            else:
                log.info("%s: %s (%s)", ctx.shown_path(res.path), res.outcome, res.reason)
            file_rows.append(
                {
                    "path": res.path,
                    "path_key": key.path_tag(res.path),
                    "size": res.size,
                    "fingerprint": res.fingerprint,
                    "checksum": res.checksum,
                    "source_format": res.source_format,
                    "outcome": res.outcome,
                    "reason": res.reason,
                    "image_id": res.image_id if res.outcome == INGESTED else None,
                    "run": run,
                    "header_flag": res.header_flag,
                    "text_glyphs": res.text_glyphs,
                    "phi_blanked": res.phi_blanked,
                }
            )
        new_shards = writer.close()
    except BaseException:
        bar.close()
        _remove_shards(out_dir, writer.written)
        raise
    bar.close()

    this_run = file_rows.frame()
    files = _merge_files(previous_files, this_run, refingerprinted)
    manifest = _merge_manifest(previous_manifest, rows.frame(), replaced, config)
    (out_dir / REPORT_DIR).mkdir(exist_ok=True)
    try:
        validation = validate_manifest(manifest, config.views, config.shard_size)
    except ValidationFailed as exc:
        _write_json(validation_report_path(out_dir), exc.report)
        if on_validation_report:
            on_validation_report(exc.report)
        _remove_shards(out_dir, new_shards)
        # Every file stays accounted for (an empty batch too); this run's images were not stored, so their
        # files are tried again by the next run.
        _not_stored(files, this_run).to_parquet(files_report_path(out_dir), index=False)
        raise
    _write_json(validation_report_path(out_dir), validation)
    if on_validation_report:
        on_validation_report(validation)
    manifest.to_parquet(manifest_path(out_dir), index=False)
    files.to_parquet(files_report_path(out_dir), index=False)
    merge_hashes(phi_hashes_path(out_dir), phi_hashes)
    if pseudonym_map is not None and new_patients:
        _append_pseudonym_map(pseudonym_map, new_patients)
    _write_json(
        out_dir / STATE_FILE,
        {
            "runs": run,
            "key_check": key.check_value(),
            "image_size": config.image_size,
            "dtype": config.dtype,
            "shard_size": config.shard_size,
            # What a release needs to describe the stored images and check their headers.
            "aspect": config.aspect,
            "deid_policy": config.deid_policy,
            "deid_options": list(config.deid_options),
        },
    )
    wall = time.perf_counter() - start
    metrics = stage_metrics(manifest, files, this_run, skipped, wall, seconds, run, key)
    return IngestResult(out_dir, metrics, validation, manifest, files, new_shards)


def _not_stored(files: pd.DataFrame, this_run: pd.DataFrame) -> pd.DataFrame:
    """The report after a failed validation: this run's ingested files are rejected as not stored."""
    files = files.copy()
    lost = files["path"].isin(this_run.loc[this_run["outcome"] == INGESTED, "path"])
    files.loc[lost, "outcome"] = REJECTED
    files.loc[lost, "reason"] = NOT_STORED
    files.loc[lost, "image_id"] = None
    return files


def _join(
    res: FileResult,
    labels: LabelsTable,
    deid: Deidentifier,
    ingested_ids: set[str],
    replacing: str | None,
    views: list[str],
    new_patients: dict[str, str],
    keep_map: bool,
) -> None:
    """Attach labels and (for PNG) the patient; demote to rejected when that is impossible."""
    label = labels.lookup(res.path)
    reason = ""
    if label is None:
        reason = "no row for this image in the labels table"
    elif res.image_id in ingested_ids and res.image_id != replacing:
        # (a changed file's new image keeps its image ID and replaces its old row: not a duplicate)
        reason = "duplicate of an ingested image (same SOP Instance UID)"
    elif res.source_format == "png":
        if not label.patient_id:
            reason = "no Patient ID for this PNG in the labels table"
        else:
            res.patient_id = deid.pseudonym(label.patient_id)
            if keep_map:
                new_patients[res.patient_id] = label.patient_id
            view = (label.view or "UNKNOWN").upper()
            res.fields.update({"view": view, "age": label.age, "sex": label.sex})
    if label is not None and not reason:
        # The header wins; the table fills what the header lacks.
        if res.fields.get("age") is None:
            res.fields["age"] = label.age
        if res.fields.get("sex") is None:
            res.fields["sex"] = label.sex
        if res.fields.get("view") in (None, "UNKNOWN") and label.view:
            res.fields["view"] = label.view
        if res.fields.get("view") not in views:
            reason = f"view {coded(res.fields.get('view'))} (labels table) is not one of {'/'.join(views)}"
    if reason:
        res.outcome, res.reason, res.image, res.header_line = REJECTED, reason, None, None
    elif keep_map and res.source_format == "dicom" and res.original_patient_id and res.patient_id:
        new_patients[res.patient_id] = res.original_patient_id


def _final(checksum: object, reason: object) -> bool:
    """Whether an earlier outcome stands for an unchanged file (retryable failures are tried again)."""
    return isinstance(checksum, str) and not str(reason).startswith(RETRYABLE_REASONS)


class _Rows:
    """Rows kept as DataFrame chunks of ROW_CHUNK (about 100 bytes a row instead of a 2 KB dict)."""

    def __init__(self, columns: tuple[str, ...]) -> None:
        self.columns = list(columns)
        self.buffer: list[dict[str, Any]] = []
        self.frames: list[pd.DataFrame] = []

    def append(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= ROW_CHUNK:
            self._fold()

    def _fold(self) -> None:
        if self.buffer:
            self.frames.append(pd.DataFrame(self.buffer, columns=self.columns))
            self.buffer = []

    def frame(self) -> pd.DataFrame:
        self._fold()
        if not self.frames:
            return pd.DataFrame(columns=self.columns)
        return pd.concat(self.frames, ignore_index=True) if len(self.frames) > 1 else self.frames[0]


def _merge_files(
    previous: pd.DataFrame, this_run: pd.DataFrame, refingerprinted: dict[str, str]
) -> pd.DataFrame:
    """The report over every file ever seen: this run's rows replace earlier rows of the same path."""
    kept = previous[~previous["path"].isin(this_run["path"])].copy()
    if refingerprinted and len(kept):
        moved = kept["path"].map(refingerprinted)
        kept["fingerprint"] = moved.fillna(kept["fingerprint"])
    frames = [f for f in (kept, this_run) if len(f)]
    files = pd.concat(frames, ignore_index=True) if frames else this_run
    return files[list(FILES_REPORT_COLUMNS)].reset_index(drop=True)


def _merge_manifest(
    previous: pd.DataFrame, new: pd.DataFrame, replaced: set[str], config: PreprocessConfig
) -> pd.DataFrame:
    kept = previous[~previous["image_id"].isin(replaced)] if len(previous) else previous
    existing = dict(zip(kept["patient_id"], kept["split"], strict=True)) if len(kept) else {}
    if len(new):
        splits = stratified_patient_splits(
            new["patient_id"],
            new[list(FINDINGS)].to_numpy(dtype=np.int64),
            config.split_fractions,
            config.split_seed,
            existing,
        )
        new["split"] = new["patient_id"].map(splits)
    frames = [f for f in (kept, new) if len(f)]
    manifest = pd.concat(frames, ignore_index=True) if frames else new
    manifest = manifest[list(MANIFEST_COLUMNS)]
    for column in ("shard", "offset", "run", *FINDINGS):
        manifest[column] = manifest[column].astype("int64")
    manifest["age"] = manifest["age"].astype("Int64")
    for column in ("pixel_mean", "pixel_std"):
        manifest[column] = manifest[column].astype("float64")
    for column in ("image_id", "patient_id", "split", "view", "sex", "study_date", "modality", "photometric"):
        manifest[column] = manifest[column].astype("string")
    manifest["source_format"] = manifest["source_format"].astype("string")
    manifest["source_checksum"] = manifest["source_checksum"].astype("string")
    return manifest


def _remove_shards(out_dir: Path, names: list[str]) -> None:
    for name in names:
        for path in (out_dir / IMAGES_DIR / f"{name}.npy", out_dir / "headers" / f"{name}.jsonl"):
            path.unlink(missing_ok=True)


def _append_pseudonym_map(path: Path, new_patients: dict[str, str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        {"pseudonym": list(new_patients), "original_patient_id": list(new_patients.values())}
    )
    if path.is_file():
        frame = pd.concat([pd.read_csv(path, dtype=str), frame]).drop_duplicates("pseudonym", keep="first")
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.sort_values("pseudonym").to_csv(tmp, index=False)
    os.replace(tmp, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def stage_metrics(
    manifest: pd.DataFrame,
    files: pd.DataFrame,
    this_run: pd.DataFrame,
    skipped: Counter,
    wall: float,
    worker_seconds: float,
    run: int,
    key: DeidKey,
) -> dict[str, Any]:
    run_outcomes = Counter(this_run["outcome"])
    metrics: dict[str, Any] = {
        "run": run,
        "key_source": key.source,
        "files_total": len(files),
        "files_processed": len(this_run),
        "files_skipped_unchanged": int(skipped["unchanged"] + skipped["same_checksum"]),
        "wall_seconds": round(wall, 2),
        "images_per_second": round(len(this_run) / wall, 2) if wall > 0 else None,
        "worker_seconds_per_file": round(worker_seconds / len(this_run), 4) if len(this_run) else None,
        "outcomes": {o: int((files["outcome"] == o).sum()) for o in OUTCOMES},
        "outcomes_this_run": {o: int(run_outcomes[o]) for o in OUTCOMES},
        "reasons": {
            outcome: {
                str(k): int(v)
                for k, v in files.loc[files["outcome"] == outcome, "reason"]
                .map(reason_category)
                .value_counts()
                .items()
            }
            for outcome in (QUARANTINED, REJECTED)
        },
        "n_images": len(manifest),
        "n_patients": int(manifest["patient_id"].nunique()),
        "n_shards": int(manifest["shard"].nunique()) if len(manifest) else 0,
        "phi_tripwire": {
            "files": int((files["phi_blanked"].fillna(0) > 0).sum()),
            "values_blanked": int(files["phi_blanked"].fillna(0).sum()),
        },
        "burned_in": {
            "header_flag": int(files["header_flag"].fillna(False).astype(bool).sum()),
            "text_detected": int(files["reason"].fillna("").str.contains("text detected", regex=False).sum()),
            "quarantined": int((files["outcome"] == QUARANTINED).sum()),
        },
        "splits": {},
        "pixel_mean": round(float(manifest["pixel_mean"].mean()), 4) if len(manifest) else None,
        "pixel_std": round(float(manifest["pixel_std"].mean()), 4) if len(manifest) else None,
    }
    for split in SPLITS:
        part = manifest[manifest["split"] == split]
        metrics["splits"][split] = {
            "images": len(part),
            "patients": int(part["patient_id"].nunique()),
            "any_finding": round(float(part[list(FINDINGS)].max(axis=1).mean()), 4) if len(part) else None,
        }
    return metrics
