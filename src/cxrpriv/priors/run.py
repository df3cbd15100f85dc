"""The priors stage's run function: read the tables, compute the priors, write priors.json, metrics and
plots, and log one MLflow run; or, with no re-read table, mark the output skipped (:mod:`.output`)."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cxrpriv.config import config_to_dict
from cxrpriv.priors.config import PriorsConfig
from cxrpriv.priors.output import PRIORS_FILE, clear_priors_skipped, write_priors_skipped
from cxrpriv.stages.contract import StageContext

log = logging.getLogger(__name__)


def run_priors(
    config: PriorsConfig,
    labels: Path | None,
    rereads: Sequence[tuple[Path, str]],
    vocabulary_file: Path | None,
    context: StageContext,
) -> dict[str, Any]:
    """Read the inputs (``labels``: text-mined labels or None; ``rereads``: (path, layout) per re-read
    table; ``vocabulary_file``: extra finding names or None), compute the priors, write
    ``context.out / priors.json``, metrics and plots, and log one MLflow run; returns the metrics."""
    from cxrpriv.priors.report import write_plots
    from cxrpriv.priors.stage import compute_priors
    from cxrpriv.priors.tables import read_mined_labels, read_reread_table
    from cxrpriv.priors.vocabulary import load_vocabulary
    from cxrpriv.tracking import file_digest, hash_inputs, stage_run

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
    with stage_run(
        "priors", params, context.profile, input_hash=hash_inputs(inputs), tags=context.tags
    ) as run:
        context.out.mkdir(parents=True, exist_ok=True)
        clear_priors_skipped(context.out)
        priors_path = context.out / PRIORS_FILE
        priors_path.write_text(json.dumps(result.document, indent=1, sort_keys=False) + "\n")
        context.metrics.parent.mkdir(parents=True, exist_ok=True)
        context.metrics.write_text(json.dumps(result.metrics, indent=1, sort_keys=True) + "\n")
        plots = write_plots(result.document, context.plots)
        timings = {"seconds_read_inputs": parsed - started, "seconds_compute": computed - parsed}
        run.set_tags(
            {
                "cxrpriv.priors.layouts": ",".join(t.layout for t in tables),
                "cxrpriv.priors.labels": "none" if mined is None else "given",
            }
        )
        run.log_metrics({**result.metrics, **timings})
        run.set_output_digest(file_digest(priors_path))
        run.log_artifact(priors_path)
        run.log_artifact(context.metrics)
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


def skip_priors(reason: str, context: StageContext) -> dict[str, Any]:
    """The priors stage without a re-read table (``reason`` says so): write the skipped marker in
    ``context.out``, the metrics (``skipped: 1``) and an empty plots folder, so that a pipeline's outputs
    exist, and warn once; no MLflow run, there is nothing measured to log. Returns the metrics."""
    marker = write_priors_skipped(context.out, reason)
    metrics = {"skipped": 1}
    context.metrics.parent.mkdir(parents=True, exist_ok=True)
    context.metrics.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    context.plots.mkdir(parents=True, exist_ok=True)
    log.warning(
        "priors skipped: %s; wrote %s and no %s: the classifier, anonymizer and evaluate stages will train "
        "without label-noise priors (no noise correction, no comorbidity term)",
        reason,
        marker,
        PRIORS_FILE,
    )
    return metrics
