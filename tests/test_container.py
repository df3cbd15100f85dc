"""The image runs the pipeline's components as its non-root user (marked ``container``).

Needs a Docker daemon and the image the pipeline compiles against (``components.image.IMAGE``, i.e.
``CXRPRIV_IMAGE`` or ``ghcr.io/cxr-privacy/cxrpriv:0.1.0``) present locally:
``scripts/build_image_offline.sh`` builds it on a machine without a registry. Skipped, in well under a
second, wherever either is missing (CI has no Docker engine). Nothing is pulled: kfp.local's DockerRunner
uses a local image as it is.
"""

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import mlflow
import pytest

from components.image import IMAGE
from cxrpriv.config import read_params, stage_values
from tests.conftest import PARAMS, tiny_synth_config

pytestmark = [pytest.mark.container, pytest.mark.slow]


@pytest.fixture(scope="module")
def image() -> str:
    """The local image's name, or a skip saying what is missing."""
    if shutil.which("docker") is None:
        pytest.skip("no docker client")
    try:
        import docker

        client = docker.from_env(timeout=5)
        client.ping()
    except Exception as exc:  # no socket, daemon not running, no permission
        pytest.skip(f"no Docker daemon: {type(exc).__name__}")
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {IMAGE} not built here (scripts/build_image_offline.sh)")
    finally:
        client.close()
    return IMAGE


def _writable_by_anyone(path: Path) -> Path:
    """A host folder the container's uid 1000 can write into (the test runs as root; on a cluster the
    volume's fsGroup does this)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o1777)
    return path


def test_cli_runs_as_an_arbitrary_uid_on_a_read_only_root(image: str, tmp_path: Path):
    """The strictest pod: a uid with no passwd entry, a read-only root filesystem, only /tmp writable, no
    tracking URI: params, MLflow store, caches and temporary files all find a writable home."""
    done = subprocess.run(
        ["docker", "run", "--rm", "--user", "12345:0", "--read-only", "--tmpfs", "/tmp:rw,exec", image,
         "sh", "-ec",
         "cxrpriv synthesize --n-patients 6 --image-size 64 --max-images-per-patient 2 --workers 1 "
         "--broken-per-kind 0 --naive-attack-pairs 10 --no-progress "
         "--out /tmp/s --metrics /tmp/s.json --plots /tmp/plots; "
         "ls /tmp/s/dataset /tmp/cxrpriv-12345/mlflow.db"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "not writable: logging runs to /tmp/cxrpriv-12345/mlflow.db" in done.stderr
    assert "Permission denied" not in done.stderr and "PermissionError" not in done.stderr


def test_kfp_docker_runner_runs_synthesize_then_preprocess_in_the_image(image: str, tmp_path: Path):
    from kfp import dsl, local

    from components.preprocess.component import preprocess
    from components.synthesize.component import synthesize

    root = _writable_by_anyone(tmp_path / "root")
    store = f"sqlite:///{root / 'mlflow.db'}"
    synth_config = json.dumps(dataclasses.asdict(tiny_synth_config(n_patients=6)))
    ingest_config = json.dumps(
        {**stage_values(read_params(PARAMS), "preprocess", "default"), "workers": 1, "image_size": 32}
    )

    @dsl.pipeline(name="container-smoke")
    def smoke() -> None:
        # synthesize: no tracking URI at all (the image's defaults); preprocess: a store on the shared volume
        cohort = synthesize(config_json=synth_config, profile="default", pipeline_run="container-smoke")
        ingest = preprocess(
            config_json=ingest_config,
            profile="default",
            pipeline_run="container-smoke",
            throwaway_key=True,
            cohort=cohort.outputs["cohort"],
        )
        ingest.set_env_variable("MLFLOW_TRACKING_URI", store)

    local.init(runner=local.DockerRunner(), pipeline_root=str(root))
    try:
        smoke()
    finally:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "unused"))
    assert list(root.rglob("Data_Entry_2017.csv")), "synthesize wrote no cohort"
    (manifest,) = root.rglob("manifest.parquet")
    assert manifest.stat().st_uid == 1000, "the component ran as the image's non-root user"
    client = mlflow.MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("cxr-privacy")
    # artifacts beside the store on the shared volume, not in the container's working directory
    assert experiment.artifact_location == f"{(root / 'mlruns').as_uri()}/cxr-privacy"
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["cxrpriv.stage"] == "preprocess"
    assert run.data.tags["cxrpriv.pipeline_run"] == "container-smoke"
    assert run.info.artifact_uri.startswith(f"{(root / 'mlruns').as_uri()}/cxr-privacy/")
