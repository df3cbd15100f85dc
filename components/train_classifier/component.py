"""KFP component: train the abnormality classifier on the ingested dataset (a thin library wrapper).

The pipeline gives it one GPU (``gpu_task``); on a node without one it trains on the CPU. The synthetic
cohort's answer key gives clean labels for evaluation and masks for the anatomy head; ``checkpoint_dir``
(e.g. a mounted volume) lets a restarted pod resume.
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
    cohort: dsl.Input[dsl.Dataset],
    classifier: dsl.Output[dsl.Model],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    checkpoint_dir: str = "",
) -> None:
    from pathlib import Path

    from cxrpriv.classify.config import ClassifierConfig
    from cxrpriv.classify.run import run_train_classifier
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics
    from cxrpriv.priors import PRIORS_FILE

    config = component_config(ClassifierConfig, config_json, pipeline_run)
    # classifier: a directory holding model.pt, spec.json, predictions, evaluation, history
    context = component_context(
        "train_classifier", profile, classifier.path, metrics, plots, checkpoint_dir=checkpoint_dir
    )
    answer_key = Path(cohort.path) / "answer_key"
    values = run_train_classifier(
        config,
        Path(dataset.path),
        Path(label_priors.path) / PRIORS_FILE,
        answer_key if answer_key.is_dir() else None,
        None,
        context,
    )
    log_kfp_metrics(metrics, values)
