"""`python -m pipelines submit|schedule` against a real kfp.Client whose API calls are intercepted: the
request bodies are kfp's own (V2beta1Run, V2beta1RecurringRun), no network is used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import pytest

from pipelines.client import SubmitError, cron_expression, main
from tests.conftest import PARAMS


class Requests:
    """The request bodies the client sent, by API call."""

    def __init__(self) -> None:
        self.runs: list[kfp_server_api.V2beta1Run] = []
        self.recurring: list[kfp_server_api.V2beta1RecurringRun] = []
        self.experiments: list[kfp_server_api.V2beta1Experiment] = []


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> Requests:
    sent = Requests()

    def healthz(self: Any, **_: Any) -> Any:
        return kfp_server_api.V2beta1GetHealthzResponse(multi_user=False)

    def list_experiments(self: Any, **_: Any) -> Any:
        return kfp_server_api.V2beta1ListExperimentsResponse(experiments=[], total_size=0)

    def create_experiment(self: Any, experiment: kfp_server_api.V2beta1Experiment, **_: Any) -> Any:
        sent.experiments.append(experiment)
        experiment.experiment_id = "exp-1"
        return experiment

    def create_run(self: Any, run: kfp_server_api.V2beta1Run, **_: Any) -> Any:
        sent.runs.append(run)
        run.run_id = "run-1"
        return run

    def create_recurring_run(self: Any, recurring_run: kfp_server_api.V2beta1RecurringRun, **_: Any) -> Any:
        sent.recurring.append(recurring_run)
        recurring_run.recurring_run_id = "recurring-1"
        return recurring_run

    api = kfp_server_api
    monkeypatch.setattr(api.HealthzServiceApi, "healthz_service_get_healthz", healthz)
    monkeypatch.setattr(api.ExperimentServiceApi, "experiment_service_list_experiments", list_experiments)
    monkeypatch.setattr(api.ExperimentServiceApi, "experiment_service_create_experiment", create_experiment)
    monkeypatch.setattr(api.RunServiceApi, "run_service_create_run", create_run)
    monkeypatch.setattr(
        api.RecurringRunServiceApi, "recurring_run_service_create_recurring_run", create_recurring_run
    )
    return sent


def _client(args: Any) -> kfp.Client:
    return kfp.Client(host="http://kfp.invalid", namespace=args.namespace)


def _specs(body: Any) -> tuple[dict, dict]:
    """(pipeline spec, Kubernetes platform spec) of a request body, as kfp sends them (proto JSON)."""
    return body.pipeline_spec["pipeline_spec"], body.pipeline_spec["platform_spec"]


def _cached(spec: dict) -> dict[str, bool]:
    tasks = spec["root"]["dag"]["tasks"]
    return {name: task.get("cachingOptions", {}).get("enableCache", False) for name, task in tasks.items()}


ARCHIVE = ["--source-uri", "s3://pacs-export/2024/", "--labels-uri", "s3://pacs-export/labels.csv"]


def test_submit_on_an_archive_sends_the_source_and_keeps_the_compiled_caching(requests: Requests, capsys):
    argv = ["submit", "--params", str(PARAMS), *ARCHIVE, "--s3-endpoint-url", "http://minio:9000"]
    argv += ["--key-version", "2024-1", "--arg", "throwaway_key=false", "--run-name", "first"]
    assert main(argv, client_factory=_client) == 0
    assert "submit: run-1" in capsys.readouterr().out
    (run,) = requests.runs
    assert run.display_name == "first" and run.experiment_id == "exp-1"
    assert requests.experiments[0].display_name == "cxr-privacy"
    assert run.runtime_config.parameters == {
        "source_uri": "s3://pacs-export/2024/",
        "labels_uri": "s3://pacs-export/labels.csv",
        "s3_endpoint_url": "http://minio:9000",
        "key_version": "2024-1",
        "throwaway_key": False,
    }
    spec, platform = _specs(run)
    assert spec["pipelineInfo"]["name"] == "cxr-privacy"
    # no enable_caching was sent: ingest and priors stay uncached, as compiled
    cached = _cached(spec)
    assert not cached["preprocess"] and not cached["priors"] and cached["train-reid"]
    # the platform spec travels with it: the secrets the ingest step reads (the archive's, the key, and the
    # tracking settings every task reads)
    secrets = {
        e["secretName"]
        for e in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-preprocess"][
            "secretAsEnv"
        ]
    }
    assert secrets == {"cxrpriv-s3", "cxrpriv-deid-key", "cxrpriv-tracking"}


def test_submit_without_a_source_runs_the_demo_pipeline(requests: Requests):
    assert main(["submit", "--params", str(PARAMS)], client_factory=_client) == 0
    (run,) = requests.runs
    spec, _ = _specs(run)
    assert spec["pipelineInfo"]["name"] == "cxr-privacy-demo"
    assert "synthesize" in spec["root"]["dag"]["tasks"]
    assert run.runtime_config.parameters == {}


def test_schedule_creates_a_recurring_run_on_the_cron(requests: Requests, capsys):
    argv = ["schedule", "--params", str(PARAMS), *ARCHIVE, "--cron", "0 2 * * 0", "--name", "weekly"]
    argv += ["--checkpoint-pvc", "cxrpriv-checkpoints"]
    assert main(argv, client_factory=_client) == 0
    assert "schedule: recurring-1" in capsys.readouterr().out
    (job,) = requests.recurring
    assert job.display_name == "weekly" and job.experiment_id == "exp-1"
    assert job.trigger.cron_schedule.cron == "0 0 2 * * 0"  # KFP's six fields, seconds first
    assert job.max_concurrency == 1 and job.no_catchup is True
    assert job.mode == kfp_server_api.RecurringRunMode.ENABLE
    assert job.runtime_config.parameters["source_uri"] == "s3://pacs-export/2024/"
    spec, platform = _specs(job)
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["checkpoint_pvc"]["defaultValue"] == "cxrpriv-checkpoints"
    assert not _cached(spec)["preprocess"]
    assert "pvcMount" in platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train-reid"]


def test_a_schedule_on_the_demo_cohort_is_refused_as_a_no_op(requests: Requests, capsys):
    assert main(["schedule", "--params", str(PARAMS), "--cron", "0 0 2 * * 0"], client_factory=_client) == 2
    assert "no-op" in capsys.readouterr().err
    assert not requests.recurring


def test_an_unknown_parameter_is_an_error_not_an_ignored_argument(requests: Requests, capsys):
    argv = ["submit", "--params", str(PARAMS), *ARCHIVE, "--arg", "sorce_uri=/data"]
    assert main(argv, client_factory=_client) == 2
    assert "sorce_uri" in capsys.readouterr().err and not requests.runs


def test_a_precompiled_package_is_sent_as_is(requests: Requests, tmp_path: Path):
    from pipelines.cxr_privacy import compile_pipeline

    package = compile_pipeline(tmp_path / "p.yaml", PARAMS, "paper")
    assert main(["submit", "--package", str(package), *ARCHIVE], client_factory=_client) == 0
    inputs = _specs(requests.runs[0])[0]["root"]["inputDefinitions"]["parameters"]
    assert inputs["profile"]["defaultValue"] == "paper"


def test_cron_expressions():
    assert cron_expression("0 0 2 * * 0") == "0 0 2 * * 0"
    assert cron_expression("30 1 * * 1-5") == "0 30 1 * * 1-5"
    with pytest.raises(SubmitError, match="6 fields"):
        cron_expression("weekly")


def test_submit_compiles_the_partitioned_ingest_when_asked(requests: Requests, capsys):
    argv = ["submit", "--params", str(PARAMS), *ARCHIVE, "--ingest-partitions", "4"]
    assert main(argv, client_factory=_client) == 0
    tasks = _specs(requests.runs[0])[0]["root"]["dag"]["tasks"]
    assert "preprocess-merge" in tasks and "preprocess" not in tasks
    # the demo cohort is ingested in one task: asking for partitions there is an error, not ignored
    assert main(["submit", "--params", str(PARAMS), "--ingest-partitions", "4"], client_factory=_client) == 2
    assert "--source-uri" in capsys.readouterr().err and len(requests.runs) == 1
