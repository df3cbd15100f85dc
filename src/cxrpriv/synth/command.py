"""``cxrpriv synthesize``: the CLI edge of the synthesize stage (paths, metrics file, plots, MLflow)."""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from cxrpriv.cli import StageCommand, add_output_options
from cxrpriv.config import config_to_dict
from cxrpriv.synth.config import SynthesizeConfig

log = logging.getLogger(__name__)


def _add_io(parser: argparse.ArgumentParser) -> None:
    add_output_options(
        parser, "synthesize", Path("data/synthetic"), "Output directory for dataset/ and answer_key/"
    )
    parser.add_argument("--force", action="store_true", help="Replace an existing output directory.")
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")


def run_synthesize(
    config: SynthesizeConfig,
    out: Path,
    metrics_path: Path,
    plots_dir: Path,
    profile: str,
    progress: bool = True,
) -> dict[str, Any]:
    """Generate the cohort, write metrics and plots, and record it all in one MLflow run."""
    from cxrpriv.synth.cohort import synthesize
    from cxrpriv.synth.report import write_plots
    from cxrpriv.synth.stats import load_cohort_stats
    from cxrpriv.tracking import hash_inputs, stage_run

    stats_dir = Path(__file__).parent / "data"
    with stage_run(
        "synthesize", {"synthesize": config_to_dict(config)}, profile, input_hash=hash_inputs([stats_dir])
    ) as run:
        summary = synthesize(config, out, progress=progress)
        metrics_path.parent.mkdir(parents=True, exist_ok=True)
        metrics_path.write_text(json.dumps(summary.metrics, indent=1, sort_keys=True) + "\n")
        plots = write_plots(summary, load_cohort_stats(), plots_dir)
        run.log_metrics(summary.metrics)
        run.log_artifact(metrics_path)
        for plot in plots:
            run.log_artifact(plot, "plots")
    log.info(
        "synthesized %d images (%d files) into %s; naive attacker AUC %s",
        summary.n_images,
        summary.n_files,
        out,
        summary.metrics["naive_attacker_auc"],
    )
    return summary.metrics


def _run(config: SynthesizeConfig, args: argparse.Namespace, profile: str) -> int:
    if args.out.exists() and any(args.out.iterdir()):
        if not args.force:
            log.error("%s is not empty: pass --force to replace it", args.out)
            return 2
        shutil.rmtree(args.out)
    run_synthesize(config, args.out, args.metrics, args.plots, profile, progress=not args.no_progress)
    return 0


SYNTHESIZE = StageCommand(
    name="synthesize",
    help="Generate the synthetic benchmark cohort (DICOM, noisy labels, re-reads, answer key).",
    config_cls=SynthesizeConfig,
    add_io=_add_io,
    run=_run,
)
