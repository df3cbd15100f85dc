"""KFP component: train the learned anonymizer against the trained verifier and classifier (a thin library
wrapper).

Meant for one GPU (``gpu_task``); on a node without one it trains on the CPU. ``checkpoint_dir`` (e.g. a
mounted volume) lets a restarted pod resume; with ``checkpoint_run`` (the run's ID) the checkpoint is kept
per run. Without priors (the priors step had no re-read table) the classifier term has no label-noise
correction.
"""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_anonymizer(
    config_json: str,
    profile: str,
    pipeline_run: str,
    dataset: dsl.Input[dsl.Dataset],
    verifier: dsl.Input[dsl.Model],
    classifier: dsl.Input[dsl.Model],
    label_priors: dsl.Input[dsl.Artifact],
    anonymizer: dsl.Output[dsl.Model],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    checkpoint_dir: str = "",
    checkpoint_run: str = "",
) -> None:
    from pathlib import Path

    from cxrpriv.anonymize.config import TrainAnonymizerConfig
    from cxrpriv.anonymize.run import run_train_anonymizer
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics
    from cxrpriv.priors.output import SKIPPED_TAGS, priors_file

    config = component_config(TrainAnonymizerConfig, config_json, pipeline_run)
    priors_path = priors_file(label_priors.path)  # None: the priors step had no re-read table
    # anonymizer: a directory holding model.pt, spec.json, history.json
    context = component_context(
        "train_anonymizer",
        profile,
        anonymizer.path,
        metrics,
        plots,
        checkpoint_dir=checkpoint_dir,
        checkpoint_run=checkpoint_run,
        tags=SKIPPED_TAGS if priors_path is None else None,
    )
    values = run_train_anonymizer(
        config,
        Path(dataset.path),
        Path(verifier.path),
        Path(classifier.path),
        priors_path,
        context,
    )
    log_kfp_metrics(metrics, values)
