"""KFP component: generate the synthetic cohort (a thin wrapper around the library)."""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def synthesize(
    config_json: str,
    profile: str,
    pipeline_run: str,
    cohort: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
) -> None:
    from pathlib import Path

    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics
    from cxrpriv.synth.config import SynthesizeConfig
    from cxrpriv.synth.run import run_synthesize

    config = component_config(SynthesizeConfig, config_json, pipeline_run)
    # metrics.json beside the Metrics artifact: the file the pipeline tests look up.
    metrics_file = Path(metrics.path).with_suffix(".json")
    context = component_context("synthesize", profile, cohort.path, metrics, plots, metrics_file=metrics_file)
    values = run_synthesize(config, context)
    log_kfp_metrics(metrics, values)
