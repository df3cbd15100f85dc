"""KFP component: train the re-identification attacker on the ingested dataset (a thin library wrapper).

The pipeline gives it one GPU (``gpu_task``); on a node without one it trains on the CPU. The checkpoint is
written next to the model output; ``checkpoint_dir`` (e.g. a mounted volume) lets a restarted pod resume;
with ``checkpoint_run`` (the run's ID) the checkpoint is kept per run.
"""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train_reid(
    config_json: str,
    profile: str,
    pipeline_run: str,
    dataset: dsl.Input[dsl.Dataset],
    verifier: dsl.Output[dsl.Model],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    checkpoint_dir: str = "",
    checkpoint_run: str = "",
) -> None:
    from pathlib import Path

    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics
    from cxrpriv.reid.config import TrainReidConfig
    from cxrpriv.reid.run import run_train_reid

    config = component_config(TrainReidConfig, config_json, pipeline_run)
    # verifier: a directory holding model.pt, spec.json, history, test scores
    context = component_context(
        "train_reid",
        profile,
        verifier.path,
        metrics,
        plots,
        checkpoint_dir=checkpoint_dir,
        checkpoint_run=checkpoint_run,
    )
    values = run_train_reid(config, Path(dataset.path), context)
    log_kfp_metrics(metrics, values)
