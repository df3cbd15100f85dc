"""dvc.yaml agrees with params.yaml, and a real `dvc repro` runs the stages, then is a no-op."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts.render_dvc_params import stage_param_keys
from tests.conftest import REPO

BIN = Path(sys.executable).parent


def test_every_stage_declares_its_params_key_by_key():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert stage["params"] == stage_param_keys(params, name), name


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "CXRPRIV_PIPELINE_RUN": "dvc-test"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
def test_dvc_repro_runs_then_is_a_no_op(tmp_path: Path):
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    shutil.copy(REPO / ".dvcignore", repo / ".dvcignore")
    shutil.copytree(REPO / "keys", repo / "keys")
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synthesize"].update(
        # enough patients with two films that the verifier's train split has same-patient pairs
        n_patients=10,
        image_size=64,
        max_images_per_patient=3,
        naive_attack_pairs=20,
        workers=1,
        broken_per_kind=1,
        mask_shard_size=8,
    )
    params["preprocess"].update(image_size=32, workers=1)
    params["train_reid"].update(
        image_size=32, width=4, depth=2, max_epochs=1, max_steps_per_epoch=2, n_boot=10, retrieval_k=5
    )
    params["train_classifier"].update(
        image_size=32, width=4, depth=2, stem=1, max_epochs=1, max_steps_per_epoch=2, n_boot=10, batch_size=8
    )
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run([str(BIN / "dvc"), "init", "-q"], repo)

    first = _run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage 'synthesize'" in first
    assert "Running stage 'preprocess'" in first
    assert (repo / "data" / "synthetic" / "dataset" / "Data_Entry_2017.csv").is_file()
    assert (repo / "data" / "ingest" / "manifest.parquet").is_file()
    assert (repo / "dvc.lock").is_file()
    second = _run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage" not in second

    metrics = json.loads(_run([str(BIN / "dvc"), "metrics", "show", "--json"], repo))
    shown = json.dumps(metrics)
    assert "naive_attacker_auc" in shown
    assert "files_processed" in shown
    # a params change is seen by DVC (against the last commit) and re-runs the stage
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "baseline"], repo)
    params["synthesize"]["seed"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "synthesize.seed" in _run([str(BIN / "dvc"), "params", "diff"], repo)
    assert "Running stage 'synthesize'" in _run([str(BIN / "dvc"), "repro"], repo)
