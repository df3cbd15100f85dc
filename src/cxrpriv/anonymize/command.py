"""``cxrpriv train_anonymizer``: the CLI spec of the anonymizer stage (its inputs, outputs and device; the
run, with its outputs, is :mod:`.run`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from cxrpriv.anonymize import REGISTERED_NAME, AnonymizerInputError
from cxrpriv.anonymize.config import TrainAnonymizerConfig
from cxrpriv.stages.contract import (
    StageCommand,
    StageContext,
    add_model_name_option,
    add_output_options,
    add_progress_option,
    add_training_options,
    exit_code,
)

log = logging.getLogger(__name__)


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ingest", type=Path, default=Path("data/ingest"), help="Ingest output (default: %(default)s)."
    )
    parser.add_argument(
        "--verifier",
        type=Path,
        default=Path("data/reid"),
        help="The trained verifier, a train_reid output (default: %(default)s).",
    )
    parser.add_argument(
        "--classifier",
        type=Path,
        default=Path("data/classifier"),
        help="The trained classifier, a train_classifier output (default: %(default)s).",
    )
    parser.add_argument(
        "--priors",
        type=Path,
        default=Path("data/priors"),
        help="The priors stage's output folder, or its priors.json, for the classifier loss's label-noise "
        "(forward) correction; none when that stage was skipped (no re-read table) (default: %(default)s).",
    )
    parser.add_argument(
        "--no-priors",
        action="store_true",
        help="No label-noise correction: the utility term is plain BCE on the text-mined labels.",
    )
    add_output_options(parser, "train_anonymizer", Path("data/anonymizer"), "Output directory")
    add_training_options(parser)
    add_model_name_option(parser, REGISTERED_NAME)
    add_progress_option(parser)


def _run(config: TrainAnonymizerConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.anonymize.run import run_train_anonymizer
    from cxrpriv.priors import PriorsInputError
    from cxrpriv.priors.output import SKIPPED_TAGS, priors_file, skipped_reason
    from cxrpriv.training.checkpoint import CheckpointMismatch

    def run() -> object:
        skipped = None if args.no_priors else skipped_reason(args.priors)
        priors = None if args.no_priors else priors_file(args.priors)
        run_context = context
        if skipped is not None:
            log.warning("train_anonymizer: no label priors (%s): no noise correction", skipped)
            run_context = dataclasses.replace(context, tags={**context.tags, **SKIPPED_TAGS})
        return run_train_anonymizer(config, args.ingest, args.verifier, args.classifier, priors, run_context)

    return exit_code(run, log, (AnonymizerInputError, CheckpointMismatch, PriorsInputError))


TRAIN_ANONYMIZER = StageCommand(
    name="train_anonymizer",
    help="Train the learned anonymizer (a bounded smooth warp, PriCheXy-Net style) against the trained "
    "verifier and classifier.",
    config_cls=TrainAnonymizerConfig,
    add_io=_add_io,
    run=_run,
)
