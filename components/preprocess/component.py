"""KFP component: ingest the synthetic cohort's DICOM into a de-identified dataset (a thin library wrapper).

The de-identification key comes from the environment variable ``CXRPRIV_DEID_KEY``, which the pipeline fills
from the Kubernetes secret ``cxrpriv-deid-key`` (key ``key``) with ``kfp.kubernetes.use_secret_as_env``.
``throwaway_key=True`` (local and test runs only) uses a random key instead; without either the step fails.
"""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def preprocess(
    config_json: str,
    profile: str,
    pipeline_run: str,
    throwaway_key: bool,
    cohort: dsl.Input[dsl.Dataset],
    dataset: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
) -> None:
    from pathlib import Path

    from cxrpriv.ingest.config import PreprocessConfig
    from cxrpriv.ingest.keys import load_key
    from cxrpriv.ingest.run import run_preprocess
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics

    config = component_config(PreprocessConfig, config_json, pipeline_run)
    context = component_context("preprocess", profile, dataset.path, metrics, plots)
    source = Path(cohort.path) / "dataset"
    values = run_preprocess(
        config,
        str(source / "dicom"),
        str(source / "Data_Entry_2017.csv"),
        load_key(throwaway=throwaway_key),
        context,
    )
    log_kfp_metrics(metrics, values)
