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

Workers decode in parallel, each in its own process (:mod:`cxrpriv.ingest.workers`: a worker that dies costs
only the file it held); the parent alone writes shards, so memory is one shard buffer plus a bounded window
of in-flight results, whatever the number of files.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
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
    PATH_MAP_COLUMNS,
    REPORT_DIR,
    SPLITS,
    STATE_FILE,
    files_report_path,
    manifest_path,
    phi_hashes_path,
    validation_report_path,
)
from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.deid import Deidentifier
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.ingest.labels import LabelRow, LabelsTable
from cxrpriv.ingest.phi_hashes import merge_hashes
from cxrpriv.ingest.process import (
    INGESTED,
    OUTCOMES,
    QUARANTINED,
    REJECTED,
    FileResult,
    WorkerContext,
    reason_category,
)
from cxrpriv.ingest.screening import coded
from cxrpriv.ingest.shards import IMAGES_DIR, ShardWriter
from cxrpriv.ingest.sources import Source, SourceFile
from cxrpriv.ingest.splits import stratified_patient_splits
from cxrpriv.ingest.validation import ValidationFailed, validate_manifest
from cxrpriv.ingest.workers import WORKER_DIED, deidentifier, ordered_results

log = logging.getLogger(__name__)

# Rejections that say nothing about the file itself: a later run tries these files again.
NOT_STORED = "not stored: the manifest failed validation"
DUPLICATE = "duplicate of an ingested image (same SOP Instance UID)"
RETRYABLE_REASONS = (
    "cannot be read from the source",
    NOT_STORED,
    WORKER_DIED,  # may have been the machine's memory, not the file: one more try costs one new worker
)
# Report and manifest rows are folded into DataFrames this many at a time.
ROW_CHUNK = 8192


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
    if state.get("log_paths", "relative") != config.log_paths:
        raise StageError(
            f"the output directory was made with log_paths={state.get('log_paths', 'relative')}, not "
            f"{config.log_paths}: its report names files the other way; use a new output directory"
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
    if "labeled" not in manifest.columns:  # every image of a manifest older than the column had labels
        manifest["labeled"] = True
    return files, manifest


# --------------------------------------------------------------------------- the stage


@dataclass
class PreviousRun:
    """What earlier runs left in the output directory, in the compact forms a run consults per file."""

    run: int  # the number this run gets
    files: pd.DataFrame
    manifest: pd.DataFrame
    # reported path -> (fingerprint, checksum, whether its outcome stands for an unchanged file)
    before: dict[str, tuple[str, str | None, bool]]
    path_to_image: dict[str, str]  # reported path -> image ID, of the files ingested before


def load_previous(out_dir: Path, key: DeidKey, config: PreprocessConfig) -> PreviousRun:
    """The earlier runs' output, refused when it was made with another key or shard settings."""
    state = _read_state(out_dir)
    _check_state(state, key, config)
    files, manifest = _previous(out_dir)
    if "path_key" not in files.columns:  # a report written before the column existed
        files.insert(1, "path_key", files["path"].map(key.path_tag))
    if "phi_blanked" not in files.columns:  # files processed before the tripwire existed
        files["phi_blanked"] = pd.Series(pd.NA, index=files.index, dtype="Int64")
    # Compact views of the previous report: a few hundred bytes per file, not a dict per row.
    before = {
        path: (fingerprint, checksum, _final(checksum, reason))
        for path, fingerprint, checksum, reason in zip(
            files["path"], files["fingerprint"], files["checksum"], files["reason"], strict=True
        )
    }
    ingested = files[files["outcome"] == INGESTED]
    path_to_image = dict(zip(ingested["path"], ingested["image_id"], strict=True))
    return PreviousRun(int(state.get("runs", 0)) + 1, files, manifest, before, path_to_image)


@dataclass
class RunOutput:
    """What one run adds: its report and manifest rows, and what goes beside them."""

    this_run: pd.DataFrame  # report rows of the files processed (FILES_REPORT_COLUMNS)
    new_rows: pd.DataFrame  # manifest rows of the images stored, split not yet assigned
    new_shards: list[str]
    phi_hashes: set[tuple[str, str]]
    worker_seconds: float
    skipped: Counter[str] = field(default_factory=Counter)
    replaced: set[str] = field(default_factory=set)  # image IDs whose rows a changed file replaces
    refingerprinted: dict[str, str] = field(default_factory=dict)  # touched, unchanged: new fingerprint
    new_patients: dict[str, str] = field(default_factory=dict)  # pseudonym -> original ID (explicit map)
    listed_paths: dict[str, str] = field(default_factory=dict)  # keyed tag -> path (explicit path map)


class Assembly:
    """The parent's side of a run: each worker result, in listing order, joined with its labels-table row
    and turned into a report row and, when ingested, a manifest row and a shard slot."""

    def __init__(
        self,
        out_dir: Path,
        config: PreprocessConfig,
        key: DeidKey,
        labels: LabelsTable | None,
        previous: PreviousRun,
        *,
        keep_map: bool,
    ) -> None:
        self.config, self.key, self.labels = config, key, labels
        self.previous, self.keep_map = previous, keep_map
        self.deid = deidentifier(key, config)
        self.writer = ShardWriter(out_dir, config.shard_size, config.image_size, config.dtype)
        self.ingested_ids = set(previous.manifest["image_id"])
        self.rows = _Rows(MANIFEST_COLUMNS)
        self.file_rows = _Rows(FILES_REPORT_COLUMNS)
        # Keyed hashes of every de-identified file, whatever its outcome: a rejected file's patient may have
        # other, ingested films, and more hashes only make the release audit stricter.
        self.output = RunOutput(pd.DataFrame(), pd.DataFrame(), [], set(), 0.0)
        # The image ID of the last result taken if its worker ingested it, before the join could reject it:
        # what a partitioned run's merge needs to find duplicates across partitions.
        self.last_candidate: str | None = None

    def shown_path(self, path: str) -> str:
        """How the report names a file: its path, or its keyed tag."""
        return self.key.path_tag(path) if self.config.log_paths == "keyed" else path

    def take(self, res: FileResult) -> dict[str, Any] | None:
        """Account for one result; returns its report row (None: an unchanged file, keeping its row)."""
        out = self.output
        out.worker_seconds += res.seconds
        out.phi_hashes.update(res.phi_hashes)
        path = self.shown_path(res.path)
        known = self.previous.before.get(path)
        if known is not None and known[1] == res.checksum and known[2]:
            # Touched but unchanged: keep the earlier outcome, remember the new fingerprint.
            out.skipped["same_checksum"] += 1
            out.refingerprinted[path] = res.fingerprint
            return None
        self.last_candidate = res.image_id if res.outcome == INGESTED else None
        if res.outcome == INGESTED:
            label = self.labels.lookup(res.path) if self.labels is not None else None
            replacing = self.previous.path_to_image.get(path)
            new_patients = self.output.new_patients if self.keep_map else None
            _join(
                res,
                label,
                self.deid,
                ingested_ids=self.ingested_ids,
                replacing=replacing,
                views=self.config.views,
                new_patients=new_patients,
            )
        if res.outcome == INGESTED:
            self._store(res, label, path)
        else:
            log.info("%s: %s (%s)", path, res.outcome, res.reason)
        row = report_row(res, path, self.key, self.previous.run)
        self.file_rows.append(row)
        return row

    def _store(self, res: FileResult, label: LabelRow | None, path: str) -> None:
        assert res.image is not None and res.header_line is not None and res.image_id is not None
        shard, offset = self.writer.add(res.image, res.header_line)
        self.ingested_ids.add(res.image_id)
        self.rows.append(manifest_row(res, label, shard, offset, self.previous.run))
        if path in self.previous.path_to_image:
            self.output.replaced.add(self.previous.path_to_image[path])

    def finish(self) -> RunOutput:
        """Close the last shard; the run's rows as tables."""
        self.output.new_shards = self.writer.close()
        self.output.this_run = self.file_rows.frame()
        self.output.new_rows = self.rows.frame()
        return self.output

    def discard(self, out_dir: Path) -> None:
        """Remove the shards this run wrote (it failed)."""
        remove_shards(out_dir, self.writer.written)


def manifest_row(
    res: FileResult, label: LabelRow | None, shard: int, offset: int, run: int
) -> dict[str, Any]:
    # Without a row the findings are missing, not negative: `labeled` says which.
    findings = label.labels if label is not None else (pd.NA,) * len(FINDINGS)
    return {
        "image_id": res.image_id,
        "patient_id": res.patient_id,
        "split": None,
        **res.fields,
        **dict(zip(FINDINGS, findings, strict=True)),
        "labeled": label is not None,
        "source_format": res.source_format,
        "source_checksum": res.checksum,
        "shard": shard,
        "offset": offset,
        "run": run,
    }


def report_row(res: FileResult, path: str, key: DeidKey, run: int) -> dict[str, Any]:
    return {
        "path": path,
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


def preprocess(  # noqa: PLR0913 (the stage's five inputs, then its four options by name)
    config: PreprocessConfig,
    source: Source,
    labels: LabelsTable | None,
    out_dir: Path,
    key: DeidKey,
    *,
    pseudonym_map: Path | None = None,
    progress: bool = False,
    on_validation_report: Callable[[dict[str, Any]], None] | None = None,
    path_map: Path | None = None,
) -> IngestResult:
    """Ingest every new or changed file of ``source`` into ``out_dir``; returns metrics and tables.

    ``labels`` None (no table) ingests every image unlabeled. Under ``log_paths: keyed`` the report names
    files by keyed tags, and ``path_map``, if given, receives tag -> source path (identifying: keep apart).
    """
    start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    previous = load_previous(out_dir, key, config)
    assembly = Assembly(out_dir, config, key, labels, previous, keep_map=pseudonym_map is not None)
    todo = _changed_files(source, assembly, keep_paths=path_map is not None)
    output = run_workers(todo, assembly, source, progress=progress, out_dir=out_dir)
    return conclude(
        out_dir,
        config,
        key,
        previous,
        output,
        has_labels=labels is not None,
        on_validation_report=on_validation_report,
        maps=(pseudonym_map, path_map),
        start=start,
    )


def _changed_files(source: Source, assembly: Assembly, keep_paths: bool) -> Iterator[SourceFile]:
    """The listed files that are new or changed (by fingerprint) since the earlier runs."""
    output, before = assembly.output, assembly.previous.before
    for item in source.list():
        shown = assembly.shown_path(item.path)
        if keep_paths:
            output.listed_paths[shown] = item.path
        known = before.get(shown)
        if known is not None and known[0] == item.fingerprint and known[2]:
            output.skipped["unchanged"] += 1
            continue
        yield item


def run_workers(
    todo: Iterable[SourceFile],
    assembly: Assembly,
    source: Source,
    *,
    progress: bool,
    out_dir: Path,
    on_row: Callable[[dict[str, Any] | None], None] | None = None,
) -> RunOutput:
    """Every file of ``todo`` through the workers and, in listing order, the assembly; on any failure the
    shards this run wrote are removed. ``on_row`` sees each result's report row (None: unchanged)."""
    config = assembly.config
    ctx = WorkerContext(source, config, assembly.key, keep_original_ids=assembly.keep_map)
    workers = config.workers or os.cpu_count() or 1
    bar = tqdm(desc="preprocess", unit="file", disable=not progress)
    try:
        for res in ordered_results(todo, ctx, workers):
            bar.update()
            row = assembly.take(res)
            if on_row is not None:
                on_row(row)
        return assembly.finish()
    except BaseException:
        assembly.discard(out_dir)
        raise
    finally:
        bar.close()


def conclude(  # noqa: PLR0913 (the run's state, then what to write, by name)
    out_dir: Path,
    config: PreprocessConfig,
    key: DeidKey,
    previous: PreviousRun,
    output: RunOutput,
    *,
    has_labels: bool,
    on_validation_report: Callable[[dict[str, Any]], None] | None,
    maps: tuple[Path | None, Path | None],
    start: float,
) -> IngestResult:
    """Assign the new patients' splits, validate, and write the manifest, the report, the PHI hashes, the
    maps and the state; a manifest that fails validation leaves only the report (its images not stored)."""
    files = _merge_files(previous.files, output.this_run, output.refingerprinted)
    manifest = _merge_manifest(previous.manifest, output.new_rows, output.replaced, config)
    validation = _validate(
        out_dir, manifest, files, output, config, on_validation_report=on_validation_report
    )
    manifest.to_parquet(manifest_path(out_dir), index=False)
    files.to_parquet(files_report_path(out_dir), index=False)
    merge_hashes(phi_hashes_path(out_dir), output.phi_hashes)
    write_maps(output, config, *maps)
    _write_json(out_dir / STATE_FILE, _state(previous.run, key, config))
    _warn_unlabeled(output.new_rows, has_labels)
    wall = time.perf_counter() - start
    metrics = stage_metrics(
        manifest,
        files,
        this_run=output.this_run,
        skipped=output.skipped,
        wall=wall,
        worker_seconds=output.worker_seconds,
        run=previous.run,
        key=key,
    )
    return IngestResult(out_dir, metrics, validation, manifest, files, output.new_shards)


def _validate(
    out_dir: Path,
    manifest: pd.DataFrame,
    files: pd.DataFrame,
    output: RunOutput,
    config: PreprocessConfig,
    *,
    on_validation_report: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    """The validation report (written, and handed to ``on_validation_report``); on failure, the report of
    every file is written with this run's images rejected as not stored, and ValidationFailed raised."""
    (out_dir / REPORT_DIR).mkdir(exist_ok=True)
    try:
        validation = validate_manifest(manifest, config.views, config.shard_size)
    except ValidationFailed as exc:
        _write_json(validation_report_path(out_dir), exc.report)
        if on_validation_report:
            on_validation_report(exc.report)
        remove_shards(out_dir, output.new_shards)
        # Every file stays accounted for (an empty batch too); this run's images were not stored, so their
        # files are tried again by the next run.
        _not_stored(files, output.this_run).to_parquet(files_report_path(out_dir), index=False)
        raise
    _write_json(validation_report_path(out_dir), validation)
    if on_validation_report:
        on_validation_report(validation)
    return validation


def write_maps(
    output: RunOutput, config: PreprocessConfig, pseudonym_map: Path | None, path_map: Path | None
) -> None:
    if pseudonym_map is not None and output.new_patients:
        _append_map(pseudonym_map, "pseudonym", {"original_patient_id": output.new_patients})
    if path_map is not None and config.log_paths == "keyed" and output.listed_paths:
        _append_map(path_map, PATH_MAP_COLUMNS[0], {PATH_MAP_COLUMNS[1]: output.listed_paths})


def _state(run: int, key: DeidKey, config: PreprocessConfig) -> dict[str, Any]:
    return {
        "runs": run,
        "key_check": key.check_value(),
        "image_size": config.image_size,
        "dtype": config.dtype,
        "shard_size": config.shard_size,
        # What a release needs to describe the stored images and check their headers.
        "aspect": config.aspect,
        "deid_policy": config.deid_policy,
        "deid_options": list(config.deid_options),
        # How the files report names files (readers of a keyed report need the path map).
        "log_paths": config.log_paths,
    }


def _not_stored(files: pd.DataFrame, this_run: pd.DataFrame) -> pd.DataFrame:
    """The report after a failed validation: this run's ingested files are rejected as not stored."""
    files = files.copy()
    lost = files["path"].isin(this_run.loc[this_run["outcome"] == INGESTED, "path"])
    files.loc[lost, "outcome"] = REJECTED
    files.loc[lost, "reason"] = NOT_STORED
    files.loc[lost, "image_id"] = None
    return files


def _warn_unlabeled(new_rows: pd.DataFrame, has_table: bool) -> None:
    unlabeled = int((~new_rows["labeled"].astype(bool)).sum()) if len(new_rows) else 0
    if unlabeled and has_table:
        # A count, not the files: a table that misses every image usually names them differently.
        log.warning("%d images of this run have no row in the labels table: ingested unlabeled", unlabeled)


def _join(
    res: FileResult,
    label: LabelRow | None,
    deid: Deidentifier,
    *,
    ingested_ids: set[str],
    replacing: str | None,
    views: list[str],
    new_patients: dict[str, str] | None,
) -> None:
    """Attach ``label`` (the image's labels-table row, if any) and (for PNG) the patient; demote to
    rejected when that is impossible. ``new_patients`` (only for an explicit pseudonym map) receives
    pseudonym -> original patient ID."""
    reason = duplicate_reason(res, ingested_ids, replacing)
    if not reason and res.source_format == "png":
        reason = _attach_png_patient(res, label, deid, new_patients)
    if label is not None and not reason:
        reason = _fill_from_table(res, label, views)
    if reason:
        res.outcome, res.reason, res.image, res.header_line = REJECTED, reason, None, None
    elif new_patients is not None and res.source_format == "dicom":
        _remember_patient(res.patient_id, res.original_patient_id, new_patients)


def duplicate_reason(res: FileResult, ingested_ids: set[str], replacing: str | None = None) -> str:
    """Why ``res`` is not stored although it decoded: its image is one already ingested; or empty."""
    # (a changed file's new image keeps its image ID and replaces its old row: not a duplicate)
    if res.image_id in ingested_ids and res.image_id != replacing:
        return DUPLICATE
    return ""


def _attach_png_patient(
    res: FileResult, label: LabelRow | None, deid: Deidentifier, new_patients: dict[str, str] | None
) -> str:
    """A PNG's patient, age, sex and view from its labels-table row; the reason when it has none."""
    if label is None:
        return "no row for this PNG in the labels table (its only source of a patient)"
    if not label.patient_id:
        return "no Patient ID for this PNG in the labels table"
    res.patient_id = deid.pseudonym(label.patient_id)
    if new_patients is not None:
        new_patients[res.patient_id] = label.patient_id
    view = (label.view or "UNKNOWN").upper()
    res.fields.update({"view": view, "age": label.age, "sex": label.sex})
    return ""


def _fill_from_table(res: FileResult, label: LabelRow, views: list[str]) -> str:
    """The header wins; the table fills what the header lacks. The reason when the view is not accepted."""
    if res.fields.get("age") is None:
        res.fields["age"] = label.age
    if res.fields.get("sex") is None:
        res.fields["sex"] = label.sex
    if res.fields.get("view") in (None, "UNKNOWN") and label.view:
        res.fields["view"] = label.view
    if res.fields.get("view") not in views:
        return f"view {coded(res.fields.get('view'))} (labels table) is not one of {'/'.join(views)}"
    return ""


def _remember_patient(pseudonym: str | None, original: str | None, new_patients: dict[str, str]) -> None:
    if pseudonym and original:
        new_patients[pseudonym] = original


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
            # Unlabeled images count as images without a finding: they still fill the splits.
            new[list(FINDINGS)].astype("Int64").fillna(0).to_numpy(dtype=np.int64),
            config.split_fractions,
            config.split_seed,
            existing,
        )
        new["split"] = new["patient_id"].map(splits)
    frames = [f for f in (kept, new) if len(f)]
    return typed_manifest(pd.concat(frames, ignore_index=True) if frames else new)


def typed_manifest(manifest: pd.DataFrame) -> pd.DataFrame:
    """The manifest's columns, in order, with their stored dtypes."""
    manifest = manifest[list(MANIFEST_COLUMNS)]
    for column in ("shard", "offset", "run"):
        manifest[column] = manifest[column].astype("int64")
    for column in ("age", *FINDINGS):  # findings are missing (NA) on unlabeled rows
        manifest[column] = manifest[column].astype("Int64")
    manifest["labeled"] = manifest["labeled"].astype("bool")
    for column in ("pixel_mean", "pixel_std"):
        manifest[column] = manifest[column].astype("float64")
    for column in ("image_id", "patient_id", "split", "view", "sex", "study_date", "modality", "photometric"):
        manifest[column] = manifest[column].astype("string")
    manifest["source_format"] = manifest["source_format"].astype("string")
    manifest["source_checksum"] = manifest["source_checksum"].astype("string")
    return manifest


def remove_shards(out_dir: Path, names: list[str]) -> None:
    for name in names:
        for path in (out_dir / IMAGES_DIR / f"{name}.npy", out_dir / "headers" / f"{name}.jsonl"):
            path.unlink(missing_ok=True)


def _append_map(path: Path, key_column: str, values: dict[str, dict[str, str]]) -> None:
    """Add ``key -> value`` rows (``values``: value column -> {key: value}) to an identifying map kept
    apart from the dataset (the pseudonym map, the path map); a key already there keeps its first row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ((value_column, mapping),) = values.items()
    frame = pd.DataFrame({key_column: list(mapping), value_column: list(mapping.values())})
    if path.is_file():
        earlier = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame = pd.concat([earlier, frame]).drop_duplicates(key_column, keep="first")
    tmp = path.with_suffix(path.suffix + ".tmp")
    frame.sort_values(key_column).to_csv(tmp, index=False)
    os.replace(tmp, path)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")


def stage_metrics(
    manifest: pd.DataFrame,
    files: pd.DataFrame,
    *,
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
        "n_images_unlabeled": int((~manifest["labeled"]).sum()),
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
        labeled = part[part["labeled"]]
        metrics["splits"][split] = {
            "images": len(part),
            "unlabeled": int(len(part) - len(labeled)),
            "patients": int(part["patient_id"].nunique()),
            "any_finding": (
                round(float(labeled[list(FINDINGS)].max(axis=1).mean()), 4) if len(labeled) else None
            ),
        }
    return metrics
