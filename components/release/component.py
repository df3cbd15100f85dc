"""KFP component: the publishable DICOM release of an anonymized dataset, after the release gate and the
leftover-PHI audit (a thin wrapper around the library), the pipeline's last step.

The de-identification key comes from the environment variable ``CXRPRIV_DEID_KEY``, which the pipeline fills
from the Kubernetes secret ``cxrpriv-deid-key`` (key ``key``) with ``kfp.kubernetes.use_secret_as_env``, as
for preprocess: it must be the key the dataset was ingested with. ``evaluation`` is the evaluate step's
output, holding ``release_decision.json``; ``report`` the directory of its report to copy into the release.
``force_release_reason`` (empty: not forced) releases despite a failed decision and is recorded.
"""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def release(
    config_json: str,
    profile: str,
    pipeline_run: str,
    dataset: dsl.Input[dsl.Dataset],
    evaluation: dsl.Input[dsl.Artifact],
    report: dsl.Input[dsl.Artifact],
    released: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    force_release_reason: str = "",
) -> None:
    from pathlib import Path

    from cxrpriv.ingest.keys import load_key
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics
    from cxrpriv.release.config import ReleaseConfig
    from cxrpriv.release.run import run_release

    config = component_config(ReleaseConfig, config_json, pipeline_run)
    context = component_context("release", profile, released.path, metrics, plots)
    values = run_release(
        config,
        Path(dataset.path),
        Path(evaluation.path),
        Path(report.path),
        load_key(),
        context,
        force_reason=force_release_reason or None,
    )
    log_kfp_metrics(metrics, values)
