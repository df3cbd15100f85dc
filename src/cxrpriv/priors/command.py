"""``cxrpriv priors``: the CLI spec of the priors stage (its input and output paths; the run is :mod:`.run`).

By default it reads the synthetic cohort under ``data/synthetic``. On the real tables, from the repository
root with the shared data next to it::

    cxrpriv priors --labels ../shared/data/real/Data_Entry_2017_v2020.csv.gz \\
        --reread ../shared/data/real/google2019_nih-chest-xray-labels.csv.gz \\
        --reread ../shared/data/real/vinbigdata-train.csv.gz --out /tmp/real_priors ...
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.config import PriorsConfig
from cxrpriv.priors.output import PRIORS_FILE, PRIORS_SKIPPED_FILE
from cxrpriv.priors.tables import LAYOUTS
from cxrpriv.stages.contract import (
    StageCommand,
    StageContext,
    add_output_options,
    exit_code,
    optional_input_path,
)

log = logging.getLogger(__name__)

DEFAULT_LABELS = Path("data/synthetic/dataset/Data_Entry_2017.csv")
DEFAULT_REREAD = Path("data/synthetic/dataset/reread.csv")


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labels",
        type=optional_input_path,
        default=DEFAULT_LABELS,
        help="Text-mined labels: a ChestX-ray14-format CSV (.csv/.csv.gz) or a Parquet "
        "manifest with image_index and 14 finding columns; \"\" is --no-labels (default: %(default)s).",
    )
    parser.add_argument(
        "--no-labels",
        action="store_true",
        help="No text-mined labels: reader models, kappa and comorbidity only (unless a "
        "re-read table carries its own 'Finding Labels').",
    )
    parser.add_argument(
        "--reread",
        type=optional_input_path,
        action="append",
        default=None,
        metavar="PATH",
        help=f"A re-read table; repeat for several; \"\" names none: no priors are measured, the output "
        f"is {PRIORS_SKIPPED_FILE} and the model stages train without them (default: {DEFAULT_REREAD}).",
    )
    parser.add_argument(
        "--reread-layout",
        action="append",
        default=None,
        choices=("auto", *LAYOUTS),
        help="Layout of each --reread table, in order; one value applies to all "
        "(default: auto, detected from the columns).",
    )
    parser.add_argument(
        "--vocabulary",
        type=Path,
        default=None,
        help="YAML/JSON file mapping re-read finding names to ChestX-ray14 findings or "
        "groups, over the built-in mapping (see cxrpriv.priors.vocabulary).",
    )
    add_output_options(parser, "priors", Path("data/priors"), f"Output directory for {PRIORS_FILE}")


def reread_inputs(paths: Sequence[Path] | None, layouts: Sequence[str] | None) -> list[tuple[Path, str]]:
    """Pair each --reread path with its layout (one layout for all, one per table, or auto); an empty
    --reread (None here) names no table, and only empty ones give no pair."""
    paths = [p for p in paths or [DEFAULT_REREAD] if p is not None]
    layouts = list(layouts or ["auto"])
    if len(layouts) == 1:
        layouts = layouts * len(paths)
    if len(layouts) != len(paths):
        raise PriorsInputError(
            f"{len(paths)} --reread table(s) but {len(layouts)} --reread-layout value(s): give one for all "
            "or one per table"
        )
    return list(zip(paths, layouts, strict=True))


def _run(config: PriorsConfig, args: argparse.Namespace, context: StageContext) -> int:
    from cxrpriv.priors.run import run_priors, skip_priors

    def run() -> None:
        rereads = reread_inputs(args.reread, args.reread_layout)
        if not rereads:
            skip_priors('no re-read table (--reread "")', context)
            return
        run_priors(config, None if args.no_labels else args.labels, rereads, args.vocabulary, context)

    return exit_code(run, log, (PriorsInputError,))


PRIORS = StageCommand(
    name="priors",
    help="Label priors from radiologist re-reads: text-mining noise, reader models, kappa, comorbidity.",
    config_cls=PriorsConfig,
    add_io=_add_io,
    run=_run,
)
