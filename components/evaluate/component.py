"""KFP component: the privacy-utility evaluation and the release decision (a thin library wrapper).

The retrained attackers make it the pipeline's heaviest step: it asks for one GPU (``gpu_task``) and runs
on the CPU without one. ``attackers_json`` maps each attacker profile of ``config_json`` to its train_reid
values (the pipeline fills it from params.yaml at compile time); ``train_reid_json`` and
``train_classifier_json`` are the run profile's sections (the test pairs, the classifier's evaluation).
``cohort`` (the demo pipeline only) gives the synthetic answer key's clean test labels; without it utility is
measured against the text-mined labels. ``report_html`` is the self-contained report (plots embedded) as a
KFP HTML artifact, which the Kubeflow Pipelines UI shows in the run's visualizations.
"""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    config_json: str,
    attackers_json: str,
    train_reid_json: str,
    train_classifier_json: str,
    profile: str,
    pipeline_run: str,
    dataset: dsl.Input[dsl.Dataset],
    anonymized: dsl.Input[dsl.Dataset],
    verifier: dsl.Input[dsl.Model],
    classifier: dsl.Input[dsl.Model],
    label_priors: dsl.Input[dsl.Artifact],
    evaluation: dsl.Output[dsl.Artifact],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    report_html: dsl.Output[dsl.HTML],
    cohort: dsl.Input[dsl.Dataset] = None,
    checkpoint_dir: str = "",
    checkpoint_run: str = "",
) -> None:
    import json
    import shutil
    from pathlib import Path

    from cxrpriv.evaluate.config import EvaluateConfig
    from cxrpriv.evaluate.results import flat_metrics
    from cxrpriv.evaluate.run import run_evaluate
    from cxrpriv.evaluate.stage import build_inputs
    from cxrpriv.pipeline_edge import component_config, component_context
    from cxrpriv.priors.output import SKIPPED_TAGS, priors_file, skipped_reason, without_priors

    config = component_config(EvaluateConfig, config_json, pipeline_run)
    classifier_values = json.loads(train_classifier_json)
    skipped = skipped_reason(label_priors.path)  # None: the priors step measured priors
    if skipped is not None:  # the retrained classifier's recipe
        classifier_values = without_priors(classifier_values, "evaluate", skipped)
    # the synthetic cohort's answer key (demo pipeline only): clean test labels
    answer_key = None if cohort is None else Path(cohort.path) / "answer_key"
    paths = {
        "original": dataset.path,
        "anonymized": [anonymized.path],
        "verifier": verifier.path,
        "classifier": classifier.path,
        "priors": priors_file(label_priors.path),
        "answer_key": answer_key if answer_key is not None and answer_key.is_dir() else None,
    }
    inputs = build_inputs(
        config,
        paths,
        json.loads(attackers_json),
        json.loads(train_reid_json),
        classifier_values,
    )
    # evaluation: a directory holding release_decision.json, report.html and results.json
    context = component_context(
        "evaluate",
        profile,
        evaluation.path,
        metrics,
        plots,
        checkpoint_dir=checkpoint_dir,
        checkpoint_run=checkpoint_run,
        tags=SKIPPED_TAGS if skipped is not None else None,
    )
    results = run_evaluate(config, inputs, context)
    for name, value in flat_metrics(results).items():
        metrics.log_metric(name, value)
    report = Path(evaluation.path) / "report.html"
    if report.is_file():
        Path(report_html.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report, report_html.path)
