"""``cxrpriv priors``: the CLI edge of the priors stage (input paths, priors.json, metrics, plots, MLflow).

By default it reads the synthetic cohort under ``data/synthetic``. On the real tables, from the repository
root with the shared data next to it::

    cxrpriv priors --labels ../shared/data/real/Data_Entry_2017_v2020.csv.gz \\
        --reread ../shared/data/real/google2019_nih-chest-xray-labels.csv.gz \\
        --reread ../shared/data/real/vinbigdata-train.csv.gz --out /tmp/real_priors ...
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrpriv.cli import StageCommand, add_output_options
from cxrpriv.config import config_to_dict
from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.config import PriorsConfig
from cxrpriv.priors.tables import LAYOUTS

log = logging.getLogger(__name__)

DEFAULT_LABELS = Path("data/synthetic/dataset/Data_Entry_2017.csv")
DEFAULT_REREAD = Path("data/synthetic/dataset/reread.csv")
PRIORS_FILE = "priors.json"


def _add_io(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--labels",
        type=Path,
        default=DEFAULT_LABELS,
        help="Text-mined labels: a ChestX-ray14-format CSV (.csv/.csv.gz) or a Parquet "
        "manifest with image_index and 14 finding columns (default: %(default)s).",
    )
    parser.add_argument(
        "--no-labels",
        action="store_true",
        help="No text-mined labels: reader models, kappa and comorbidity only (unless a "
        "re-read table carries its own 'Finding Labels').",
    )
    parser.add_argument(
        "--reread",
        type=Path,
        action="append",
        default=None,
        metavar="PATH",
        help=f"A re-read table; repeat for several (default: {DEFAULT_REREAD}).",
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
    """Pair each --reread path with its layout (one layout for all, one per table, or auto)."""
    paths = list(paths or [DEFAULT_REREAD])
    layouts = list(layouts or ["auto"])
    if len(layouts) == 1:
        layouts = layouts * len(paths)
    if len(layouts) != len(paths):
        raise PriorsInputError(
            f"{len(paths)} --reread table(s) but {len(layouts)} --reread-layout value(s): give one for all "
            "or one per table"
        )
    return list(zip(paths, layouts, strict=True))


def run_priors(
    config: PriorsConfig,
    labels: Path | None,
    rereads: Sequence[tuple[Path, str]],
    vocabulary_file: Path | None,
    out_dir: Path,
    metrics_path: Path,
    plots_dir: Path,
    profile: str,
) -> dict[str, Any]:
    """Read the inputs, compute the priors, write priors.json, metrics and plots, and log one MLflow run."""
    from cxrpriv.priors.report import write_plots
    from cxrpriv.priors.stage import compute_priors
    from cxrpriv.priors.tables import read_mined_labels, read_reread_table
    from cxrpriv.priors.vocabulary import load_vocabulary
    from cxrpriv.tracking import hash_inputs, stage_run

    started = time.perf_counter()
    # Inputs are parsed and the priors computed before the MLflow run opens: a table that cannot give a
    # correct number stops the stage with its message instead of leaving a failed, half-logged run behind.
    vocabulary = load_vocabulary(vocabulary_file)
    mined = None if labels is None else read_mined_labels(labels)
    tables = [
        read_reread_table(path, vocabulary, f"reread_{i}", layout)
        for i, (path, layout) in enumerate(rereads, start=1)
    ]
    inputs = [p for p in (labels, vocabulary_file, *(path for path, _ in rereads)) if p is not None]
    parsed = time.perf_counter()
    result = compute_priors(config, mined, tables, vocabulary)
    computed = time.perf_counter()
    params = {"priors": config_to_dict(config)}
    with stage_run("priors", params, profile, input_hash=hash_inputs(inputs)) as run:
        out_dir.mkdir(parents=True, exist_ok=True)
        priors_path = out_dir / PRIORS_FILE
        priors_path.write_text(json.dumps(result.document, indent=1, sort_keys=False) + "\n")
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(result.metrics, indent=1, sort_keys=True) + "\n")
        plots = write_plots(result.document, plots_dir)
        timings = {"seconds_read_inputs": parsed - started, "seconds_compute": computed - parsed}
        run.set_tags(
            {
                "cxrpriv.priors.layouts": ",".join(t.layout for t in tables),
                "cxrpriv.priors.labels": "none" if mined is None else "given",
            }
        )
        run.log_metrics({**result.metrics, **timings})
        run.log_artifact(priors_path)
        run.log_artifact(metrics_path)
        for plot in plots:
            run.log_artifact(plot, "plots")
        with tempfile.TemporaryDirectory() as tmp:
            for name, frame in result.frames().items():
                csv = Path(tmp) / f"{name}.csv"
                frame.to_csv(csv, index=name == "comorbidity")
                run.log_artifact(csv, "tables")
    counts = {
        status: sum(e["status"] == status for e in result.document["findings"].values())
        for status in ("measured", "measured_as_group", "partial_fallback", "fallback", "unavailable")
    }
    log.info(
        "priors from %d re-read table(s): inputs read in %.2f s, computed in %.2f s (%.1f s with MLflow "
        "and plots); findings: %s; written to %s",
        len(tables),
        timings["seconds_read_inputs"],
        timings["seconds_compute"],
        time.perf_counter() - started,
        ", ".join(f"{n} {s}" for s, n in counts.items() if n),
        priors_path,
    )
    for table in result.document["tables"]:
        if table["flags"]:
            log.warning(
                "re-read table %s (%s): %s", table["name"], table["layout"], ", ".join(table["flags"])
            )
    return result.metrics


def _run(config: PriorsConfig, args: argparse.Namespace, profile: str) -> int:
    try:
        rereads = reread_inputs(args.reread, args.reread_layout)
        run_priors(
            config,
            None if args.no_labels else args.labels,
            rereads,
            args.vocabulary,
            args.out,
            args.metrics,
            args.plots,
            profile,
        )
    except PriorsInputError as exc:
        log.error("%s", exc)
        return 2
    return 0


PRIORS = StageCommand(
    name="priors",
    help="Label priors from radiologist re-reads: text-mining noise, reader models, kappa, comorbidity.",
    config_cls=PriorsConfig,
    add_io=_add_io,
    run=_run,
)
