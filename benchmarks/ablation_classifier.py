"""Classifier ablation: plain BCE vs +priors (forward correction) vs +priors+comorbidity vs +anatomy, same
splits, several seeds each; and a reference, ``clean-labels``: plain BCE trained on the answer key's true
labels (what the network could reach without label noise). Every run is an MLflow run of the
train_classifier stage tagged ``cxrpriv.ablation=<variant>`` and ``cxrpriv.seed=<seed>`` (compare them in
the MLflow UI). Prints a Markdown table (mean +- sd over seeds) and writes every run's metrics to
``<out>/runs.json``.

    MLFLOW_TRACKING_URI=sqlite:////tmp/clf/ablation/mlflow.db python benchmarks/ablation_classifier.py \\
        --ingest data/ingest --priors data/priors/priors.json --answer-key data/synthetic/answer_key \\
        --out /tmp/clf/ablation --seeds 1 2 3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from pathlib import Path

import pandas as pd
import torch

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.classify.run import run_train_classifier
from cxrpriv.config import load_stage_config
from cxrpriv.stages.contract import StageContext
from cxrpriv.synth.answer_key import clean_labels

VARIANTS = {
    "bce": {"prior_correction": "none", "comorbidity_weight": 0.0, "anatomy_weight": 0.0},
    "priors": {"prior_correction": "forward", "comorbidity_weight": 0.0, "anatomy_weight": 0.0},
    "priors+comorbidity": {"prior_correction": "forward", "comorbidity_weight": 1.0, "anatomy_weight": 0.0},
    "priors+comorbidity+anatomy": {
        "prior_correction": "forward",
        "comorbidity_weight": 1.0,
        "anatomy_weight": 0.2,
    },
    "clean-labels": {"prior_correction": "none", "comorbidity_weight": 0.0, "anatomy_weight": 0.0},
}
DEFAULT_VARIANTS = [v for v in VARIANTS if v != "clean-labels"]
COLUMNS = (
    "clean_mean_auc",
    "noisy_mean_auc",
    "clean_worst_auc",
    "seconds_train",
    "best_epoch",
    "clean_prevalence_error",
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--ingest", type=Path, default=Path("data/ingest"))
    parser.add_argument("--priors", type=Path, default=Path("data/priors/priors.json"))
    parser.add_argument("--answer-key", type=Path, default=Path("data/synthetic/answer_key"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/cxrpriv-ablation"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="Override config keys for every run."
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base = load_stage_config(ClassifierConfig, "train_classifier", args.params, "default")
    overrides = dict(item.split("=", 1) for item in args.set)
    from cxrpriv.config import build_config, config_to_dict

    base = build_config(ClassifierConfig, {**config_to_dict(base), **overrides}, source="--set")
    args.out.mkdir(parents=True, exist_ok=True)
    runs_file = args.out / "runs.json"
    runs = json.loads(runs_file.read_text()) if runs_file.exists() else []
    done = {(r["variant"], r["seed"]) for r in runs}
    for seed in args.seeds:
        for variant in args.variants:
            if (variant, seed) in done:
                continue
            config = dataclasses.replace(base, seed=seed, **VARIANTS[variant])
            run_dir = args.out / f"{variant}-seed{seed}"
            ingest = args.ingest
            if variant == "clean-labels":
                ingest = clean_label_ingest(args.ingest, args.answer_key, args.out / "ingest-clean-labels")
            started = time.perf_counter()
            metrics = run_train_classifier(
                config,
                ingest,
                args.priors,
                args.answer_key,
                None,
                StageContext(
                    out=run_dir,
                    metrics=run_dir / "metrics.json",
                    plots=run_dir / "plots",
                    profile="default",
                    restart=True,
                    progress=False,
                    register_model=False,
                    tags={"cxrpriv.ablation": variant, "cxrpriv.seed": str(seed)},
                ),
            )
            evaluation = json.loads((run_dir / "evaluation.json").read_text())
            runs.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "wall_seconds": time.perf_counter() - started,
                    "clean_worst_finding": (evaluation["clean"] or {}).get("worst_finding"),
                    **metrics,
                }
            )
            runs_file.write_text(json.dumps(runs, indent=1))
            print(
                f"{variant} seed {seed}: clean {metrics.get('clean_mean_auc'):.3f} "
                f"noisy {metrics.get('noisy_mean_auc'):.3f}",
                flush=True,
            )
    print(table(runs, args.variants))
    print()
    print(finding_table(runs, args.variants, args.out))
    print(
        f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; seeds {args.seeds}"
    )
    return 0


def finding_table(runs: list[dict], variants: list[str], out: Path) -> str:
    """Per-finding clean-label AUC, mean over seeds, with the test split's clean positives."""
    variants = [v for v in variants if any(r["variant"] == v for r in runs)]
    if not variants:
        return ""
    first = next(r for r in runs if r["variant"] == variants[0])
    evaluation = json.loads((out / f"{first['variant']}-seed{first['seed']}" / "evaluation.json").read_text())
    findings = evaluation["clean"]["findings"]
    lines = [
        "| finding | clean test positives (patients) | " + " | ".join(variants) + " |",
        "|---|---|" + "---|" * len(variants),
    ]
    for finding, entry in findings.items():
        cells = []
        for variant in variants:
            values = [r[f"clean_auc_{finding}"] for r in runs if r["variant"] == variant]
            values = [v for v in values if v == v]  # NaN: no positives
            cells.append(f"{statistics.mean(values):.2f}" if values else "-")
        patients = entry.get("n_positive_patients", "?")  # runs from before the count was reported: "?"
        lines.append(f"| {finding} | {entry['n_positive']} ({patients}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def clean_label_ingest(ingest: Path, answer_key: Path, out: Path) -> Path:
    """A view of the ingest output whose manifest carries the answer key's true labels (images linked)."""
    out.mkdir(parents=True, exist_ok=True)
    for entry in ingest.iterdir():
        link = out / entry.name
        if entry.name != "manifest.parquet" and not link.exists():
            link.symlink_to(entry.resolve())
    manifest = pd.read_parquet(ingest / "manifest.parquet")
    findings = [f for f in FINDINGS if f in manifest.columns]
    truth = clean_labels(ingest, answer_key, manifest["image_id"].tolist(), findings)
    for i, finding in enumerate(findings):
        manifest[finding] = truth.labels[:, i].astype(manifest[finding].dtype)
    manifest.to_parquet(out / "manifest.parquet")
    return out


def table(runs: list[dict], variants: list[str]) -> str:
    lines = [
        "| variant | runs | clean mean AUC | text-mined mean AUC | worst finding (clean) "
        "| mean abs(predicted - true prevalence) | best epoch | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        rows = [r for r in runs if r["variant"] == variant]
        if not rows:
            continue
        cells = []
        for key in COLUMNS:
            values = [r[key] for r in rows if key in r]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            digits = 3 if "auc" in key or "error" in key else 0
            cells.append(f"{statistics.mean(values):.{digits}f} +- {sd:.{digits}f}")
        if variant == "clean-labels":  # its "text-mined" labels were the clean ones: not a noisy-label AUC
            cells[1] = "-"
        worst = sorted({r.get("clean_worst_finding", "") for r in rows} - {""})
        lines.append(
            f"| {variant} | {len(rows)} | {cells[0]} | {cells[1]} | {cells[2]}"
            f"{' (' + ', '.join(worst) + ')' if worst else ''} | {cells[5]} | {cells[4]} | {cells[3]} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
