"""The synthesize stage's run function: the cohort, its metrics and plots, one MLflow run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cxrpriv.config import config_to_dict
from cxrpriv.stages.contract import StageContext
from cxrpriv.synth.config import SynthesizeConfig

log = logging.getLogger(__name__)


def run_synthesize(config: SynthesizeConfig, context: StageContext) -> dict[str, Any]:
    """Generate the cohort into ``context.out``, write metrics and plots, and record it all in one MLflow
    run; returns the metrics."""
    from cxrpriv.synth.cohort import synthesize
    from cxrpriv.synth.report import write_plots
    from cxrpriv.synth.stats import load_cohort_stats
    from cxrpriv.tracking import hash_inputs, stage_run

    stats_dir = Path(__file__).parent / "data"
    params = {"synthesize": config_to_dict(config)}
    with stage_run(
        "synthesize", params, context.profile, input_hash=hash_inputs([stats_dir]), tags=context.tags
    ) as run:
        summary = synthesize(config, context.out, progress=context.progress)
        context.metrics.parent.mkdir(parents=True, exist_ok=True)
        context.metrics.write_text(json.dumps(summary.metrics, indent=1, sort_keys=True) + "\n")
        plots = write_plots(summary, load_cohort_stats(), context.plots)
        run.log_metrics(summary.metrics)
        run.log_artifact(context.metrics)
        for plot in plots:
            run.log_artifact(plot, "plots")
    log.info(
        "synthesized %d images (%d files) into %s; naive attacker AUC %s",
        summary.n_images,
        summary.n_files,
        context.out,
        summary.metrics["naive_attacker_auc"],
    )
    return summary.metrics
