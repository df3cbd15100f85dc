"""The re-identification attacker over several training seeds, on one ingest output: test verification AUC
(patient-bootstrap interval), retrieval P@1 / mAP@R / R-precision and training time per seed, then mean, sd
and the worst seed. Prints a Markdown table and writes every run's metrics to ``<out>/runs.json``.

    python benchmarks/attacker_seeds.py --ingest data/ingest --out /tmp/attacker --seeds 1 2 3
    python benchmarks/attacker_seeds.py --out /tmp/siamese --profile siamese --seeds 1 2 3

The test pairs are drawn from the config's seed, which is the stage's seed, not the training seed given
here: every run is measured on the same test pairs and the same retrieval queries.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
from pathlib import Path

import torch

from cxrpriv.config import load_stage_config
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.reid.stage import train_reid

COLUMNS = (
    ("verification AUC", ("verification", "auc", "value")),
    ("P@1", ("retrieval", "precision_at_1")),
    ("mAP@R", ("retrieval", "map_at_r")),
    ("R-precision", ("retrieval", "r_precision")),
    ("train s", ("training", "train_seconds")),
)


def _value(metrics: dict, path: tuple[str, ...]) -> float:
    for key in path:
        metrics = metrics[key]
    return float(metrics)  # type: ignore[arg-type]


def run(
    ingest: Path, profile: str, seeds: list[int], params: Path | None, overrides: dict[str, str]
) -> list[dict]:
    base = load_stage_config(TrainReidConfig, "train_reid", params, profile, overrides)
    runs = []
    for seed in seeds:
        # Training seed only: the test pairs keep the stage seed (see the module docstring).
        config = dataclasses.replace(base, seed=seed)
        result = train_reid(config, ingest, None, device="auto", progress=False, test_seed=base.seed)
        auc = result.metrics["verification"]["auc"]
        print(
            f"seed {seed}: AUC {auc['value']:.4f} ({auc['low']:.4f}-{auc['high']:.4f}), "
            f"P@1 {result.metrics['retrieval']['precision_at_1']:.3f}, "
            f"mAP@R {result.metrics['retrieval']['map_at_r']:.3f}, "
            f"{result.metrics['training']['train_seconds']:.0f} s",
            flush=True,
        )
        runs.append({"seed": seed, "metrics": result.metrics})
    return runs


def table(runs: list[dict]) -> str:
    lines = ["| seed | " + " | ".join(name for name, _ in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for r in runs:
        auc = r["metrics"]["verification"]["auc"]
        cells = [f"{auc['value']:.4f} ({auc['low']:.4f}-{auc['high']:.4f})"]
        cells += [f"{_value(r['metrics'], path):.3f}" for _, path in COLUMNS[1:4]]
        cells += [f"{_value(r['metrics'], COLUMNS[4][1]):.0f}"]
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    for label, reduce in (("mean", statistics.mean), ("sd", statistics.stdev), ("worst", None)):
        if label == "sd" and len(runs) < 2:
            continue
        cells = []
        for name, path in COLUMNS:
            values = [_value(r["metrics"], path) for r in runs]
            worst = max(values) if name == "train s" else min(values)
            value = worst if reduce is None else reduce(values)
            cells.append(f"{value:.0f}" if name == "train s" else f"{value:.4f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ingest", type=Path, default=Path("data/ingest"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--params", type=Path, default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="train_reid keys over the profile"
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    runs = run(args.ingest, args.profile, args.seeds, args.params, overrides)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    (args.out / "runs.json").write_text(json.dumps({"machine": machine, "runs": runs}, indent=1) + "\n")
    print(f"\n{args.profile} profile {overrides or ''}, {machine}\n")
    print(table(runs))


if __name__ == "__main__":
    main()
