"""``cxrpriv evaluate``: the CLI spec of the evaluate stage (its inputs and outputs; the run is :mod:`.run`).

The attacker families are train_reid profiles of the same params file (``attacker_profiles``), resolved
here into train_reid configs; the classifier's evaluation settings and retraining recipe are the
train_classifier section under the run's profile.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import Any

from cxrpriv.config import ConfigError
from cxrpriv.evaluate import EvaluateInputError
from cxrpriv.evaluate.config import EvaluateConfig
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


def _add_io(parser: argparse.ArgumentParser) -> None:
    paths = (
        ("--ingest", "data/ingest", "The original dataset, the ingest output the variants were made from."),
        ("--verifier", "data/reid", "The trained verifier (train_reid output): the frozen attacker."),
        ("--classifier", "data/classifier", "The trained classifier (train_classifier output)."),
        (
            "--priors",
            "data/priors",
            "The priors stage's output folder, or its priors.json, for the retrained classifier's "
            "label-noise correction; when that stage was skipped it trains without priors",
        ),
    )
    for option, default, text in paths:
        parser.add_argument(option, type=Path, default=Path(default), help=f"{text} (default: %(default)s).")
    parser.add_argument(
        "--anonymized",
        type=Path,
        nargs="+",
        default=[Path("data/anonymized")],
        help="Anonymized datasets (cxrpriv anonymize outputs of --ingest); the first is the one the release "
        "decision is about (default: %(default)s).",
    )
    parser.add_argument(
        "--answer-key",
        type=optional_input_path,
        default=None,
        help='The synthetic cohort\'s answer key: clean test labels for the utility (default, or "": the '
        "text-mined labels).",
    )
    add_output_options(parser, "evaluate", Path("data/evaluate"), "Output directory (decision, report)")
    add_training_options(parser)
    add_progress_option(parser)


def resolve_inputs(config: EvaluateConfig, args: argparse.Namespace, profile: str) -> Any:
    """The stage inputs from the parsed paths and the params file's train_reid (each attacker profile's,
    and the run profile's test settings) and train_classifier sections."""
    from cxrpriv.config import default_params_file, read_params, stage_values
    from cxrpriv.evaluate.stage import build_inputs
    from cxrpriv.priors.output import priors_file, skipped_reason, without_priors

    params = read_params(getattr(args, "params", None) or default_params_file())
    priors = priors_file(args.priors)
    classifier_values = stage_values(params, "train_classifier", profile)
    skipped = skipped_reason(args.priors)
    if skipped is not None:  # the retrained classifier's recipe
        classifier_values = without_priors(classifier_values, "evaluate", skipped)
    paths = {
        "original": args.ingest,
        "anonymized": args.anonymized,
        "verifier": args.verifier,
        "classifier": args.classifier,
        "priors": priors if priors is not None and priors.is_file() else None,
        "answer_key": args.answer_key,
    }
    return build_inputs(
        config,
        paths,
        {name: stage_values(params, "train_reid", name) for name in config.attacker_profiles},
        stage_values(params, "train_reid", profile),
        classifier_values,
    )


def _run(config: EvaluateConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.dataset import DatasetError
    from cxrpriv.evaluate.run import run_evaluate
    from cxrpriv.priors import PriorsInputError
    from cxrpriv.priors.output import SKIPPED_TAGS, skipped_reason

    def run() -> object:
        inputs = resolve_inputs(config, args, context.profile)
        run_context = context
        if skipped_reason(args.priors) is not None:
            run_context = dataclasses.replace(context, tags={**context.tags, **SKIPPED_TAGS})
        return run_evaluate(config, inputs, run_context)

    return exit_code(run, log, (EvaluateInputError, DatasetError, ConfigError, PriorsInputError))


EVALUATE = StageCommand(
    name="evaluate",
    help="Privacy-utility evaluation of anonymized datasets under retrained attackers, and the release "
    "decision.",
    config_cls=EvaluateConfig,
    add_io=_add_io,
    run=_run,
)
