"""KFP component: train the learned anonymizer against the trained verifier and classifier (a thin library
wrapper).

Meant for one GPU (``gpu_task``); on a node without one it trains on the CPU. ``checkpoint_dir`` (e.g. a
mounted volume) lets a restarted pod resume.
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
) -> None:
    from pathlib import Path

    from cxrpriv.anonymize.config import TrainAnonymizerConfig
    from cxrpriv.anonymize.run import run_train_anonymizer
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics
    from cxrpriv.priors import PRIORS_FILE

    config = component_config(TrainAnonymizerConfig, config_json, pipeline_run)
    # anonymizer: a directory holding model.pt, spec.json, history.json
    context = component_context(
        "train_anonymizer", profile, anonymizer.path, metrics, plots, checkpoint_dir=checkpoint_dir
    )
    values = run_train_anonymizer(
        config,
        Path(dataset.path),
        Path(verifier.path),
        Path(classifier.path),
        Path(label_priors.path) / PRIORS_FILE,
        context,
    )
    log_kfp_metrics(metrics, values)
