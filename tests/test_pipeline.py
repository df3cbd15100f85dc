"""The KFP pipeline compiles with params.yaml defaults and runs under kfp.local."""

import dataclasses
import json
from pathlib import Path

import mlflow
import pytest
import yaml
from kfp import compiler, dsl, local

from cxrpriv.config import read_params, stage_values
from pipelines.cxr_privacy import build_pipeline, stage_defaults
from pipelines.resources import gpu_task
from tests.conftest import PARAMS, tiny_synth_config


def test_defaults_come_from_params_yaml_under_a_profile():
    params = read_params(PARAMS)
    default = stage_defaults(PARAMS, "default")
    paper = stage_defaults(PARAMS, "paper")
    assert json.loads(default["synthesize_config"]) == stage_values(params, "synthesize", "default")
    assert json.loads(paper["synthesize_config"]) == stage_values(params, "synthesize", "paper")
    assert paper["profile"] == "paper"
    assert json.loads(paper["preprocess_config"])["image_size"] == 256


def test_pipeline_compiles_with_resources_and_image(tmp_path: Path):
    out = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(build_pipeline(PARAMS, "default"), str(out))
    # two YAML documents: the pipeline spec, then the Kubernetes platform spec (the key's secret)
    spec, platform = yaml.safe_load_all(out.read_text())
    executors = spec["deploymentSpec"]["executors"]
    synth = next(e for name, e in executors.items() if "synthesize" in name)["container"]
    assert synth["image"].endswith("cxrpriv:0.1.0")
    assert synth["resources"]["resourceCpuRequest"] == "2"
    # the image carries kfp and the library: nothing is pip-installed at run time
    assert "pip install" not in out.read_text()
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert json.loads(inputs["synthesize_config"]["defaultValue"])["n_patients"] == 1000
    # the ingest step takes its key from a Kubernetes secret; a throwaway key is opt-in
    assert inputs["throwaway_key"]["defaultValue"] is False
    secrets = json.dumps(platform)
    assert "cxrpriv-deid-key" in secrets and "CXRPRIV_DEID_KEY" in secrets


def test_gpu_task_requests_an_accelerator(tmp_path: Path):
    @dsl.component(base_image="python:3.11")
    def train() -> None:
        pass

    @dsl.pipeline(name="gpu-pattern")
    def pipeline() -> None:
        gpu_task(train(), gpus=1)

    out = tmp_path / "gpu.yaml"
    compiler.Compiler().compile(pipeline, str(out))
    container = yaml.safe_load(out.read_text())["deploymentSpec"]["executors"]["exec-train"]["container"]
    assert container["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert container["resources"]["accelerator"]["resourceCount"] == "1"


@pytest.mark.slow  # every stage in a subprocess: ~2 min
def test_pipeline_runs_under_kfp_local(tmp_path: Path, isolated_mlflow: str, monkeypatch: pytest.MonkeyPatch):
    # The key as the cluster secret gives it (release needs the key ingest used; a throwaway one is lost)
    monkeypatch.setenv("CXRPRIV_DEID_KEY", "ab" * 32)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    tiny = json.dumps(dataclasses.asdict(tiny_synth_config(n_patients=6, reread_fraction=1.0)))
    pipeline = build_pipeline(PARAMS, "default")
    ingest = json.dumps({**stage_values(read_params(PARAMS), "preprocess", "default"), "workers": 1})
    classifier = json.dumps(
        {
            **stage_values(read_params(PARAMS), "train_classifier", "default"),
            **{"image_size": 32, "width": 4, "depth": 2, "stem": 1, "max_epochs": 1, "n_boot": 10},
        }
    )
    verifier = json.dumps(
        {
            **stage_values(read_params(PARAMS), "train_reid", "default"),
            **{"image_size": 32, "width": 4, "depth": 2, "max_epochs": 1, "max_steps_per_epoch": 2},
            **{"n_boot": 10, "retrieval_k": 5},
        }
    )
    params = read_params(PARAMS)
    anonymizer = json.dumps(
        {
            **stage_values(params, "train_anonymizer", "default"),
            **{
                "widths": [4, 8],
                "image_size": 32,
                "max_epochs": 1,
                "max_steps_per_epoch": 2,
                "batch_size": 8,
            },
        }
    )
    tiny_attack = {"max_epochs": 1, "max_steps_per_epoch": 2, "n_boot": 10, "retrieval_k": 5}
    attackers = {
        name: {**stage_values(params, "train_reid", name), **json.loads(verifier), **tiny_attack}
        for name in ("default", "siamese")
    }
    attackers["siamese"]["method"] = "siamese"
    evaluate = json.dumps({**stage_values(params, "evaluate", "default"), "attacker_seeds": [1]})
    pipeline(
        synthesize_config=tiny,
        preprocess_config=ingest,
        train_reid_config=verifier,
        train_classifier_config=classifier,
        train_anonymizer_config=anonymizer,
        evaluate_config=evaluate,
        evaluate_attackers=json.dumps(attackers),
    )
    produced = list((tmp_path / "root").rglob("Data_Entry_2017.csv"))
    assert produced, f"no cohort written under {tmp_path / 'root'}"
    metrics = [p for p in (tmp_path / "root").rglob("metrics*.json") if "synthesize" in p.parts]
    assert metrics and "naive_attacker_auc" in metrics[0].read_text()
    # the component's MLflow run carries the KFP run name as its pipeline-run tag
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    tags = {r.data.tags["cxrpriv.stage"]: r.data.tags["cxrpriv.pipeline_run"] for r in runs}
    assert tags["synthesize"].startswith("cxr-privacy-")
    assert tags["preprocess"] == tags["synthesize"] == tags["priors"]
    assert list((tmp_path / "root").rglob("manifest.parquet")), "the ingest step wrote its dataset"
    # the priors step read the cohort's re-read table and wrote the file the classifier will read
    (priors_file,) = (tmp_path / "root").rglob("priors.json")
    doc = json.loads(priors_file.read_text())
    assert doc["tables"][0]["layout"] == "reader_wide" and doc["tables"][0]["n_images"] > 0
    assert list((tmp_path / "root").rglob("priors_summary.json"))
    # the classifier read the ingest output, the priors and the cohort's answer key (clean labels)
    (evaluation,) = [p for p in (tmp_path / "root").rglob("evaluation.json") if p.parent.name == "classifier"]
    assert json.loads(evaluation.read_text())["clean"]["source"] == "answer_key"
    assert list((tmp_path / "root").rglob("model.pt"))
    # the verifier trained on the ingest output and left a model the anonymizer can rebuild
    (spec,) = [p for p in (tmp_path / "root").rglob("spec.json") if "reid" in p.read_text()]
    assert json.loads(spec.read_text())["builder"] == "cxrpriv.reid.embedding:build_embedder"
    assert list((tmp_path / "root").rglob("train_reid_summary.json"))
    # the anonymizer trained against both, anonymize wrote a dataset in the ingest format, evaluate decided
    # (a one-epoch anonymizer does not pass the gate) and the release recorded the refusal
    anonymized = [p for p in (tmp_path / "root").rglob("state.json") if "anonymizer" in p.read_text()]
    assert anonymized and (anonymized[0].parent / "manifest.parquet").is_file()
    (decision,) = (tmp_path / "root").rglob("release_decision.json")
    assert json.loads(decision.read_text())["decision"] == "fail"
    assert list((tmp_path / "root").rglob("report.html"))
    (manifest,) = (tmp_path / "root").rglob("release_manifest.json")
    assert json.loads(manifest.read_text())["status"] == "refused"
    assert tags["release"] == tags["evaluate"] == tags["synthesize"]
