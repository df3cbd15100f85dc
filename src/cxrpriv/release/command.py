"""``cxrpriv release``: the CLI spec of the release stage (its paths, key and force reason; the run is
:mod:`.run`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from cxrpriv.ingest.keys import KEY_ENV, KeyUnavailableError, load_key
from cxrpriv.release.config import ReleaseConfig
from cxrpriv.stages.contract import (
    StageCommand,
    StageContext,
    add_output_options,
    add_progress_option,
    exit_code,
)

log = logging.getLogger(__name__)


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        type=Path,
        default=Path("data/anonymized"),
        help="The anonymized dataset to release, in the ingest format (default: %(default)s).",
    )
    parser.add_argument(
        "--decision",
        type=Path,
        default=Path("data/evaluate"),
        help="release_decision.json, or the evaluate output holding it (default: %(default)s).",
    )
    parser.add_argument(
        "--report",
        type=Path,
        default=None,
        help="Directory of the evaluation report to copy into the release (audited like every file).",
    )
    parser.add_argument(
        "--key-file",
        type=Path,
        default=None,
        help=f"File holding the de-identification key the dataset was ingested with; default ${KEY_ENV}.",
    )
    parser.add_argument(
        "--force-release-reason",
        default=None,
        metavar="REASON",
        help="Release although the decision failed; the reason is recorded in the release manifest "
        "(and audited: it must not name a patient).",
    )
    add_output_options(parser, "release", Path("data/release"), "Release directory")
    add_progress_option(parser)


def _run(config: ReleaseConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.evaluate.decision import DecisionError
    from cxrpriv.release import ReleaseBlocked, ReleaseInputError, ReleaseRefused
    from cxrpriv.release.run import run_release

    def run() -> None:
        key = load_key(args.key_file)
        run_release(
            config,
            args.dataset,
            args.decision,
            args.report,
            key,
            context,
            force_reason=args.force_release_reason,
        )

    return exit_code(
        run,
        log,
        (KeyUnavailableError, DecisionError, ReleaseRefused, ReleaseInputError),
        refusals=(ReleaseBlocked,),
    )


RELEASE = StageCommand(
    name="release",
    help="Write the publishable DICOM release of an anonymized dataset, after the release gate and a "
    "leftover-PHI audit of every file.",
    config_cls=ReleaseConfig,
    add_io=_add_io,
    run=_run,
)
