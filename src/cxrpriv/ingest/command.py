"""``cxrpriv preprocess``: the CLI spec of the ingest stage (its paths and key; the run is :mod:`.run`)."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from cxrpriv.ingest.config import PreprocessConfig
from cxrpriv.ingest.keys import KEY_ENV, DeidKey, KeyUnavailableError, load_key
from cxrpriv.stages.contract import (
    StageCommand,
    StageContext,
    add_output_options,
    add_progress_option,
    exit_code,
    optional_input,
)

log = logging.getLogger(__name__)


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        default="data/synthetic/dataset/dicom",
        help="Folder or s3://bucket/prefix of DICOM (or ChestX-ray14 PNG) files (default: %(default)s).",
    )
    parser.add_argument(
        "--labels",
        type=optional_input,
        default=None,
        help="Labels table in the ChestX-ray14 Data_Entry_2017 format, path or s3:// (the synthetic "
        'cohort\'s: data/synthetic/dataset/Data_Entry_2017.csv). Without it (or with ""), or for images '
        "it has no row for, images are ingested unlabeled (labeled False, findings missing): fine for the "
        "verifier, the anonymizer and the release, left out of classifier training and utility metrics.",
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
        "--path-map",
        type=Path,
        default=None,
        help="With log_paths: keyed, also write keyed tag -> source path here (CSV; the files report then "
        "holds only the tags). Identifying like the pseudonym map: keep it apart; refused inside --out.",
    )
    parser.add_argument(
        "--s3-endpoint-url",
        default=None,
        help="Endpoint of an S3-compatible store (default: AWS, or $AWS_ENDPOINT_URL).",
    )
    parser.add_argument(
        "--force", action="store_true", help="Replace an existing output instead of adding to it."
    )
    scale_out = parser.add_mutually_exclusive_group()
    scale_out.add_argument(
        "--partition",
        metavar="I/N",
        default=None,
        help="Ingest only partition I (from 0) of N of the source listing into a partial at --out; "
        "then --merge the N partials (docs/ingest.md, 'Partitioned ingest').",
    )
    scale_out.add_argument(
        "--merge",
        metavar="PARTIAL",
        nargs="+",
        type=Path,
        default=None,
        help="Merge the partials of every partition into the dataset at --out (--source and --labels are "
        "not read: the partitions did).",
    )
    add_progress_option(parser)


def _run(config: PreprocessConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.dataset import validation_report_path
    from cxrpriv.ingest.labels import LabelsError
    from cxrpriv.ingest.sources import SourceError
    from cxrpriv.ingest.stage import StageError
    from cxrpriv.ingest.validation import ValidationFailed

    try:
        key = load_key(args.key_file, args.throwaway_key)
    except KeyUnavailableError as exc:
        log.error("%s", exc)
        return 2
    if args.force and context.out.exists():
        shutil.rmtree(context.out)

    def with_report(exc: Exception) -> str:
        if isinstance(exc, ValidationFailed):
            return f"{exc} (report: {validation_report_path(context.out)})"
        return str(exc)

    return exit_code(
        lambda: _dispatch(config, args, key, context),
        log,
        (StageError, SourceError, LabelsError, ValueError, FileNotFoundError),
        refusals=(ValidationFailed,),
        describe=with_report,
    )


def _dispatch(
    config: PreprocessConfig, args: argparse.Namespace, key: DeidKey, context: StageContext
) -> None:
    """A single run, one partition, or the merge of the partitions."""
    from cxrpriv.ingest import run

    if args.merge is not None:
        run.run_preprocess_merge(config, args.merge, key, context)
    elif args.partition is not None:
        if args.pseudonym_map is not None:
            raise ValueError("--pseudonym-map needs a single run (the partitions keep no original IDs)")
        run.run_preprocess_partition(
            config,
            args.source,
            args.labels,
            key,
            context,
            args.partition,
            endpoint_url=args.s3_endpoint_url,
            path_map=args.path_map,
        )
    else:
        run.run_preprocess(
            config,
            args.source,
            args.labels,
            key,
            context,
            endpoint_url=args.s3_endpoint_url,
            pseudonym_map=args.pseudonym_map,
            path_map=args.path_map,
        )


PREPROCESS = StageCommand(
    name="preprocess",
    help="Ingest DICOM (folder or S3): de-identify headers, normalize pixels, split patient-wise, validate.",
    config_cls=PreprocessConfig,
    add_io=_add_io,
    run=_run,
)
