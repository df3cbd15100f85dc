"""``cxrpriv train_classifier``: the CLI spec of the classifier stage (its inputs, outputs and device; the
run, with its outputs, is :mod:`.run`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from cxrpriv.classify import ClassifierInputError
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.stages.contract import (
    StageCommand,
    StageContext,
    add_output_options,
    add_progress_option,
    add_training_options,
    exit_code,
    optional_input_path,
)

log = logging.getLogger(__name__)

DEFAULT_INGEST = Path("data/ingest")
DEFAULT_PRIORS = Path("data/priors")
DEFAULT_ANSWER_KEY = Path("data/synthetic/answer_key")


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ingest", type=Path, default=DEFAULT_INGEST, help="Ingest output (default: %(default)s)."
    )
    parser.add_argument(
        "--priors",
        type=Path,
        default=DEFAULT_PRIORS,
        help="The priors stage's output folder, or its priors.json; when that stage was skipped (no re-read "
        "table) the classifier trains without priors: prior_correction none, comorbidity_weight 0 "
        "(default: %(default)s).",
    )
    parser.add_argument(
        "--answer-key",
        type=optional_input_path,
        default=DEFAULT_ANSWER_KEY,
        help='Synthetic answer key (true labels, masks); ignored if missing; "" is --no-answer-key '
        "(default: %(default)s).",
    )
    parser.add_argument("--no-answer-key", action="store_true", help="Do not use an answer key (real data).")
    parser.add_argument(
        "--clean-labels",
        type=Path,
        default=None,
        help="Real data: a re-read table in ChestX-ray14 format (Image Index, Finding Labels) used as clean "
        "labels for evaluation, matched to ingested files by name.",
    )
    add_training_options(parser)
    add_progress_option(parser)
    parser.add_argument("--no-register", action="store_true", help="Log the model but do not register it.")
    add_output_options(parser, "train_classifier", Path("data/classifier"), "Output directory")


def _run(config: ClassifierConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.classify.run import run_train_classifier
    from cxrpriv.priors import PriorsInputError
    from cxrpriv.training.checkpoint import CheckpointMismatch

    answer_key = args.answer_key
    if args.no_answer_key or answer_key is None or not answer_key.exists():
        answer_key = None
    context = dataclasses.replace(context, register_model=not args.no_register)

    def run() -> object:
        run_config, run_context, priors = _with_priors_output(config, context, args.priors)
        clean_labels = args.clean_labels
        return run_train_classifier(run_config, args.ingest, priors, answer_key, clean_labels, run_context)

    return exit_code(run, log, (ClassifierInputError, CheckpointMismatch, PriorsInputError))


def _with_priors_output(
    config: ClassifierConfig, context: StageContext, priors: Path
) -> tuple[ClassifierConfig, StageContext, Path | None]:
    """The config, context and priors.json to train with from the priors output ``priors``: when the priors
    stage was skipped, the config without what needs priors (logged) and the run tagged so; a missing
    priors.json the config does not need is no input."""
    from cxrpriv.priors import output

    skipped = output.skipped_reason(priors)
    if skipped is not None:
        settings = {k: getattr(config, k) for k in output.PRIOR_SETTINGS}
        config = dataclasses.replace(config, **output.without_priors(settings, "train_classifier", skipped))
        return config, dataclasses.replace(context, tags={**context.tags, **output.SKIPPED_TAGS}), None
    path = output.priors_file(priors)
    if path is not None and (path.exists() or config.prior_correction != "none"):
        return config, context, path
    return config, context, None


TRAIN_CLASSIFIER = StageCommand(
    name="train_classifier",
    help="Multi-label abnormality classifier on the ingested images, robust to text-mined label noise.",
    config_cls=ClassifierConfig,
    add_io=_add_io,
    run=_run,
)
