"""``cxrpriv preprocess``: the CLI edge of the ingest stage (paths, key, metrics, plots, MLflow)."""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from cxrpriv.cli import StageCommand, add_output_options
from cxrpriv.config import config_to_dict
from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.keys import KEY_ENV, DeidKey, KeyUnavailableError, load_key

log = logging.getLogger(__name__)


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default="data/synthetic/dataset/dicom",
        help="Folder or s3://bucket/prefix of DICOM (or ChestX-ray14 PNG) files (default: %(default)s).",
    )
    parser.add_argument(
        "--labels",
        default="data/synthetic/dataset/Data_Entry_2017.csv",
        help="Labels table in the ChestX-ray14 Data_Entry_2017 format, path or s3:// (default: %(default)s).",
    )
    add_output_options(parser, "preprocess", Path("data/ingest"), "Output directory")
    parser.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help=f"File holding the de-identification key (a mounted Kubernetes secret); default ${KEY_ENV}.",
    )
    parser.add_argument(
        "--throwaway-key",
        action="store_true",
        help="Without a key, use a random one: pseudonyms then cannot be reproduced or extended later.",
    )
    parser.add_argument(
        "--pseudonym-map",
        type=Path,
        default=None,
        help="Also write original patient ID -> pseudonym here (CSV). Identifying: keep it apart from the "
        "dataset; refused inside --out.",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="Endpoint of an S3-compatible store (default: AWS, or $AWS_ENDPOINT_URL).",
    )
    parser.add_argument(
        "--force", action="store_true", help="Replace an existing output instead of adding to it."
    )
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def run_preprocess(
    config: PreprocessConfig,
    source_uri: str,
    labels_uri: str,
    out: Path,
    metrics_path: Path,
    plots_dir: Path,
    profile: str,
    key: DeidKey,
    endpoint_url: str | None = None,
    pseudonym_map: Path | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Ingest the source into ``out``, write metrics and plots, and record it all in one MLflow run."""
    from cxrpriv.ingest.labels import LabelsTable
    from cxrpriv.ingest.report import write_plots
    from cxrpriv.ingest.sources import open_source, read_uri
    from cxrpriv.ingest.stage import preprocess
    from cxrpriv.tracking import stage_run

    if pseudonym_map is not None:
        local_source = None if str(source_uri).startswith("s3://") else Path(source_uri)
        if _inside(pseudonym_map, out) or (local_source is not None and _inside(pseudonym_map, local_source)):
            raise ValueError("the pseudonym map must be written outside the output and source folders")
    if key.is_demo:
        log.warning("using the public demo key: pseudonyms are not secret; never use it on real patients")
    elif key.source == "throwaway":
        log.warning("using a throwaway key: these pseudonyms cannot be reproduced or extended by a later run")
    labels_bytes = read_uri(labels_uri, endpoint_url)
    labels = LabelsTable.from_csv(labels_bytes, Path(str(labels_uri)).name)
    source = open_source(source_uri, endpoint_url)
    with stage_run(
        "preprocess", {"preprocess": config_to_dict(config)}, profile, input_hash="pending"
    ) as run:
        run.set_tags({"cxrpriv.deid_key_source": key.source})
        result = preprocess(
            config,
            source,
            labels,
            out,
            key,
            pseudonym_map=pseudonym_map,
            progress=progress,
            on_validation_report=lambda report: run.log_dict(report, "validation.json"),
        )
        # The input is what was listed: relative paths and sizes of every file, and the labels table.
        digest = hashlib.sha256(labels_bytes)
        for path, size in sorted(zip(result.files["path"], result.files["size"], strict=True)):
            digest.update(f"{path}\0{size}\n".encode())
        run.set_tags({"cxrpriv.input_hash": digest.hexdigest()[:16]})
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(result.metrics, indent=1, sort_keys=True) + "\n")
        run.log_metrics(result.metrics)
        run.log_artifact(metrics_path)
        for plot in write_plots(out, result.files, plots_dir):
            run.log_artifact(plot, "plots")
    counts = result.metrics["outcomes"]
    log.info(
        "preprocess: %d ingested, %d quarantined, %d rejected (%d files this run) into %s",
        counts["ingested"],
        counts["quarantined"],
        counts["rejected"],
        result.metrics["files_processed"],
        out,
    )
    return result.metrics


def _run(config: PreprocessConfig, args: argparse.Namespace, profile: str) -> int:
    from cxrpriv.ingest.labels import LabelsError
    from cxrpriv.ingest.sources import SourceError
    from cxrpriv.ingest.stage import StageError
    from cxrpriv.ingest.validation import ValidationFailed

    try:
        key = load_key(args.key_file, args.throwaway_key)
    except KeyUnavailableError as exc:
        log.error("%s", exc)
        return 2
    if args.force and args.out.exists():
        shutil.rmtree(args.out)
    try:
        run_preprocess(
            config,
            args.source,
            args.labels,
            args.out,
            args.metrics,
            args.plots,
            profile,
            key,
            endpoint_url=args.s3_endpoint_url,
            pseudonym_map=args.pseudonym_map,
            progress=not args.no_progress,
        )
    except ValidationFailed as exc:
        log.error("%s (report: %s)", exc, args.out / "report" / "validation.json")
        return 1
    except (StageError, SourceError, LabelsError, ValueError, FileNotFoundError) as exc:
        log.error("%s", exc)
        return 2
    return 0


PREPROCESS = StageCommand(
    name="preprocess",
    help="Ingest DICOM (folder or S3): de-identify headers, normalize pixels, split patient-wise, validate.",
    config_cls=PreprocessConfig,
    add_io=_add_io,
    run=_run,
)
