"""The cxr-privacy KFP pipelines; their parameter defaults come from params.yaml under a profile.

Two pipelines share one graph after the input:

- ``cxr-privacy``, on your own archive: ``source_uri`` (a folder the pods can read, or ``s3://bucket/prefix``)
  with ``labels_uri`` (optional), ``reread_uri`` (optional: radiologist re-reads for the label priors;
  without it the priors step is skipped and the models train without priors) and ``s3_endpoint_url``. The
  source is read in place by the ingest step: raw DICOM never becomes a pipeline artifact. The steps that
  read outside the pipeline (ingest, priors) are never cached, so a scheduled run re-reads the archive.
- ``cxr-privacy-demo``: the synthetic cohort as the input (what a run without a source uses), whose answer
  key also gives the classifier and the evaluation clean labels. Everything is cached: a rerun is a no-op.

Compile: ``python -m pipelines.cxr_privacy --profile default [--demo] [--checkpoint-pvc NAME]
[--ingest-partitions N]``; submit and schedule: ``python -m pipelines submit|schedule``
(``pipelines/client.py``). The same pipeline functions run under ``kfp.local`` in tests and on a Kubeflow
cluster in production. ``--ingest-partitions N`` ingests a large archive in N parallel tasks (a
``dsl.ParallelFor`` over partitions of the listing) and a merge task that assigns the splits over the whole
set; its dataset is the single task's, byte for byte.

Why two pipelines rather than one with ``dsl.If``/``dsl.Else``: the branches would have to hand their
artifacts (the cohort, the ingested dataset) to the shared steps through ``dsl.OneOf``, which ``kfp.local``
(kfp 2.17) cannot run ("Expected 1 artifact in ArtifactSelectorSpec"), and the tests run the pipelines
there.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import compiler, dsl, kubernetes

from components.anonymize.component import anonymize
from components.evaluate.component import evaluate
from components.preprocess.component import preprocess
from components.preprocess.partitioned import preprocess_merge, preprocess_partition
from components.priors.component import priors
from components.release.component import release
from components.synthesize.component import synthesize
from components.train_anonymizer.component import train_anonymizer
from components.train_classifier.component import train_classifier
from components.train_reid.component import train_reid
from cxrpriv.config import DEFAULT_PARAMS_FILE, read_params, stage_values
from cxrpriv.stages.registry import pipeline_stage_names
from pipelines.resources import cpu_task, gpu_task

# Every pipeline stage of the registry has a component and a `<stage>_config` pipeline parameter (a row with
# in_pipeline=False, a stage not wired in yet, has neither here); the own-archive pipeline has no synthesize.
STAGES = pipeline_stage_names()
PIPELINE_NAME = "cxr-privacy"
DEMO_PIPELINE_NAME = "cxr-privacy-demo"
# The de-identification key: a Kubernetes secret in the pipeline's namespace, given to the preprocess step
# as $CXRPRIV_DEID_KEY (kubectl create secret generic cxrpriv-deid-key --from-literal=key=<64 hex digits>).
DEID_KEY_SECRET = "cxrpriv-deid-key"
DEID_KEY_SECRET_KEY = "key"
# S3 credentials of the archive (own-archive pipeline): the standard AWS variables from this secret, for
# the steps that read the source and the tables. Optional: without it boto3's own chain applies (e.g. an
# IAM role for the service account).
S3_SECRET = "cxrpriv-s3"
S3_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION")
# MLflow tracking from pods: every task gets these from a config map and a secret of the same name, both
# optional (a cluster without them runs; the runs then go to a SQLite store in the pod's state folder and
# are lost with it, cxrpriv.tracking warns). The config map says where (the tracking server, a new
# experiment's artifact root, the experiment, an S3-compatible artifact store's endpoint); the secret holds
# the server's credentials and, for an artifact store the pods write directly (not needed behind a proxying
# `mlflow server --serve-artifacts`), its S3 keys, given to every task but those that read the archive,
# which take the AWS variables from the archive's secret.
TRACKING_CONFIG_MAP = "cxrpriv-tracking"
TRACKING_CONFIG_KEYS = (
    "MLFLOW_TRACKING_URI",
    "CXRPRIV_ARTIFACT_ROOT",
    "CXRPRIV_EXPERIMENT",
    "MLFLOW_S3_ENDPOINT_URL",
)
TRACKING_SECRET = "cxrpriv-tracking"
TRACKING_SECRET_KEYS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
ARTIFACT_STORE_SECRET_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
# Checkpoints (compiled with --checkpoint-pvc): the PVC named by the `checkpoint_pvc` parameter is mounted
# here in every training task; each run keeps its checkpoints under <mount>/<run ID>/<stage>, so a retried
# pod resumes from its last finished epoch and no later run resumes from an old one.
CHECKPOINT_MOUNT = "/mnt/cxrpriv-checkpoints"
TRAINING_TASKS = ("train_reid", "train_classifier", "train_anonymizer", "evaluate")
TRAINING_RETRIES = 2
RETRY_BACKOFF = "120s"


def stage_defaults(params_file: Path = DEFAULT_PARAMS_FILE, profile: str | None = None) -> dict[str, Any]:
    """Per-stage parameter JSON strings and the profile name, as the pipeline's default arguments."""
    params = read_params(params_file)
    profile = profile or params.get("profile", "default")
    values = {
        f"{stage}_config": json.dumps(stage_values(params, stage, profile), sort_keys=True)
        for stage in STAGES
    }
    # The evaluate step retrains attacker families named by train_reid profiles: their configs, resolved here.
    families = stage_values(params, "evaluate", profile)["attacker_profiles"]
    attackers = {name: stage_values(params, "train_reid", name) for name in families}
    return {"profile": profile, **values, "evaluate_attackers": json.dumps(attackers, sort_keys=True)}


def pipeline_parameters(
    defaults: dict[str, Any], *, demo: bool, checkpoint_pvc: str | None
) -> list[tuple[str, type, Any]]:
    """(name, type, default) of each pipeline parameter, in order."""
    source = [
        # your archive: a folder the pods can read, or s3://bucket/prefix (empty: use the demo pipeline)
        ("source_uri", str, ""),
        # its labels table (Data_Entry_2017 format; a path or s3:// URI); empty: none, images unlabeled
        ("labels_uri", str, ""),
        # radiologist re-reads for the label priors; empty: priors skipped, models trained without them
        ("reread_uri", str, ""),
        ("reread_layout", str, "auto"),
        # S3 endpoint of source_uri/labels_uri/reread_uri (e.g. MinIO); empty: AWS
        ("s3_endpoint_url", str, ""),
    ]
    stages = [s for s in STAGES if demo or s != "synthesize"]
    return [
        *([] if demo else source),
        ("profile", str, defaults["profile"]),
        *((f"{s}_config", str, defaults[f"{s}_config"]) for s in stages),
        ("evaluate_attackers", str, defaults["evaluate_attackers"]),
        # the de-identification key's version (e.g. 2024-1): change it when rotating the secret, so that no
        # cached ingest made with the old key is reused; recorded on the ingest step's MLflow run
        ("key_version", str, ""),
        # Local and test runs only: without the secret, ingest with a random key (never for real data; the
        # release step then cannot run: it needs the key the dataset was ingested with).
        ("throwaway_key", bool, False),
        # Release although the decision failed (recorded in the release manifest); empty: never.
        ("force_release_reason", str, ""),
        *([("checkpoint_pvc", str, checkpoint_pvc)] if checkpoint_pvc else []),
    ]


def _pipeline_function(parameters: list[tuple[str, type, Any]], graph: Callable[[dict[str, Any]], None]):
    """A function whose signature is ``parameters`` (what KFP reads to declare the pipeline's inputs) and
    which hands them to ``graph`` by name: the two pipelines differ in their parameters, not their steps."""

    def pipeline_function(*args: Any) -> None:
        graph(dict(zip([name for name, _, _ in parameters], args, strict=True)))

    pipeline_function.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=default, annotation=kind)
            for name, kind, default in parameters
        ],
        return_annotation=None,
    )
    return pipeline_function


def _secret_env(task: dsl.PipelineTask, secret: str, keys: dict[str, str]) -> None:
    # optional: a missing secret then fails in the step with a message saying what to do, rather than as a
    # pod that never starts
    kubernetes.use_secret_as_env(task, secret_name=secret, secret_key_to_env=keys, optional=True)


def partitioned_ingest(
    p: dict[str, Any], partitions: int, run: dict[str, Any]
) -> tuple[dsl.PipelineTask, dsl.PipelineTask]:
    """The ingest as ``partitions`` parallel tasks over partitions of the source listing and a merge of
    their partials into the dataset (``cxrpriv.ingest.partition``); returns (merge, the partition task in
    the loop). Each partition task holds the key like a single ingest task; the caller gives it the S3
    secret and turns its caching off."""
    with dsl.ParallelFor(items=[f"{i}/{partitions}" for i in range(partitions)]) as partition:
        part = preprocess_partition(
            config_json=p["preprocess_config"],
            partition=partition,
            source_uri=p["source_uri"],
            labels_uri=p["labels_uri"],
            s3_endpoint_url=p["s3_endpoint_url"],
            throwaway_key=p["throwaway_key"],
            **run,
        )
        cpu_task(part, cpus="2", memory="8G")
        _secret_env(part, DEID_KEY_SECRET, {DEID_KEY_SECRET_KEY: "CXRPRIV_DEID_KEY"})
    merge = preprocess_merge(
        config_json=p["preprocess_config"],
        partials=dsl.Collected(part.outputs["partial"]),
        key_version=p["key_version"],
        **run,
    )
    return merge, part


def _tracking_env(task: dsl.PipelineTask, *, reads_archive: bool) -> None:
    """The MLflow tracking settings of every task (see TRACKING_CONFIG_MAP), all optional."""
    kubernetes.use_config_map_as_env(
        task,
        config_map_name=TRACKING_CONFIG_MAP,
        config_map_key_to_env={k: k for k in TRACKING_CONFIG_KEYS},
        optional=True,
    )
    keys = TRACKING_SECRET_KEYS + (() if reads_archive else ARTIFACT_STORE_SECRET_KEYS)
    _secret_env(task, TRACKING_SECRET, {k: k for k in keys})


@dataclasses.dataclass
class _InputTasks:
    """The tasks that bring the data in: the label priors, the ingest (whose ``dataset`` the rest of the
    graph reads), the answer-key input of the steps that take one, every input task (for the tracking env)
    and those of them that read the archive (they hold its S3 secret)."""

    label_priors: dsl.PipelineTask
    ingest: dsl.PipelineTask
    answer_key: dict[str, Any]
    tasks: tuple[dsl.PipelineTask, ...]
    archive_readers: tuple[dsl.PipelineTask, ...]


def _input_tasks(
    p: dict[str, Any], run: dict[str, Any], *, demo: bool, ingest_partitions: int
) -> _InputTasks:
    """The demo's cohort, or the own archive read in place (one ingest task or ``ingest_partitions``)."""
    key = {"throwaway_key": p["throwaway_key"], "key_version": p["key_version"]}
    if demo:
        cohort_task = synthesize(config_json=p["synthesize_config"], **run)
        cpu_task(cohort_task, cpus="2", memory="8G")
        cohort = cohort_task.outputs["cohort"]
        label_priors = priors(config_json=p["priors_config"], cohort=cohort, **run)
        ingest = preprocess(config_json=p["preprocess_config"], cohort=cohort, **key, **run)
        answer_key = {"cohort": cohort}  # the synthetic answer key: clean labels and masks
        inputs: tuple[dsl.PipelineTask, ...] = (cohort_task, label_priors, ingest)
    else:
        s3 = {"s3_endpoint_url": p["s3_endpoint_url"]}
        label_priors = priors(
            config_json=p["priors_config"],
            labels_uri=p["labels_uri"],
            reread_uri=p["reread_uri"],
            reread_layout=p["reread_layout"],
            **s3,
            **run,
        )
        if ingest_partitions > 1:
            ingest, source_reader = partitioned_ingest(p, ingest_partitions, run)
        else:
            ingest = source_reader = preprocess(
                config_json=p["preprocess_config"],
                source_uri=p["source_uri"],
                labels_uri=p["labels_uri"],
                **s3,
                **key,
                **run,
            )
        answer_key = {}  # a real archive has none: metrics against the text-mined labels
        inputs = (label_priors, source_reader) + (() if ingest is source_reader else (ingest,))
        for task in (label_priors, source_reader):
            # their input lives outside the pipeline: a cached result would miss new files
            task.set_caching_options(False)
            _secret_env(task, S3_SECRET, {k: k for k in S3_SECRET_KEYS})
        ingest.set_caching_options(False)  # a merge of uncached partitions: nothing to reuse
    cpu_task(label_priors, cpus="2", memory="4G")
    cpu_task(ingest, cpus="2", memory="8G")
    _secret_env(ingest, DEID_KEY_SECRET, {DEID_KEY_SECRET_KEY: "CXRPRIV_DEID_KEY"})
    return _InputTasks(
        label_priors, ingest, answer_key, inputs, () if demo else (label_priors, source_reader)
    )


def build_pipeline(
    params_file: Path = DEFAULT_PARAMS_FILE,
    profile: str | None = None,
    *,
    demo: bool = False,
    checkpoint_pvc: str | None = None,
    ingest_partitions: int = 1,
) -> Any:
    """The own-archive pipeline (``demo=False``) or the demo pipeline on the synthetic cohort; with
    ``checkpoint_pvc`` (the default of the ``checkpoint_pvc`` parameter) the training tasks mount that PVC
    for their checkpoints (KFP cannot make a mount depend on a parameter's value, so it is compiled in).
    ``ingest_partitions`` > 1 (own archive only) ingests the archive in that many parallel tasks and a
    merge, whose dataset equals the single task's; compiled in too, as the graph's shape (a ``dsl.If``
    between the two would need ``dsl.OneOf``, which ``kfp.local`` cannot run)."""
    if ingest_partitions < 1:
        raise ValueError(f"ingest_partitions {ingest_partitions}: need 1 (one ingest task) or more")
    if demo and ingest_partitions > 1:
        raise ValueError("ingest_partitions: the demo pipeline ingests the synthetic cohort in one task")
    defaults = stage_defaults(params_file, profile)
    parameters = pipeline_parameters(defaults, demo=demo, checkpoint_pvc=checkpoint_pvc)

    def graph(p: dict[str, Any]) -> None:
        run = {"profile": p["profile"], "pipeline_run": dsl.PIPELINE_JOB_NAME_PLACEHOLDER}
        sources = _input_tasks(p, run, demo=demo, ingest_partitions=ingest_partitions)
        label_priors, ingest, answer_key = sources.label_priors, sources.ingest, sources.answer_key
        checkpoints = (
            {"checkpoint_dir": CHECKPOINT_MOUNT, "checkpoint_run": dsl.PIPELINE_JOB_ID_PLACEHOLDER}
            if checkpoint_pvc
            else {}
        )

        def training(task: dsl.PipelineTask) -> None:
            gpu_task(task, gpus=1)
            task.set_retry(num_retries=TRAINING_RETRIES, backoff_duration=RETRY_BACKOFF)
            if checkpoint_pvc:
                kubernetes.mount_pvc(task, pvc_name=p["checkpoint_pvc"], mount_path=CHECKPOINT_MOUNT)

        dataset = ingest.outputs["dataset"]
        priors_out = label_priors.outputs["label_priors"]
        verifier = train_reid(config_json=p["train_reid_config"], dataset=dataset, **checkpoints, **run)
        training(verifier)
        classifier = train_classifier(
            config_json=p["train_classifier_config"],
            dataset=dataset,
            label_priors=priors_out,
            **answer_key,
            **checkpoints,
            **run,
        )
        training(classifier)
        generator = train_anonymizer(
            config_json=p["train_anonymizer_config"],
            dataset=dataset,
            verifier=verifier.outputs["verifier"],
            classifier=classifier.outputs["classifier"],
            label_priors=priors_out,
            **checkpoints,
            **run,
        )
        training(generator)
        anonymized = anonymize(
            config_json=p["anonymize_config"],
            dataset=dataset,
            anonymizer=generator.outputs["anonymizer"],
            **run,
        )
        gpu_task(anonymized, gpus=1)
        evaluation = evaluate(
            config_json=p["evaluate_config"],
            attackers_json=p["evaluate_attackers"],
            train_reid_json=p["train_reid_config"],
            train_classifier_json=p["train_classifier_config"],
            dataset=dataset,
            anonymized=anonymized.outputs["anonymized"],
            verifier=verifier.outputs["verifier"],
            classifier=classifier.outputs["classifier"],
            label_priors=priors_out,
            **answer_key,
            **checkpoints,
            **run,
        )
        training(evaluation)
        published = release(
            config_json=p["release_config"],
            dataset=anonymized.outputs["anonymized"],
            evaluation=evaluation.outputs["evaluation"],
            report=evaluation.outputs["evaluation"],
            force_release_reason=p["force_release_reason"],
            **run,
        )
        cpu_task(published, cpus="2", memory="8G")
        _secret_env(published, DEID_KEY_SECRET, {DEID_KEY_SECRET_KEY: "CXRPRIV_DEID_KEY"})
        for task in (*sources.tasks, verifier, classifier, generator, anonymized, evaluation, published):
            _tracking_env(task, reads_archive=any(task is t for t in sources.archive_readers))

    if demo:
        name, description = DEMO_PIPELINE_NAME, "cxr-privacy on the synthetic demo cohort."
    else:
        name, description = PIPELINE_NAME, "Privacy-preserving release of your chest radiograph archive."
    function = _pipeline_function(parameters, graph)
    function.__name__ = name.replace("-", "_")
    return dsl.pipeline(name=name, description=description)(function)


def compile_pipeline(
    out: Path,
    params_file: Path = DEFAULT_PARAMS_FILE,
    profile: str | None = None,
    *,
    demo: bool = False,
    checkpoint_pvc: str | None = None,
    ingest_partitions: int = 1,
) -> Path:
    pipeline = build_pipeline(
        params_file, profile, demo=demo, checkpoint_pvc=checkpoint_pvc, ingest_partitions=ingest_partitions
    )
    compiler.Compiler().compile(pipeline, str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compile a cxr-privacy pipeline to KFP YAML.")
    parser.add_argument("--params", type=Path, default=DEFAULT_PARAMS_FILE)
    parser.add_argument("--profile", default=None, help="Profile whose values become the defaults.")
    parser.add_argument("--demo", action="store_true", help="The demo pipeline on the synthetic cohort.")
    parser.add_argument(
        "--checkpoint-pvc",
        default=None,
        metavar="NAME",
        help="Mount this PersistentVolumeClaim for the training tasks' checkpoints (the default of the "
        "pipeline's checkpoint_pvc parameter); without it checkpoints live and die with the pod.",
    )
    parser.add_argument(
        "--ingest-partitions",
        type=int,
        default=1,
        metavar="N",
        help="Ingest the archive in N parallel tasks over partitions of its listing, then a merge (same "
        "dataset as one task); default 1: one ingest task. Not with --demo.",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="Output YAML (default: pipelines/cxr_privacy[_demo].<profile>.yaml).",
    )
    args = parser.parse_args(argv)
    profile = args.profile or read_params(args.params).get("profile", "default")
    out = args.out or Path("pipelines") / f"cxr_privacy{'_demo' if args.demo else ''}.{profile}.yaml"
    compile_pipeline(
        out,
        args.params,
        args.profile,
        demo=args.demo,
        checkpoint_pvc=args.checkpoint_pvc,
        ingest_partitions=args.ingest_partitions,
    )
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
