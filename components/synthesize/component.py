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
    import json
    import os
    from pathlib import Path

    from cxrpriv.config import build_config
    from cxrpriv.synth.command import run_synthesize
    from cxrpriv.synth.config import SynthesizeConfig

    os.environ.setdefault("CXRPRIV_PIPELINE_RUN", pipeline_run)
    config = build_config(SynthesizeConfig, json.loads(config_json), source="pipeline parameter config_json")
    values = run_synthesize(
        config,
        Path(cohort.path),
        Path(metrics.path).with_suffix(".json"),
        Path(plots.path),
        profile,
        progress=False,
    )
    for name, value in values.items():
        if isinstance(value, int | float):
            metrics.log_metric(name, value)
