"""Benchmark the synthesize stage: wall time, throughput, peak memory and disk, at several cohort sizes.

Each size runs the real CLI in a fresh process (so peak RSS is that run's alone) with the params.yaml
default profile and only ``--n-patients`` changed. Prints a Markdown table for docs/benchmarks.md.

    python benchmarks/bench_synthesize.py --n-patients 250 1000 --workdir /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_once(n_patients: int, workdir: Path) -> dict[str, float]:
    out = workdir / f"cohort-{n_patients}"
    shutil.rmtree(out, ignore_errors=True)
    metrics = workdir / f"metrics-{n_patients}.json"
    cmd = [
        sys.executable,
        "-m",
        "cxrpriv.cli",
        "synthesize",
        "--out",
        str(out),
        "--metrics",
        str(metrics),
        "--plots",
        str(workdir / f"plots-{n_patients}"),
        "--n-patients",
        str(n_patients),
        "--no-progress",
    ]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    # A fresh wrapper process per size: its RUSAGE_CHILDREN peak is the largest resident set of this run's
    # processes alone (the CLI or one of its workers), not of an earlier, larger run.
    probe = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", probe, *cmd], check=True, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    peak_mib = int(done.stdout.split()[-1]) / 1024
    m = json.loads(metrics.read_text())
    return {
        "n_patients": n_patients,
        "n_images": m["n_images"],
        "wall_s": wall,
        "images_per_s": m["n_images"] / wall,
        "peak_rss_mib": peak_mib,
        "disk_mib": _dir_size(out) / 2**20,
        "naive_auc": m["naive_attacker_auc"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-patients", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/cxrpriv-bench"))
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"python {platform.python_version()}"
    )
    print("| patients | images | wall (s) | images/s | peak RSS (MiB) | disk (MiB) | naive AUC |")
    print("|---|---|---|---|---|---|---|")
    for n in args.n_patients:
        r = run_once(n, args.workdir)
        print(
            f"| {r['n_patients']} | {r['n_images']} | {r['wall_s']:.1f} | {r['images_per_s']:.1f} | "
            f"{r['peak_rss_mib']:.0f} | {r['disk_mib']:.0f} | {r['naive_auc']} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
