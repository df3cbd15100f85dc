"""``cxrpriv train_reid``: the CLI spec of the verifier stage (its paths and device; the run, with its
outputs, is :mod:`.run`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cxrpriv.reid import REGISTERED_NAME, ReidInputError
from cxrpriv.reid.config import TrainReidConfig
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
        "--ingest",
        type=Path,
        default=Path("data/ingest"),
        help="Ingest output (manifest.parquet and image shards) (default: %(default)s).",
    )
    add_output_options(parser, "train_reid", Path("data/reid"), "Output directory for the trained verifier")
    add_training_options(parser)
    add_model_name_option(parser, REGISTERED_NAME)
    add_progress_option(parser)


def _run(config: TrainReidConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.reid.run import run_train_reid
    from cxrpriv.training.checkpoint import CheckpointMismatch

    return exit_code(
        lambda: run_train_reid(config, args.ingest, context),
        log,
        (ReidInputError, CheckpointMismatch, FileNotFoundError),
    )


TRAIN_REID = StageCommand(
    name="train_reid",
    help="Train the re-identification attacker (metric-learning embedder or siamese verifier) and measure "
    "verification and retrieval.",
    config_cls=TrainReidConfig,
    add_io=_add_io,
    run=_run,
)
