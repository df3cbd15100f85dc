"""Sharing through a DVC remote on S3: `dvc push` from one clone, `dvc pull` into a second, against a moto S3
server on 127.0.0.1 (a tiny DVC project, not the real pipeline: the round trip is what is tested)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from tests.ingest.test_ingest_sources import s3  # noqa: F401  (the moto S3 server fixture)

BIN = Path(sys.executable).parent
BUCKET = "cxrpriv-dvc"


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env |= {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow  # two dvc processes per step: ~30 s
def test_dvc_push_then_pull_into_a_second_clone(s3: str, tmp_path: Path):  # noqa: F811
    dvc = str(BIN / "dvc")
    boto3.client("s3", endpoint_url=s3).create_bucket(Bucket=BUCKET)
    repo = tmp_path / "first"
    (repo / "data" / "ingest").mkdir(parents=True)
    (repo / "data" / "ingest" / "manifest.csv").write_text("image_id,patient_id\ni1,P0123\n")
    (repo / "data" / "ingest" / "shard-000.bin").write_bytes(os.urandom(4096))
    (repo / "metrics").mkdir()
    (repo / "metrics" / "evaluate.json").write_text('{"decision": "fail"}\n')
    _run(["git", "init", "-q"], repo)
    _run([dvc, "init", "-q"], repo)
    # the remote as docs/kubernetes.md documents it: the bucket in .dvc/config, credentials from the
    # environment (or `dvc remote modify --local`), the endpoint for a non-AWS S3
    _run([dvc, "remote", "add", "-d", "storage", f"s3://{BUCKET}/cxr-privacy"], repo)
    _run([dvc, "remote", "modify", "storage", "endpointurl", s3], repo)
    _run([dvc, "add", "data/ingest"], repo)
    _run(["git", "add", "-A"], repo)
    _run(["git", "commit", "-qm", "dataset"], repo)
    _run([dvc, "push"], repo)
    stored = boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket=BUCKET, Prefix="cxr-privacy/")
    assert stored["KeyCount"] >= 3  # the two files and the directory's listing
    assert "in sync" in _run([dvc, "status", "--cloud"], repo)

    clone = tmp_path / "second"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    assert not (clone / "data" / "ingest").exists(), "git carries the .dvc file, not the data"
    _run([dvc, "pull"], clone)
    assert _digests(clone / "data" / "ingest") == _digests(repo / "data" / "ingest")
