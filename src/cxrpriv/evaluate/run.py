"""The evaluate stage's run function: measure every variant, decide, write the report, log one MLflow run.

Outputs (``context.out``): ``release_decision.json`` (:mod:`cxrpriv.evaluate.decision`, what ``cxrpriv
release`` reads), ``report.html`` (one self-contained page for a data-protection officer) and
``results.json`` (the same results as the metrics file, :mod:`cxrpriv.evaluate.results`' format). The
retrained attackers' checkpoints and per-seed records live in ``context.checkpoint_dir`` (default
``<out>.checkpoint``, outside DVC's outputs), so a killed run resumes; it is deleted once the outputs exist.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import Any

from cxrpriv.config import config_to_dict
from cxrpriv.evaluate import EvaluateInputError
from cxrpriv.evaluate.config import EvaluateConfig
from cxrpriv.stages.contract import StageContext

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
RESULTS_FILE = "results.json"


def _inputs_exist(inputs: Any) -> list[Path]:
    from cxrpriv.dataset import DatasetError, find_manifest
    from cxrpriv.training.artifacts import model_files

    try:
        paths = [find_manifest(p).parent for p in (inputs.original, *inputs.anonymized)]
    except DatasetError as exc:
        raise EvaluateInputError(str(exc)) from exc
    for option, directory in (("--verifier", inputs.verifier), ("--classifier", inputs.classifier)):
        missing = [str(p) for p in model_files(Path(directory)) if not p.is_file()]
        if missing:
            raise EvaluateInputError(f"{option}: {', '.join(missing)} not found")
        paths += model_files(Path(directory))
    for path in (inputs.priors, inputs.answer_key):
        if path is not None and not Path(path).exists():
            raise EvaluateInputError(f"{path}: not found")
    return paths


def _log_inputs(run: Any, inputs: Any) -> None:
    """The datasets (``mlflow.log_input``) and the frozen models (digests) this evaluation reads."""
    from cxrpriv.dataset import dataset_digest
    from cxrpriv.tracking import file_digest
    from cxrpriv.training.artifacts import model_digest

    run.log_dataset("ingested", Path(inputs.original), dataset_digest(inputs.original))
    for i, path in enumerate(inputs.anonymized):
        run.log_dataset("anonymized" if i == 0 else f"anonymized_{i + 1}", Path(path), dataset_digest(path))
    if inputs.priors is not None:
        run.log_dataset("priors", Path(inputs.priors), file_digest(Path(inputs.priors)))
    run.log_model_input("verifier", model_digest(Path(inputs.verifier)))
    run.log_model_input("classifier", model_digest(Path(inputs.classifier)))


def headline(results: dict[str, Any], decision: Any) -> tuple[dict[str, float], dict[str, str]]:
    """The pipeline execution's headline numbers (metrics, tags) for its parent MLflow run: the released
    variant's strongest retrained attacker (worst seed's AUC and the mean over seeds), its frozen-classifier
    utility drop, and the decision."""
    from cxrpriv.evaluate.results import find_variant, utility_drop, worst_attacker, worst_seed_auc

    variant = find_variant(results, decision.variant) or {}
    strongest = worst_attacker(variant)
    metrics = {
        "headline.attacker_auc_worst_seed": worst_seed_auc(variant)[0],
        "headline.attacker_auc_mean": strongest.auc_mean if strongest else float("nan"),
        "headline.utility_drop": utility_drop(results, decision.variant),
        "headline.release_passed": float(decision.passed),
    }
    tags = {"cxrpriv.release_decision": decision.decision, "cxrpriv.release_variant": decision.variant}
    return {k: v for k, v in metrics.items() if math.isfinite(v)}, tags


def run_evaluate(config: EvaluateConfig, inputs: Any, context: StageContext) -> dict[str, Any]:
    """Evaluate ``inputs`` (:class:`cxrpriv.evaluate.stage.EvaluateInputs`); returns the results."""
    from cxrpriv.evaluate.decision import DECISION_FILE
    from cxrpriv.evaluate.gate import GateConfig, decide
    from cxrpriv.evaluate.html import write_html_report
    from cxrpriv.evaluate.report import ExampleFilms, write_plots
    from cxrpriv.evaluate.results import HEADLINE_FILE, flat_metrics, headline_metrics, validate_results
    from cxrpriv.evaluate.stage import evaluate
    from cxrpriv.tracking import file_digest, hash_inputs, stage_run, tag_pipeline_runs
    from cxrpriv.training.artifacts import write_metrics
    from cxrpriv.training.checkpoint import default_checkpoint_dir

    config.validate()
    work_dir = context.checkpoint_dir or default_checkpoint_dir(context.out)
    if context.restart:
        shutil.rmtree(work_dir, ignore_errors=True)
    paths = _inputs_exist(inputs)
    params = {
        "evaluate": config_to_dict(config),
        "attackers": {f.name: config_to_dict(f.config) for f in inputs.attackers},
    }
    with stage_run(
        "evaluate", params, context.profile, input_hash=hash_inputs(paths), tags=context.tags
    ) as run:
        _log_inputs(run, inputs)

        def log_attacker(variant: str, family: str, record: dict[str, Any]) -> None:
            log.info(
                "evaluate: %s, retrained %s attacker, seed %d: AUC %.4f (%.4f-%.4f), P@1 %.3f, mAP@R %.3f",
                variant,
                family,
                record["seed"],
                record["auc"],
                record["auc_low"],
                record["auc_high"],
                record["p_at_1"],
                record["map_at_r"],
            )

        result = evaluate(
            config,
            inputs,
            work_dir,
            device=context.device,
            progress=context.progress,
            on_attacker_run=log_attacker,
        )
        results = result.results
        validate_results(results)
        gate = GateConfig.from_settings(config)
        decision = decide(results, gate)
        out = context.out
        out.mkdir(parents=True, exist_ok=True)
        decision.write(out / DECISION_FILE)
        (out / RESULTS_FILE).write_text(json.dumps(results, indent=1, default=float) + "\n")
        write_metrics(context.metrics, results)
        write_metrics(context.metrics.with_name(HEADLINE_FILE), headline_metrics(results, decision.passed))
        examples = dict(result.examples)
        films = ExampleFilms(examples.pop("original"), examples) if examples else None
        plots = write_plots(results, films, context.plots, gate)
        report = write_html_report(results, decision, plots, out / REPORT_FILE)
        run.log_metrics(flat_metrics(results))
        run.set_tags({f"cxrpriv.{k}": v for k, v in result.device.items()})
        for path in (out / DECISION_FILE, report, context.metrics):
            run.log_artifact(path)
        for plot in plots:
            run.log_artifact(plot, "plots")
        run.set_output_digest(file_digest(out / DECISION_FILE))  # how release finds the models behind it
        tag_pipeline_runs(
            {"cxrpriv.release_decision": decision.decision, "cxrpriv.release_variant": decision.variant}
        )
        run.log_to_pipeline(*headline(results, decision))
    shutil.rmtree(work_dir, ignore_errors=True)
    log.info(
        "evaluate: release decision for %s: %s%s; report: %s",
        decision.variant,
        decision.decision.upper(),
        "" if decision.passed else " (" + "; ".join(decision.reasons) + ")",
        report,
    )
    return results
