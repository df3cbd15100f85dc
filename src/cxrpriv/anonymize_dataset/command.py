"""``cxrpriv anonymize``: the CLI spec of the anonymize stage (its inputs, outputs and device; the run is
:mod:`.run`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cxrpriv.anonymize_dataset import AnonymizeInputError
from cxrpriv.anonymize_dataset.config import AnonymizeConfig
from cxrpriv.stages.contract import (
    StageCommand,
    StageContext,
    add_device_option,
    add_output_options,
    add_progress_option,
    exit_code,
)

log = logging.getLogger(__name__)


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ingest",
        type=Path,
        default=Path("data/ingest"),
        help="The dataset to anonymize, an ingest output (default: %(default)s).",
    )
    parser.add_argument(
        "--anonymizer",
        type=Path,
        default=Path("data/anonymizer"),
        help="The trained generator, a train_anonymizer output; read only for --method learned "
        "(default: %(default)s).",
    )
    add_output_options(parser, "anonymize", Path("data/anonymized"), "Anonymized dataset (ingest format)")
    add_device_option(parser)
    add_progress_option(parser)


def _run(config: AnonymizeConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.anonymize_dataset.run import run_anonymize

    return exit_code(
        lambda: run_anonymize(config, args.ingest, args.anonymizer, context), log, (AnonymizeInputError,)
    )


ANONYMIZE = StageCommand(
    name="anonymize",
    help="Apply an anonymizer (the trained generator, DP-Pix, a random warp or none) to an ingested dataset; "
    "writes a dataset in the ingest format.",
    config_cls=AnonymizeConfig,
    add_io=_add_io,
    run=_run,
)
