"""KFP component: train the abnormality classifier on the ingested dataset (a thin library wrapper).

The pipeline gives it one GPU (``gpu_task``); on a node without one it trains on the CPU. In the demo
pipeline the synthetic cohort's answer key (``cohort``) gives clean labels for evaluation and masks for the
anatomy head; without it (a real archive) the metrics are against the text-mined labels only. When the
priors step had no re-read table, the classifier trains without label-noise priors. ``checkpoint_dir``
(e.g. a mounted volume) lets a restarted pod resume; with ``checkpoint_run`` (the run's ID) the checkpoint
is kept per run.
"""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_classifier(
    config_json: str,
    profile: str,
    pipeline_run: str,
    dataset: dsl.Input[dsl.Dataset],
    label_priors: dsl.Input[dsl.Artifact],
    classifier: dsl.Output[dsl.Model],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    cohort: dsl.Input[dsl.Dataset] = None,
    checkpoint_dir: str = "",
    checkpoint_run: str = "",
) -> None:
    import json
    from pathlib import Path

    from cxrpriv.classify.config import ClassifierConfig
    from cxrpriv.classify.run import run_train_classifier
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics
    from cxrpriv.priors.output import SKIPPED_TAGS, priors_file, skipped_reason, without_priors

    skipped = skipped_reason(label_priors.path)  # None: the priors step measured priors
    if skipped is not None:
        config_json = json.dumps(without_priors(json.loads(config_json), "train_classifier", skipped))
    config = component_config(ClassifierConfig, config_json, pipeline_run)
    # classifier: a directory holding model.pt, spec.json, predictions, evaluation, history
    context = component_context(
        "train_classifier",
        profile,
        classifier.path,
        metrics,
        plots,
        checkpoint_dir=checkpoint_dir,
        checkpoint_run=checkpoint_run,
        tags=SKIPPED_TAGS if skipped is not None else None,
    )
    answer_key = None if cohort is None else Path(cohort.path) / "answer_key"
    values = run_train_classifier(
        config,
        Path(dataset.path),
        priors_file(label_priors.path),  # None: the priors step had no re-read table
        answer_key if answer_key is not None and answer_key.is_dir() else None,
        None,
        context,
    )
    log_kfp_metrics(metrics, values)
