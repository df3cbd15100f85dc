"""The ingest stage's run function: the de-identified dataset, its metrics and plots, one MLflow run."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from cxrpriv.config import config_to_dict
from cxrpriv.dataset import VALIDATION_REPORT_FILE
from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.stages.contract import StageContext

log = logging.getLogger(__name__)


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def run_preprocess(
    config: PreprocessConfig,
    source_uri: str,
    labels_uri: str | None,
    key: DeidKey,
    context: StageContext,
    *,
    endpoint_url: str | None = None,
    pseudonym_map: Path | None = None,
    path_map: Path | None = None,
) -> dict[str, Any]:
    """Ingest the source (a folder or ``s3://`` prefix) with its labels table (None: none, every image
    unlabeled) into ``context.out``, write metrics and plots, and record it all in one MLflow run; returns
    the metrics. ``pseudonym_map``, if given, receives original patient ID -> pseudonym, and ``path_map``
    (``log_paths: keyed`` only) keyed tag -> source path; both are identifying, refused inside the output
    or source."""
    from cxrpriv.dataset import dataset_digest
    from cxrpriv.ingest.labels import LabelsTable
    from cxrpriv.ingest.report import write_plots
    from cxrpriv.ingest.sources import open_source, read_uri
    from cxrpriv.ingest.stage import preprocess
    from cxrpriv.tracking import stage_run

    out = context.out
    local_source = None if str(source_uri).startswith("s3://") else Path(source_uri)
    for name, mapping in (("pseudonym map", pseudonym_map), ("path map", path_map)):
        if mapping is not None and (
            _inside(mapping, out) or (local_source is not None and _inside(mapping, local_source))
        ):
            raise ValueError(f"the {name} must be written outside the output and source folders")
    if path_map is not None and config.log_paths != "keyed":
        raise ValueError("--path-map needs log_paths: keyed (otherwise the files report holds the paths)")
    if key.is_demo:
        log.warning("using the public demo key: pseudonyms are not secret; never use it on real patients")
    elif key.source == "throwaway":
        log.warning("using a throwaway key: these pseudonyms cannot be reproduced or extended by a later run")
    labels_bytes, labels = b"", None
    if labels_uri is not None:
        labels_bytes = read_uri(labels_uri, endpoint_url)
        labels = LabelsTable.from_csv(labels_bytes, Path(str(labels_uri)).name)
    else:
        log.warning("no labels table: every image is ingested unlabeled (not for classifier training)")
    source = open_source(source_uri, endpoint_url)
    params = {"preprocess": config_to_dict(config)}
    with stage_run("preprocess", params, context.profile, input_hash="pending", tags=context.tags) as run:
        run.set_tags({"cxrpriv.deid_key_source": key.source})
        result = preprocess(
            config,
            source,
            labels,
            out,
            key,
            pseudonym_map=pseudonym_map,
            path_map=path_map,
            progress=context.progress,
            on_validation_report=lambda report: run.log_dict(report, VALIDATION_REPORT_FILE),
        )
        # The input is what was listed: relative paths and sizes of every file, and the labels table.
        digest = hashlib.sha256(labels_bytes)
        for path, size in sorted(zip(result.files["path"], result.files["size"], strict=True)):
            digest.update(f"{path}\0{size}\n".encode())
        run.set_tags({"cxrpriv.input_hash": digest.hexdigest()[:16]})
        run.set_output_digest(dataset_digest(out))
        context.metrics.parent.mkdir(parents=True, exist_ok=True)
        context.metrics.write_text(json.dumps(result.metrics, indent=1, sort_keys=True) + "\n")
        run.log_metrics(result.metrics)
        run.log_artifact(context.metrics)
        for plot in write_plots(out, result.files, context.plots):
            run.log_artifact(plot, "plots")
    counts = result.metrics["outcomes"]
    log.info(
        "preprocess: %d ingested (%d unlabeled), %d quarantined, %d rejected (%d files this run) into %s",
        counts["ingested"],
        result.metrics["n_images_unlabeled"],
        counts["quarantined"],
        counts["rejected"],
        result.metrics["files_processed"],
        out,
    )
    return result.metrics


def run_preprocess_partition(
    config: PreprocessConfig,
    source_uri: str,
    labels_uri: str | None,
    key: DeidKey,
    context: StageContext,
    partition: str,
    *,
    endpoint_url: str | None = None,
    path_map: Path | None = None,
) -> dict[str, Any]:
    """One partition (``I/N``) of a partitioned ingest into a partial at ``context.out``; writes its metrics
    and returns them (no MLflow run: the merge records the stage). See :mod:`cxrpriv.ingest.partition`."""
    from cxrpriv.ingest.labels import LabelsTable
    from cxrpriv.ingest.partition import Partition, preprocess_partition
    from cxrpriv.ingest.sources import open_source, read_uri

    if path_map is not None and (config.log_paths != "keyed" or _inside(path_map, context.out)):
        raise ValueError("--path-map needs log_paths: keyed and must be written outside the output folder")
    labels = None
    if labels_uri is not None:
        labels = LabelsTable.from_csv(read_uri(labels_uri, endpoint_url), Path(str(labels_uri)).name)
    metrics = preprocess_partition(
        config,
        open_source(source_uri, endpoint_url),
        labels,
        context.out,
        key,
        partition=Partition.parse(partition),
        progress=context.progress,
        path_map=path_map,
    )
    context.metrics.parent.mkdir(parents=True, exist_ok=True)
    context.metrics.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    return metrics


def run_preprocess_merge(
    config: PreprocessConfig, partials: list[Path], key: DeidKey, context: StageContext
) -> dict[str, Any]:
    """Merge the partials of every partition into the dataset at ``context.out``, as a single run writes
    it; metrics, plots and one MLflow run as :func:`run_preprocess`."""
    from cxrpriv.dataset import files_report_path
    from cxrpriv.ingest.partition import merge_partitions
    from cxrpriv.ingest.report import write_plots
    from cxrpriv.tracking import stage_run

    params = {"preprocess": config_to_dict(config)}
    with stage_run("preprocess", params, context.profile, input_hash="pending", tags=context.tags) as run:
        run.set_tags({"cxrpriv.deid_key_source": key.source, "cxrpriv.partitions": str(len(partials))})
        result = merge_partitions(
            config,
            partials,
            context.out,
            key,
            on_validation_report=lambda report: run.log_dict(report, VALIDATION_REPORT_FILE),
        )
        digest = hashlib.sha256()
        for path in sorted(partials):
            digest.update(files_report_path(path).read_bytes())
        run.set_tags({"cxrpriv.input_hash": digest.hexdigest()[:16]})
        context.metrics.parent.mkdir(parents=True, exist_ok=True)
        context.metrics.write_text(json.dumps(result.metrics, indent=1, sort_keys=True) + "\n")
        run.log_metrics(result.metrics)
        run.log_artifact(context.metrics)
        for plot in write_plots(context.out, result.files, context.plots):
            run.log_artifact(plot, "plots")
    return result.metrics
