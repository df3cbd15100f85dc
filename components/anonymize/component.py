"""KFP component: apply the anonymizer to the ingested dataset (a thin library wrapper); the output is a
dataset in the ingest format. Batched on a GPU when the node has one (``gpu_task``), else on the CPU."""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def anonymize(
    config_json: str,
    profile: str,
    pipeline_run: str,
    dataset: dsl.Input[dsl.Dataset],
    anonymizer: dsl.Input[dsl.Model],
    anonymized: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
) -> None:
    from pathlib import Path

    from cxrpriv.anonymize_dataset.config import AnonymizeConfig
    from cxrpriv.anonymize_dataset.run import run_anonymize
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics

    config = component_config(AnonymizeConfig, config_json, pipeline_run)
    context = component_context("anonymize", profile, anonymized.path, metrics, plots)
    values = run_anonymize(config, Path(dataset.path), Path(anonymizer.path), context)
    log_kfp_metrics(metrics, values)
