"""``cxrpriv synthesize``: the CLI spec of the synthesize stage (its paths; the run is :mod:`.run`)."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from cxrpriv.stages.contract import StageCommand, StageContext, add_output_options, add_progress_option
from cxrpriv.synth.config import SynthesizeConfig

log = logging.getLogger(__name__)


def _add_io(parser: argparse.ArgumentParser) -> None:
    add_output_options(
        parser, "synthesize", Path("data/synthetic"), "Output directory for dataset/ and answer_key/"
    )
    parser.add_argument("--force", action="store_true", help="Replace an existing output directory.")
    add_progress_option(parser)


def _run(config: SynthesizeConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.synth.run import run_synthesize

    if context.out.exists() and any(context.out.iterdir()):
        if not args.force:
            log.error("%s is not empty: pass --force to replace it", context.out)
            return 2
        shutil.rmtree(context.out)
    run_synthesize(config, context)
    return 0


SYNTHESIZE = StageCommand(
    name="synthesize",
    help="Generate the synthetic benchmark cohort (DICOM, noisy labels, re-reads, answer key).",
    config_cls=SynthesizeConfig,
    add_io=_add_io,
    run=_run,
)
