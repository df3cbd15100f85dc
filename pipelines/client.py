"""Submit a run, or schedule recurring runs, of a cxr-privacy pipeline on a Kubeflow Pipelines server.

    python -m pipelines submit --host https://kfp.example.org --source-uri s3://pacs-export/2024/ \\
        --labels-uri s3://pacs-export/labels.csv --s3-endpoint-url https://minio.example.org \\
        --key-version 2024-1
    python -m pipelines schedule --host https://kfp.example.org --source-uri s3://pacs-export/current/ \\
        --cron "0 0 2 * * 0" --name weekly-retrain

Without ``--package`` the pipeline is compiled from ``params.yaml`` under ``--profile`` (with the image of
``CXRPRIV_IMAGE``; ``--checkpoint-pvc`` and ``--ingest-partitions N`` as for ``pipelines.cxr_privacy``);
without ``--source-uri`` a submit runs the demo pipeline on the synthetic cohort. A run keeps the compiled
caching flags (``enable_caching`` is never sent): the steps that read the archive (ingest, priors) are never
cached, so each scheduled run re-reads it, and what comes after reruns when their result changes. A schedule
on the demo pipeline is refused: every step would be cached and every run a no-op.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from cxrpriv.config import DEFAULT_PARAMS_FILE

DEFAULT_EXPERIMENT = "cxr-privacy"
# Source options -> pipeline parameters (the own-archive pipeline's).
SOURCE_OPTIONS = ("source_uri", "labels_uri", "reread_uri", "reread_layout", "s3_endpoint_url")


class SubmitError(ValueError):
    """The request cannot be made as asked; the message says why."""


def cron_expression(text: str) -> str:
    """KFP's six-field cron (seconds first: ``0 0 2 * * 0`` is Sundays at 02:00); a standard five-field
    expression gets ``0`` seconds prepended."""
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    if len(fields) != 6:
        raise SubmitError(
            f"cron {text!r}: expected 6 fields (second minute hour day-of-month month day-of-week) or 5"
        )
    return " ".join(fields)


def package_parameters(package: Path) -> dict[str, Any]:
    """The pipeline's input parameters and their defaults, from a compiled package."""
    spec = next(yaml.safe_load_all(package.read_text()))
    return dict(spec["root"].get("inputDefinitions", {}).get("parameters", {}))


def pipeline_arguments(args: argparse.Namespace, parameters: dict[str, Any]) -> dict[str, Any]:
    """The run's arguments: the source options that were given, ``--key-version``, ``--checkpoint-pvc`` and
    each ``--arg NAME=VALUE``; every name must be a parameter of the package (a typo is an error, not an
    ignored argument)."""
    arguments: dict[str, Any] = {}
    for name in SOURCE_OPTIONS:
        if getattr(args, name, None):
            arguments[name] = getattr(args, name)
    if args.key_version:
        arguments["key_version"] = args.key_version
    for item in args.arg or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise SubmitError(f"--arg {item!r}: expected NAME=VALUE")
        kind = parameters.get(name, {}).get("parameterType")
        arguments[name] = value.lower() in ("1", "true", "yes") if kind == "BOOLEAN" else value
    unknown = sorted(set(arguments) - set(parameters))
    if unknown:
        raise SubmitError(
            f"not parameters of this pipeline: {', '.join(unknown)} (it has: {', '.join(sorted(parameters))})"
        )
    return arguments


def _package(args: argparse.Namespace, folder: Path) -> Path:
    if args.package:
        return Path(args.package)
    from pipelines.cxr_privacy import compile_pipeline

    demo = not args.source_uri
    if demo and args.ingest_partitions > 1:
        raise SubmitError("--ingest-partitions needs --source-uri: the demo cohort is ingested in one task")
    out = folder / f"cxr_privacy{'_demo' if demo else ''}.yaml"
    return compile_pipeline(
        out,
        args.params,
        args.profile,
        demo=demo,
        checkpoint_pvc=args.checkpoint_pvc,
        ingest_partitions=args.ingest_partitions,
    )


def _is_demo(parameters: dict[str, Any]) -> bool:
    return "source_uri" not in parameters


def submit(args: argparse.Namespace, client: Any) -> Any:
    """One run of the pipeline; returns kfp's ``RunPipelineResult``."""
    with tempfile.TemporaryDirectory() as tmp:
        package = _package(args, Path(tmp))
        parameters = package_parameters(package)
        arguments = pipeline_arguments(args, parameters)
        if not _is_demo(parameters) and "source_uri" not in arguments:
            raise SubmitError("this pipeline reads your archive: give --source-uri (a folder or s3://...)")
        return client.create_run_from_pipeline_package(
            str(package),
            arguments=arguments,
            run_name=args.run_name,
            experiment_name=args.experiment,
            namespace=args.namespace,
            # enable_caching stays None: a value here would override every task's compiled flag
        )


def schedule(args: argparse.Namespace, client: Any) -> Any:
    """A recurring run on ``--cron``; returns kfp's ``V2beta1RecurringRun``."""
    cron = cron_expression(args.cron)
    with tempfile.TemporaryDirectory() as tmp:
        package = _package(args, Path(tmp))
        parameters = package_parameters(package)
        if _is_demo(parameters):
            raise SubmitError(
                "a schedule needs --source-uri: on the demo cohort every step is cached, so every scheduled "
                "run would be a no-op"
            )
        arguments = pipeline_arguments(args, parameters)
        if "source_uri" not in arguments:
            raise SubmitError("a schedule needs --source-uri (a folder or s3:// prefix)")
        experiment = client.create_experiment(args.experiment, namespace=args.namespace)
        return client.create_recurring_run(
            experiment.experiment_id,
            args.name,
            description=f"cxr-privacy retraining on {arguments['source_uri']} ({cron})",
            cron_expression=cron,
            max_concurrency=1,  # a retraining run never overlaps the previous one
            no_catchup=True,  # after a pause, one run, not one per missed slot
            params=arguments,
            pipeline_package_path=str(package),
        )


def _client(args: argparse.Namespace) -> Any:
    import kfp

    return kfp.Client(host=args.host, namespace=args.namespace, existing_token=args.token)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("submit", "Start one run (the demo pipeline without --source-uri)."),
        ("schedule", "Create a recurring run (retraining on a cron)."),
    ):
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--host", default=os.environ.get("KFP_HOST"), help="KFP API endpoint ($KFP_HOST).")
        sub.add_argument("--namespace", default=os.environ.get("KFP_NAMESPACE", "kubeflow"))
        sub.add_argument("--token", default=os.environ.get("KFP_TOKEN"), help="Bearer token ($KFP_TOKEN).")
        sub.add_argument("--experiment", default=DEFAULT_EXPERIMENT)
        sub.add_argument("--package", default=None, help="A compiled pipeline YAML (default: compile one).")
        sub.add_argument("--params", type=Path, default=DEFAULT_PARAMS_FILE)
        sub.add_argument("--profile", default=None, help="Profile whose values become the defaults.")
        sub.add_argument("--checkpoint-pvc", default=None, metavar="NAME", help="PVC for checkpoints.")
        sub.add_argument(
            "--ingest-partitions",
            type=int,
            default=1,
            metavar="N",
            help="Ingest the archive in N parallel tasks and a merge (compiled in; default 1: one task).",
        )
        sub.add_argument("--source-uri", help="Your DICOM archive: a folder the pods can read, or s3://...")
        sub.add_argument("--labels-uri", help="Its labels table (Data_Entry_2017 format), path or s3://.")
        sub.add_argument("--reread-uri", help="Radiologist re-reads for the label priors (optional).")
        sub.add_argument("--reread-layout", help="Layout of the re-read table (default: auto).")
        sub.add_argument("--s3-endpoint-url", help="S3 endpoint (e.g. MinIO); default AWS.")
        sub.add_argument("--key-version", help="Version of the de-identification key in the secret.")
        sub.add_argument(
            "--arg", action="append", metavar="NAME=VALUE", help="Any other pipeline parameter; repeat."
        )
        if name == "submit":
            sub.add_argument("--run-name", default=None)
        else:
            sub.add_argument("--cron", required=True, help='e.g. "0 0 2 * * 0": Sundays at 02:00 (6 fields).')
            sub.add_argument("--name", default="cxr-privacy-retrain", help="The recurring run's name.")
    return parser


def main(
    argv: Sequence[str] | None = None, client_factory: Callable[[argparse.Namespace], Any] = _client
) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "schedule":
            cron_expression(args.cron)  # before connecting
        client = client_factory(args)
        result = (submit if args.command == "submit" else schedule)(args, client)
    except SubmitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    ident = getattr(result, "run_id", None) or getattr(result, "recurring_run_id", None)
    print(f"{args.command}: {ident}")
    return 0
