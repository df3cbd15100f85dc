"""KFP component: label priors from radiologist re-reads (a thin wrapper around the library).

The re-read table is ``reread_uri`` (a path or ``s3://`` URI, layout ``reread_layout``) with the text-mined
labels ``labels_uri`` (optional), or, when ``reread_uri`` is empty, the synthetic cohort's tables (the demo
pipeline's ``cohort`` artifact). With neither there is nothing to measure priors from: the step succeeds
without a ``priors.json`` (``cxrpriv.priors.output``: it writes ``priors_skipped.json`` saying why), and the
classifier, anonymizer and evaluate steps run without label-noise priors.
"""

from kfp import dsl

from components.image import IMAGE


# The image already has kfp (requirements/lock.txt): no pip install at run time, no network needed.
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def priors(
    config_json: str,
    profile: str,
    pipeline_run: str,
    label_priors: dsl.Output[dsl.Artifact],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    cohort: dsl.Input[dsl.Dataset] = None,
    labels_uri: str = "",
    reread_uri: str = "",
    reread_layout: str = "auto",
    s3_endpoint_url: str = "",
) -> None:
    import tempfile
    from pathlib import Path

    from cxrpriv.pipeline_edge import (
        component_config,
        component_context,
        local_file,
        log_kfp_metrics,
    )
    from cxrpriv.priors.config import PriorsConfig
    from cxrpriv.priors.run import run_priors, skip_priors

    config = component_config(PriorsConfig, config_json, pipeline_run)
    # label_priors: a directory holding priors.json, the file the classifier reads
    context = component_context("priors", profile, label_priors.path, metrics, plots)
    with tempfile.TemporaryDirectory() as tmp:
        if reread_uri:
            rereads = [(local_file(reread_uri, s3_endpoint_url, Path(tmp) / "reread"), reread_layout)]
            labels = local_file(labels_uri, s3_endpoint_url, Path(tmp) / "labels") if labels_uri else None
        elif cohort is not None:  # the demo input: the synthetic cohort's tables
            dataset = Path(cohort.path) / "dataset"
            rereads, labels = [(dataset / "reread.csv", "reader_wide")], dataset / "Data_Entry_2017.csv"
        else:
            rereads, labels = [], None
        if rereads:
            values = run_priors(config, labels, rereads, None, context)
        else:
            values = skip_priors("no re-read table (reread_uri is empty)", context)
    log_kfp_metrics(metrics, values)
