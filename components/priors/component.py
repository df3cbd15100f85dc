"""KFP component: label priors from the cohort's re-read table (a thin wrapper around the library)."""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def priors(
    config_json: str,
    profile: str,
    pipeline_run: str,
    cohort: dsl.Input[dsl.Dataset],
    label_priors: dsl.Output[dsl.Artifact],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
) -> None:
    from pathlib import Path

    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics
    from cxrpriv.priors.config import PriorsConfig
    from cxrpriv.priors.run import run_priors

    config = component_config(PriorsConfig, config_json, pipeline_run)
    # label_priors: a directory holding priors.json, the file the classifier reads
    context = component_context("priors", profile, label_priors.path, metrics, plots)
    dataset = Path(cohort.path) / "dataset"
    values = run_priors(
        config,
        dataset / "Data_Entry_2017.csv",
        [(dataset / "reread.csv", "reader_wide")],
        None,
        context,
    )
    log_kfp_metrics(metrics, values)
