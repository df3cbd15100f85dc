"""Anonymizing vs ingesting the same images on the same machine, in one run: ``cxrpriv preprocess`` over the
synthetic cohort's DICOM files, then ``cxrpriv anonymize`` of its output with each method. Throughput is
each stage's own measurement (images over the stage's wall time, without process start-up); prints Markdown.

    python benchmarks/bench_anonymize.py --anonymizer data/anonymizer --out /work/exp/bench
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

METHODS = ("learned", "random_warp", "dp_pix", "none")


def _cxrpriv(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "cxrpriv.cli", *argv, "--no-progress"], check=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--anonymizer", type=Path, default=Path("data/anonymizer"))
    parser.add_argument("--key-file", type=Path, default=Path("keys/demo-deid.key"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args(argv)
    ingest, metrics = args.out / "ingest", args.out / "metrics"
    dataset = args.cohort / "dataset"
    _cxrpriv(
        "preprocess", "--source", str(dataset / "dicom"), "--labels", str(dataset / "Data_Entry_2017.csv"),
        "--out", str(ingest), "--key-file", str(args.key_file), "--force",
        "--metrics", str(metrics / "preprocess.json"), "--plots", str(args.out / "plots"),
    )  # fmt: skip
    ingested = json.loads((metrics / "preprocess.json").read_text())
    rows = [("ingest (preprocess)", ingested["n_images"], ingested["wall_seconds"])]
    for method in METHODS:
        _cxrpriv(
            "anonymize", "--method", method, "--ingest", str(ingest), "--anonymizer", str(args.anonymizer),
            "--out", str(args.out / method), "--device", args.device,
            "--metrics", str(metrics / f"{method}.json"), "--plots", str(args.out / "plots"),
        )  # fmt: skip
        done = json.loads((metrics / f"{method}.json").read_text())
        rows.append((f"anonymize --method {method}", done["images"], done["seconds"]))
    device = torch.cuda.get_device_name(0) if args.device != "cpu" and torch.cuda.is_available() else "CPU"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {device}")
    print("| stage | images | seconds | images/s |")
    print("|---|---|---|---|")
    for name, images, seconds in rows:
        print(f"| {name} | {images} | {seconds:.1f} | {images / seconds:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
