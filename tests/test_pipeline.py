"""The KFP pipelines compile with params.yaml defaults (parameters, caching, retries, volumes, secrets) and
run under kfp.local: the demo pipeline on the synthetic cohort, the own-archive pipeline on a folder of DICOM
files that the synthetic cohort did not make."""

import dataclasses
import json
from pathlib import Path

import mlflow
import pytest
import yaml
from kfp import compiler, dsl, local

from components.preprocess.component import preprocess
from cxrpriv.config import read_params, stage_values
from pipelines.cxr_privacy import (
    CHECKPOINT_MOUNT,
    DEID_KEY_SECRET,
    S3_SECRET,
    TRACKING_CONFIG_MAP,
    TRACKING_SECRET,
    TRAINING_TASKS,
    build_pipeline,
    main,
    partitioned_ingest,
    stage_defaults,
)
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
    compiler.Compiler().compile(build_pipeline(PARAMS, "default", demo=True), str(out))
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


def tiny_stage_arguments() -> dict[str, str]:
    """Pipeline arguments that make every stage after the input tiny (one epoch, 32 px, a few steps)."""
    params = read_params(PARAMS)
    ingest = json.dumps({**stage_values(params, "preprocess", "default"), "workers": 1})
    classifier = json.dumps(
        {
            **stage_values(params, "train_classifier", "default"),
            **{"image_size": 32, "width": 4, "depth": 2, "stem": 1, "max_epochs": 1, "n_boot": 10},
        }
    )
    verifier = json.dumps(
        {
            **stage_values(params, "train_reid", "default"),
            **{"image_size": 32, "width": 4, "depth": 2, "max_epochs": 1, "max_steps_per_epoch": 2},
            **{"n_boot": 10, "retrieval_k": 5},
        }
    )
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
    return {
        "preprocess_config": ingest,
        "train_reid_config": verifier,
        "train_classifier_config": classifier,
        "train_anonymizer_config": anonymizer,
        "evaluate_config": evaluate,
        "evaluate_attackers": json.dumps(attackers),
    }


@pytest.mark.slow  # every stage in a subprocess: ~2 min
def test_pipeline_runs_under_kfp_local(tmp_path: Path, isolated_mlflow: str, monkeypatch: pytest.MonkeyPatch):
    # The key as the cluster secret gives it (release needs the key ingest used; a throwaway one is lost)
    monkeypatch.setenv("CXRPRIV_DEID_KEY", "ab" * 32)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    tiny = json.dumps(dataclasses.asdict(tiny_synth_config(n_patients=6, reread_fraction=1.0)))
    pipeline = build_pipeline(PARAMS, "default", demo=True)
    pipeline(synthesize_config=tiny, **tiny_stage_arguments())
    produced = list((tmp_path / "root").rglob("Data_Entry_2017.csv"))
    assert produced, f"no cohort written under {tmp_path / 'root'}"
    metrics = [p for p in (tmp_path / "root").rglob("metrics*.json") if "synthesize" in p.parts]
    assert metrics and "naive_attacker_auc" in metrics[0].read_text()
    # the component's MLflow run carries the KFP run name as its pipeline-run tag
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    tags = {  # the stage runs (the execution's parent run has no stage)
        r.data.tags["cxrpriv.stage"]: r.data.tags["cxrpriv.pipeline_run"]
        for r in runs
        if "cxrpriv.stage" in r.data.tags
    }
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


# --- the own-archive pipeline: parameters, caching, retries, volumes, secrets in the compiled YAML ---------


def _compiled(tmp_path: Path, **options) -> tuple[dict, dict]:
    out = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(build_pipeline(PARAMS, "default", **options), str(out))
    spec, platform = yaml.safe_load_all(out.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _caching(spec: dict) -> dict[str, bool]:
    # KFP writes `cachingOptions: {}` for a task with caching off (the proto's default false)
    tasks = spec["root"]["dag"]["tasks"]
    return {name: task["cachingOptions"].get("enableCache", False) for name, task in tasks.items()}


def test_own_archive_pipeline_takes_a_source_and_rereads_it_on_every_run(tmp_path: Path):
    spec, platform = _compiled(tmp_path)
    assert spec["pipelineInfo"]["name"] == "cxr-privacy"
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    for name in ("source_uri", "labels_uri", "reread_uri", "s3_endpoint_url", "key_version"):
        assert inputs[name]["parameterType"] == "STRING" and inputs[name]["defaultValue"] == "", name
    assert "synthesize_config" not in inputs and "checkpoint_pvc" not in inputs
    tasks = spec["root"]["dag"]["tasks"]
    assert "synthesize" not in tasks
    # the steps reading outside the pipeline are never cached; everything downstream is, keyed on their output
    caching = _caching(spec)
    assert not caching["preprocess"] and not caching["priors"]
    assert all(on for name, on in caching.items() if name not in ("preprocess", "priors")), caching
    ingest = tasks["preprocess"]["inputs"]["parameters"]
    for name in ("source_uri", "labels_uri", "s3_endpoint_url", "key_version"):
        assert ingest[name]["componentInputParameter"] == name  # the key's version is in its cache key
    assert "artifacts" not in tasks["preprocess"].get("inputs", {})  # the archive is read in place
    # no answer key for a real archive: the classifier and the evaluation get no cohort
    for name in ("train-classifier", "evaluate"):
        assert "cohort" not in tasks[name]["inputs"]["artifacts"], name
    # S3 credentials from an optional secret for the steps reading the archive; the key for ingest and release
    for name in ("exec-preprocess", "exec-priors"):
        (s3,) = [e for e in platform[name]["secretAsEnv"] if e["secretName"] == S3_SECRET]
        assert s3["optional"] is True
        assert {k["envVar"] for k in s3["keyToEnv"]} >= {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    for name in ("exec-preprocess", "exec-release"):
        assert any(e["secretName"] == DEID_KEY_SECRET for e in platform[name]["secretAsEnv"]), name
    # training tasks are retried; without --checkpoint-pvc nothing is mounted
    for name in TRAINING_TASKS:
        assert tasks[name.replace("_", "-")]["retryPolicy"]["maxRetryCount"] == 2, name
    assert not any("pvcMount" in executor for executor in platform.values())


@pytest.mark.parametrize("demo", [False, True])
def test_every_task_takes_the_tracking_settings_from_an_optional_config_map_and_secret(tmp_path, demo):
    spec, platform = _compiled(tmp_path, demo=demo)
    executors = {f"exec-{name}" for name in spec["root"]["dag"]["tasks"]}
    assert executors <= set(platform)
    for name in executors:
        (config,) = [c for c in platform[name]["configMapAsEnv"] if c["configMapName"] == TRACKING_CONFIG_MAP]
        assert config["optional"] is True
        assert {k["envVar"] for k in config["keyToEnv"]} >= {"MLFLOW_TRACKING_URI", "CXRPRIV_ARTIFACT_ROOT"}
        (secret,) = [s for s in platform[name]["secretAsEnv"] if s["secretName"] == TRACKING_SECRET]
        assert secret["optional"] is True
        env = {k["envVar"] for k in secret["keyToEnv"]}
        assert {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"} <= env
        # the steps reading the archive take the AWS variables from the archive's secret only
        reads_archive = not demo and name in ("exec-preprocess", "exec-priors")
        assert ("AWS_ACCESS_KEY_ID" in env) is not reads_archive, name


def test_demo_pipeline_synthesizes_caches_everything_and_gives_the_answer_key(tmp_path: Path):
    spec, _ = _compiled(tmp_path, demo=True)
    assert spec["pipelineInfo"]["name"] == "cxr-privacy-demo"
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert "source_uri" not in inputs and "synthesize_config" in inputs
    assert all(_caching(spec).values()), "a demo rerun with nothing changed is a no-op"
    tasks = spec["root"]["dag"]["tasks"]
    key_version = tasks["preprocess"]["inputs"]["parameters"]["key_version"]
    assert key_version == {"componentInputParameter": "key_version"}
    for name in ("preprocess", "priors", "train-classifier", "evaluate"):
        cohort = tasks[name]["inputs"]["artifacts"]["cohort"]["taskOutputArtifact"]
        assert cohort == {"outputArtifactKey": "cohort", "producerTask": "synthesize"}, name


def test_checkpoint_pvc_is_mounted_in_every_training_task_with_a_per_run_folder(tmp_path: Path):
    spec, platform = _compiled(tmp_path, checkpoint_pvc="cxrpriv-checkpoints")
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert inputs["checkpoint_pvc"]["defaultValue"] == "cxrpriv-checkpoints"
    mounted = {name for name, executor in platform.items() if "pvcMount" in executor}
    assert mounted == {f"exec-{name.replace('_', '-')}" for name in TRAINING_TASKS}
    for name in mounted:
        (mount,) = platform[name]["pvcMount"]
        assert mount["mountPath"] == CHECKPOINT_MOUNT
        assert mount["pvcNameParameter"] == {"componentInputParameter": "checkpoint_pvc"}
    tasks = spec["root"]["dag"]["tasks"]
    for name in TRAINING_TASKS:
        parameters = tasks[name.replace("_", "-")]["inputs"]["parameters"]
        assert parameters["checkpoint_dir"]["runtimeValue"]["constant"] == CHECKPOINT_MOUNT
        # the run's ID: retries of a run share the checkpoint, a later run never resumes from it
        assert parameters["checkpoint_run"]["runtimeValue"]["constant"] == dsl.PIPELINE_JOB_ID_PLACEHOLDER


def test_the_evaluation_report_is_an_html_artifact_for_the_kfp_ui(tmp_path: Path):
    spec, _ = _compiled(tmp_path)
    outputs = spec["components"]["comp-evaluate"]["outputDefinitions"]["artifacts"]
    assert outputs["report_html"]["artifactType"]["schemaTitle"] == "system.HTML"


# --- the own-archive pipeline under kfp.local on DICOM files the synthetic cohort did not make ------------

FINDING_CYCLE = ("No Finding", "Effusion", "Cardiomegaly|Effusion", "Atelectasis", "Nodule", "Infiltration")


def _dicom_archive(root: Path, n_patients: int = 8, films: int = 3) -> tuple[Path, Path]:
    """A folder of DICOM files: pydicom-data's RG1 (a real CR chest film) and generated CR films of
    ``n_patients`` patients (a per-patient smooth pattern, per-film noise and shift), with a labels table."""
    import datetime as dt
    import shutil

    import numpy as np
    import pandas as pd
    from pydicom.data import get_testdata_file

    from cxrpriv.synth.dicom_writer import PatientStudyHeader, PixelEncoding, write_radiograph

    archive = root / "archive"
    (archive / "2024" / "batch1").mkdir(parents=True)
    rows = []
    shutil.copy(get_testdata_file("RG1_UNCI.dcm"), archive / "2024" / "RG1_UNCI.dcm")
    rows.append(("RG1_UNCI.dcm", "No Finding", "9RG1", 50, "M", "PA"))
    encoding = PixelEncoding("MONOCHROME2", 12, 1.0, 0.0, "window", "explicit_le", "NO")
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    for patient in range(n_patients):
        phase, freq = rng.uniform(0, 6.28, 2), rng.uniform(2, 5, 2)
        for film in range(films):
            shift = rng.uniform(-0.03, 0.03, 2)
            image = 0.5 + 0.2 * np.sin(freq[0] * 6.28 * (xx + shift[0]) + phase[0]) * np.cos(
                freq[1] * 6.28 * (yy + shift[1]) + phase[1]
            )
            image = np.clip(image + rng.normal(0, 0.03, image.shape), 0, 1).astype(np.float32)
            uid = f"1.2.826.0.1.3680043.8.498.{patient + 10}.{film + 1}"
            header = PatientStudyHeader(
                patient_name=f"TESTPATIENT{patient:02d}^ARCHIVE",
                patient_id=f"MRN7700{patient:03d}",
                birth_date=dt.date(1950 + patient, 3, 14),
                sex="MF"[patient % 2],
                age_years=60 + patient,
                accession_number=f"ACC88{patient:03d}{film}",
                institution_name="ARCHIVE TEST HOSPITAL",
                institution_address="9 ARCHIVE STREET, TESTVILLE",
                referring_physician="REFERRER^RITA^^DR",
                performing_physician="PERFORMER^PAUL^^DR",
                operator_name="OPERATOR^OLGA",
                station_name="CRSTATION9",
                study_date=dt.date(2019, 1 + film, 10 + patient),
                study_time=dt.time(10, 15, film),
                study_description="XR CHEST PA",
                study_instance_uid=f"{uid}.1",
                series_instance_uid=f"{uid}.2",
                sop_instance_uid=f"{uid}.3",
                series_number=1,
                instance_number=1,
                view_position="PA",
                modality="CR",
                manufacturer="TEST MANUFACTURER",
                model_name="TEST MODEL",
                device_serial_number=f"SERIAL99{patient:02d}",
                pixel_spacing_mm=0.2,
            )
            name = f"p{patient:02d}_f{film}.dcm"
            write_radiograph(archive / "2024" / "batch1" / name, image, header, encoding)
            findings = FINDING_CYCLE[(patient + film) % len(FINDING_CYCLE)]
            rows.append((name, findings, header.patient_id, header.age_years, header.sex, "PA"))
    labels = root / "labels.csv"
    columns = ["Image Index", "Finding Labels", "Patient ID", "Patient Age", "Patient Gender"]
    pd.DataFrame(rows, columns=[*columns, "View Position"]).to_csv(labels, index=False)
    return archive, labels


@pytest.mark.slow  # every stage in a subprocess: ~2 min
def test_own_archive_pipeline_runs_under_kfp_local_on_a_dicom_folder(
    tmp_path: Path, isolated_mlflow: str, monkeypatch: pytest.MonkeyPatch
):
    from tests.ingest.conftest import identifying_values, output_texts

    monkeypatch.setenv("CXRPRIV_DEID_KEY", "cd" * 32)
    archive, labels = _dicom_archive(tmp_path / "hospital")
    root = tmp_path / "root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    pipeline = build_pipeline(PARAMS, "default")
    # no re-read table: the priors step is skipped and the models train without priors
    pipeline(source_uri=str(archive), labels_uri=str(labels), key_version="test-1", **tiny_stage_arguments())
    (manifest_path,) = [p for p in root.rglob("manifest.parquet") if "preprocess" in p.parts]
    import pandas as pd

    manifest = pd.read_parquet(manifest_path)
    assert len(manifest) >= 20 and manifest["patient_id"].str.match(r"^P[0-9a-f]{16}$").all()
    (skipped,) = root.rglob("priors_skipped.json")
    assert "re-read" in json.loads(skipped.read_text())["reason"]
    assert not list(root.rglob("priors.json"))
    # the classifier trained without priors and, with no answer key, evaluated on the text-mined labels
    (evaluation,) = [p for p in root.rglob("evaluation.json") if p.parent.name == "classifier"]
    report = json.loads(evaluation.read_text())
    assert report["clean"] is None and report["noisy"] is not None
    (decision,) = root.rglob("release_decision.json")
    assert json.loads(decision.read_text())["decision"] in ("pass", "fail")
    assert [p for p in root.rglob("report_html*") if p.is_file() and p.read_text().startswith("<")]
    (release_manifest,) = root.rglob("release_manifest.json")
    assert json.loads(release_manifest.read_text())["status"] in ("refused", "released")
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    # the stage runs (the execution's parent run has no stage)
    by_stage = {r.data.tags["cxrpriv.stage"]: r for r in runs if "cxrpriv.stage" in r.data.tags}
    assert "synthesize" not in by_stage and "priors" not in by_stage
    assert by_stage["preprocess"].data.tags["cxrpriv.deid_key_version"] == "test-1"
    assert by_stage["train_classifier"].data.params["train_classifier.prior_correction"] == "none"
    for stage in ("train_classifier", "train_anonymizer", "evaluate"):  # each ran without priors, and says so
        assert by_stage[stage].data.tags["cxrpriv.priors"] == "skipped", stage
    # raw DICOM never became an artifact: no identifying header value in anything the pipeline wrote
    secrets = {v for v in identifying_values(archive) if len(v) >= 6}
    assert len(secrets) > 40
    assert not list(root.rglob("*.dcm")) or all("release" in p.parts for p in root.rglob("*.dcm"))
    leaks = {(name, v) for name, text in output_texts(root).items() for v in secrets if v in text}
    assert not leaks, sorted(leaks)[:5]


# --- partitioned ingest (--ingest-partitions N): a ParallelFor over partitions of the listing, a merge -----


def _secrets(platform: dict, executor: str) -> set[str]:
    return {e["secretName"] for e in platform[executor]["secretAsEnv"]}


def test_partitioned_ingest_compiles_to_a_parallel_for_and_a_merge_feeding_the_graph(tmp_path: Path):
    spec, platform = _compiled(tmp_path, ingest_partitions=3)
    tasks = spec["root"]["dag"]["tasks"]
    assert "preprocess" not in tasks
    (loop_name,) = [name for name in tasks if name.startswith("for-loop")]
    loop = tasks[loop_name]
    assert json.loads(loop["parameterIterator"]["items"]["raw"]) == ["0/3", "1/3", "2/3"]
    body = spec["components"][loop["componentRef"]["name"]]["dag"]["tasks"]
    partition = body["preprocess-partition"]["inputs"]["parameters"]
    item = loop["parameterIterator"]["itemInput"]
    assert partition["partition"] == {"componentInputParameter": item}
    # each partition reads the archive in place (no artifact in), with the pipeline's source parameters
    assert "artifacts" not in body["preprocess-partition"]["inputs"]
    for name in ("source_uri", "labels_uri", "s3_endpoint_url", "throwaway_key", "preprocess_config"):
        channel = f"pipelinechannel--{name}"
        assert loop["inputs"]["parameters"][channel] == {"componentInputParameter": name}, name
    # the merge collects every partition's partial and its dataset is what every later step reads
    merge = tasks["preprocess-merge"]
    (partials,) = merge["inputs"]["artifacts"].values()
    assert partials["taskOutputArtifact"]["producerTask"] == loop_name
    assert spec["components"]["comp-preprocess-merge"]["inputDefinitions"]["artifacts"]["partials"][
        "isArtifactList"
    ]
    assert merge["inputs"]["parameters"]["key_version"] == {"componentInputParameter": "key_version"}
    for name in ("train-reid", "train-classifier", "train-anonymizer", "anonymize", "evaluate"):
        dataset = tasks[name]["inputs"]["artifacts"]["dataset"]["taskOutputArtifact"]
        assert dataset == {"outputArtifactKey": "dataset", "producerTask": "preprocess-merge"}, name
    # neither the partitions (input outside the pipeline) nor their merge is cached; the rest is, as before
    assert body["preprocess-partition"]["cachingOptions"].get("enableCache", False) is False
    caching = {n: t["cachingOptions"].get("enableCache", False) for n, t in tasks.items() if n != loop_name}
    assert not caching["preprocess-merge"] and not caching["priors"]
    assert all(on for name, on in caching.items() if name not in ("preprocess-merge", "priors")), caching
    # each partition task gets the key and the S3 credentials, as the single ingest task does; the merge,
    # which reads only the partials, gets the key alone; both get the tracking settings, like every task
    assert _secrets(platform, "exec-preprocess-partition") == {DEID_KEY_SECRET, S3_SECRET, TRACKING_SECRET}
    assert _secrets(platform, "exec-preprocess-merge") == {DEID_KEY_SECRET, TRACKING_SECRET}
    executors = spec["deploymentSpec"]["executors"]
    for name in ("exec-preprocess-partition", "exec-preprocess-merge"):
        assert executors[name]["container"]["resources"]["resourceCpuRequest"] == "2", name


def test_one_ingest_partition_is_the_single_task_graph_and_the_demo_refuses_partitions(tmp_path: Path):
    default, partitions_1 = tmp_path / "default.yaml", tmp_path / "one.yaml"
    compiler.Compiler().compile(build_pipeline(PARAMS, "default"), str(default))
    compiler.Compiler().compile(build_pipeline(PARAMS, "default", ingest_partitions=1), str(partitions_1))
    assert partitions_1.read_text() == default.read_text()
    with pytest.raises(ValueError, match="demo"):
        build_pipeline(PARAMS, "default", demo=True, ingest_partitions=2)
    with pytest.raises(ValueError, match="ingest_partitions 0"):
        build_pipeline(PARAMS, "default", ingest_partitions=0)
    out = tmp_path / "three.yaml"
    assert main(["--params", str(PARAMS), "--ingest-partitions", "3", "--out", str(out)]) == 0
    assert "preprocess-merge" in yaml.safe_load_all(out.read_text()).__next__()["root"]["dag"]["tasks"]


def _dataset_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_partition_task_refuses_a_throwaway_key(monkeypatch: pytest.MonkeyPatch):
    from components.preprocess.partitioned import preprocess_partition

    monkeypatch.delenv("CXRPRIV_DEID_KEY", raising=False)
    config = json.dumps(stage_values(read_params(PARAMS), "preprocess", "default"))
    # refused before it lists or writes anything: the merge would find each partition made with another key
    with pytest.raises(ValueError, match="same key in every task"):
        preprocess_partition.python_func(
            config_json=config,
            profile="default",
            pipeline_run="test",
            throwaway_key=True,
            partition="0/2",
            source_uri="/nonexistent",
            partial=None,
            metrics=None,
        )


@pytest.mark.slow  # five tasks in subprocesses: ~35 s on 2 shared cores
def test_partitioned_ingest_under_kfp_local_writes_the_single_task_dataset(
    tmp_path: Path, isolated_mlflow: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("CXRPRIV_DEID_KEY", "ef" * 32)
    archive, labels = _dicom_archive(tmp_path / "hospital", n_patients=6, films=2)
    root = tmp_path / "root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    params = read_params(PARAMS)
    config = json.dumps({**stage_values(params, "preprocess", "default"), "image_size": 64, "workers": 1})

    @dsl.pipeline(name="ingest-both-ways")
    def ingest_both_ways(source_uri: str, labels_uri: str) -> None:
        # the pipeline's own wiring for 3 partitions, beside the single ingest task of today's graph
        p = {
            "preprocess_config": config,
            "source_uri": source_uri,
            "labels_uri": labels_uri,
            "s3_endpoint_url": "",
            "throwaway_key": False,
            "key_version": "test-2",
        }
        run = {"profile": "default", "pipeline_run": dsl.PIPELINE_JOB_NAME_PLACEHOLDER}
        partitioned_ingest(p, 3, run)
        preprocess(
            config_json=config, source_uri=source_uri, labels_uri=labels_uri, throwaway_key=False, **run
        )

    ingest_both_ways(source_uri=str(archive), labels_uri=str(labels))
    (single,) = [p.parent for p in root.rglob("manifest.parquet") if p.parent.parent.name == "preprocess"]
    (merged,) = [p.parent for p in root.rglob("manifest.parquet") if p.parent.parent.name.endswith("-merge")]
    partials = [p.parent for p in root.rglob("partition.json")]
    assert len(partials) == 3
    import pandas as pd

    assert all(len(pd.read_parquet(p / "manifest.parquet")) > 0 for p in partials), "a partition was empty"
    expected = _dataset_files(single)
    assert {"manifest.parquet", "report/files.parquet", "state.json"} <= set(expected)
    assert any(name.endswith(".npy") for name in expected)
    # manifest, image shards and their headers, report, PHI hashes, validation, state: byte for byte
    assert _dataset_files(merged) == expected
    assert len(pd.read_parquet(single / "manifest.parquet")) == 13  # every film of the archive ingested
    # the merge records the stage in MLflow like the single task (one run each here), with the key version
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    runs = client.search_runs([client.get_experiment_by_name("cxr-privacy").experiment_id])
    stages = sorted(r.data.tags["cxrpriv.stage"] for r in runs if "cxrpriv.stage" in r.data.tags)
    assert stages == ["preprocess", "preprocess"]  # and the executions' parent runs, which have no stage
    (merge_run,) = [r for r in runs if r.data.tags.get("cxrpriv.partitions") == "3"]
    assert merge_run.data.tags["cxrpriv.deid_key_version"] == "test-2"
