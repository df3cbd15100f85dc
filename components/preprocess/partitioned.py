"""KFP components of a partitioned ingest (thin library wrappers): N ``preprocess_partition`` tasks, each
over one partition of the source listing, then one ``preprocess_merge`` over their partials, whose
``dataset`` is what a single ``preprocess`` task writes (``cxrpriv.ingest.partition``; docs/ingest.md,
"Partitioned ingest"). The pipeline wires them in when compiled with ``--ingest-partitions N``.

Inputs, S3 and the key as for ``preprocess`` (``component.py``). Every task must hold the same key, so the
partitions and the merge take it from the Kubernetes secret only: a throwaway key would be a different random
key in each task, and the partition task refuses it before ingesting anything.
"""

from kfp import dsl

from components.image import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def preprocess_partition(
    config_json: str,
    profile: str,
    pipeline_run: str,
    throwaway_key: bool,
    partition: str,
    source_uri: str,
    partial: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    labels_uri: str = "",
    s3_endpoint_url: str = "",
) -> None:
    from cxrpriv.ingest.config import PreprocessConfig
    from cxrpriv.ingest.keys import load_key
    from cxrpriv.ingest.run import run_preprocess_partition
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics

    config = component_config(PreprocessConfig, config_json, pipeline_run)
    key = load_key(throwaway=throwaway_key)
    if key.source == "throwaway":
        raise ValueError(
            f"preprocess partition {partition}: a partitioned ingest needs the same key in every task: give "
            "it the secret cxrpriv-deid-key (a throwaway key is random per task, so the merge would refuse)"
        )
    # no plots artifact: a partition writes none (the merge plots the whole set), so the context's plots
    # folder is a placeholder that nothing writes to
    context = component_context("preprocess_partition", profile, partial.path, metrics, metrics)
    values = run_preprocess_partition(
        config,
        source_uri,
        labels_uri or None,  # None: no labels table, every image unlabeled
        key,
        context,
        partition,
        endpoint_url=s3_endpoint_url or None,
    )
    log_kfp_metrics(metrics, values)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def preprocess_merge(
    config_json: str,
    profile: str,
    pipeline_run: str,
    partials: dsl.Input[list[dsl.Dataset]],  # dsl.Collected of the partition tasks' partials
    dataset: dsl.Output[dsl.Dataset],
    metrics: dsl.Output[dsl.Metrics],
    plots: dsl.Output[dsl.Artifact],
    key_version: str = "",
) -> None:
    from pathlib import Path

    from cxrpriv.ingest.config import PreprocessConfig
    from cxrpriv.ingest.keys import load_key
    from cxrpriv.ingest.run import run_preprocess_merge
    from cxrpriv.pipeline_edge import component_config, component_context, log_kfp_metrics

    config = component_config(PreprocessConfig, config_json, pipeline_run)
    tags = {"cxrpriv.deid_key_version": key_version} if key_version else {}
    # the merge records the stage: its MLflow run and summary are the single preprocess task's
    context = component_context("preprocess", profile, dataset.path, metrics, plots, tags=tags)
    values = run_preprocess_merge(config, [Path(p.path) for p in partials], load_key(), context)
    log_kfp_metrics(metrics, values)
