"""KFP component: the privacy-utility evaluation and the release decision (a thin library wrapper).

The retrained attackers make it the pipeline's heaviest step: it asks for one GPU (``gpu_task``) and runs
on the CPU without one. ``attackers_json`` maps each attacker profile of ``config_json`` to its train_reid
values (the pipeline fills it from params.yaml at compile time); ``train_reid_json`` and
``train_classifier_json`` are the run profile's sections (the test pairs, the classifier's evaluation).
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
    cohort: dsl.Input[dsl.Dataset],
    evaluation: dsl.Output[dsl.Artifact],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    checkpoint_dir: str = "",
) -> None:
    import json
    from pathlib import Path

    from cxrpriv.evaluate.config import EvaluateConfig
    from cxrpriv.evaluate.results import flat_metrics
    from cxrpriv.evaluate.run import run_evaluate
    from cxrpriv.evaluate.stage import build_inputs
    from cxrpriv.pipeline_edge import component_config, component_context
    from cxrpriv.priors import PRIORS_FILE

    config = component_config(EvaluateConfig, config_json, pipeline_run)
    answer_key = Path(cohort.path) / "answer_key"  # the synthetic cohort's: clean test labels
    paths = {
        "original": dataset.path,
        "anonymized": [anonymized.path],
        "verifier": verifier.path,
        "classifier": classifier.path,
        "priors": Path(label_priors.path) / PRIORS_FILE,
        "answer_key": answer_key if answer_key.is_dir() else None,
    }
    inputs = build_inputs(
        config,
        paths,
        json.loads(attackers_json),
        json.loads(train_reid_json),
        json.loads(train_classifier_json),
    )
    # evaluation: a directory holding release_decision.json, report.html and results.json
    context = component_context(
        "evaluate", profile, evaluation.path, metrics, plots, checkpoint_dir=checkpoint_dir
    )
    results = run_evaluate(config, inputs, context)
    for name, value in flat_metrics(results).items():
        metrics.log_metric(name, value)
