"""KFP component: ingest DICOM into a de-identified dataset (a thin library wrapper).

The input is ``source_uri`` (a folder the pod can read, or an ``s3://bucket/prefix``) with its labels table
``labels_uri`` (a path or ``s3://`` URI; empty: none, every image ingested unlabeled), or, when
``source_uri`` is empty, the synthetic cohort (the demo pipeline's ``cohort`` artifact). The source is read
in place: raw, identifying DICOM never becomes a pipeline artifact; only the de-identified ``dataset`` is.
S3 is reached at ``s3_endpoint_url`` (empty: AWS) with the credentials of the standard AWS environment
variables, which the pipeline fills from a Kubernetes secret.

The de-identification key comes from the environment variable ``CXRPRIV_DEID_KEY``, which the pipeline fills
from the Kubernetes secret ``cxrpriv-deid-key`` (key ``key``) with ``kfp.kubernetes.use_secret_as_env``.
``throwaway_key=True`` (local and test runs only) uses a random key instead; without either the step fails.
``key_version`` names the key (e.g. ``2024-1``): it is part of the task's cache key, so rotating the key and
saying so here can never reuse pseudonyms made with the old one, and it is recorded on the MLflow run.
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
    dataset: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    cohort: dsl.Input[dsl.Dataset] = None,
    source_uri: str = "",
    labels_uri: str = "",
    s3_endpoint_url: str = "",
    key_version: str = "",
) -> None:
    from pathlib import Path

    from cxrpriv.ingest.config import PreprocessConfig
    from cxrpriv.ingest.keys import load_key
    from cxrpriv.ingest.run import run_preprocess
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics

    config = component_config(PreprocessConfig, config_json, pipeline_run)
    tags = {"cxrpriv.deid_key_version": key_version} if key_version else {}
    context = component_context("preprocess", profile, dataset.path, metrics, plots, tags=tags)
    if source_uri:
        source, labels = source_uri, labels_uri or None
    elif cohort is not None:  # the demo input: the synthetic cohort's DICOM and labels table
        root = Path(cohort.path) / "dataset"
        source, labels = str(root / "dicom"), labels_uri or str(root / "Data_Entry_2017.csv")
    else:
        raise ValueError("preprocess: no input; set source_uri (a folder or s3:// prefix of DICOM files)")
    values = run_preprocess(
        config,
        source,
        labels,  # None: no labels table, every image unlabeled
        load_key(throwaway=throwaway_key),
        context,
        endpoint_url=s3_endpoint_url or None,
    )
    log_kfp_metrics(metrics, values)
