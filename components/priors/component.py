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
    import json
    import os
    from pathlib import Path

    from cxrpriv.config import build_config
    from cxrpriv.priors.command import run_priors
    from cxrpriv.priors.config import PriorsConfig
    from cxrpriv.tracking import flatten

    os.environ.setdefault("CXRPRIV_PIPELINE_RUN", pipeline_run)
    config = build_config(PriorsConfig, json.loads(config_json), source="pipeline parameter config_json")
    dataset = Path(cohort.path) / "dataset"
    values = run_priors(
        config,
        dataset / "Data_Entry_2017.csv",
        [(dataset / "reread.csv", "reader_wide")],
        None,
        Path(label_priors.path),  # a directory holding priors.json, the file the classifier reads
        # Not "metrics*.json": that name is the synthesize component's, which pipeline tests look up.
        Path(metrics.path).with_name("priors_summary.json"),
        Path(plots.path),
        profile,
    )
    for name, value in flatten("", values).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics.log_metric(name, value)
