"""Paper-profile training throughput on a GPU: the verifier (ResNet-50 siamese, 256x256, batch 32) and the
classifier (DenseNet-121, 256 -> 224 crop, batch 32), each for a few hundred steps through the stages' own
training functions (the shared loop, image bank, mixed precision); then the anonymizer (PriCheXy-Net's
U-Net at 256 px, updated helpers) trained against those two, and its apply throughput over the whole ingest
output (``cxrpriv anonymize``'s stage function).

Reports training images/s (a verifier pair is two images), the seconds the loop waited for data, and the peak
GPU memory PyTorch allocated. The first epoch (cuDNN autotuning, allocator warm-up) is reported apart.

    python benchmarks/bench_gpu_training.py --ingest .gpu/ingest --priors .gpu/priors/priors.json --epochs 25

Needs only torch, MONAI, numpy, pandas, scikit-learn and the library (no MLflow, DVC or pydicom), so it runs
on a bare GPU machine with `PYTHONPATH=src`.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from cxrpriv.config import load_stage_config

PARAMS = Path("params.yaml")


def _summary(name: str, history: list[dict[str, float]], batch_images: int, wall: float) -> dict[str, Any]:
    later = history[1:] or history
    steps = sum(h["train_steps"] for h in later)
    seconds = sum(h["train_seconds"] for h in later)
    waiting = sum(h["data_seconds"] for h in later)
    first = history[0]
    return {
        "model": name,
        "epochs": len(history),
        "steps_total": int(sum(h["train_steps"] for h in history)),
        "first_epoch_images_per_s": first["train_steps"] * batch_images / max(first["train_seconds"], 1e-9),
        "images_per_s": steps * batch_images / max(seconds, 1e-9),
        "data_wait_fraction": waiting / max(seconds, 1e-9),
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if torch.cuda.is_available()
        else 0.0,
        "wall_s_with_evaluation": wall,
    }


def bench_verifier(ingest: Path, steps_per_epoch: int, epochs: int, profile: str = "paper") -> dict[str, Any]:
    """``profile``: ``paper`` (the metric attacker) or ``paper_siamese`` (the published verifier)."""
    from cxrpriv.reid.config import TrainReidConfig
    from cxrpriv.reid.stage import train_reid

    overrides = {
        "max_epochs": epochs,
        "max_steps_per_epoch": steps_per_epoch,
        "patience": epochs,
        "n_boot": 20,
    }
    config = load_stage_config(TrainReidConfig, "train_reid", PARAMS, profile, overrides)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_reid(config, ingest, checkpoint_dir=Path(tmp), device="auto", progress=False)
    first = result.history[0]
    summary = _summary(
        f"verifier ({config.method}) {config.backbone} {config.image_size}px",
        result.history,
        round(first["train_images"] / max(first["train_steps"], 1)),  # films per step: pairs count twice
        time.perf_counter() - start,
    )
    summary["test_auc"] = result.metrics.get("verification", {}).get("auc", {}).get("value")
    return summary


def bench_classifier(ingest: Path, priors: Path, steps_per_epoch: int, epochs: int) -> dict[str, Any]:
    from cxrpriv.classify.config import ClassifierConfig
    from cxrpriv.classify.data import load_data
    from cxrpriv.classify.stage import train_classifier
    from cxrpriv.training.accelerator import select_accelerator

    overrides = {
        "max_epochs": epochs,
        "max_steps_per_epoch": steps_per_epoch,
        "patience": epochs,
        "n_boot": 20,
    }
    config = load_stage_config(ClassifierConfig, "train_classifier", PARAMS, "paper", overrides)
    data = load_data(config, ingest, priors, None, None, mask_size=config.image_size)
    accelerator = select_accelerator("auto", config.mixed_precision)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = train_classifier(config, data, ingest, accelerator, checkpoint_dir=Path(tmp), progress=False)
    return _summary(
        f"classifier {config.backbone} {config.image_size}px",
        result.fit.history,
        config.batch_size,
        time.perf_counter() - start,
    )


def _saved(model: torch.nn.Module, spec: dict[str, Any], directory: Path) -> Path:
    from cxrpriv.training.checkpoint import save_state_dict

    directory.mkdir(parents=True, exist_ok=True)
    save_state_dict(model, directory / "model.pt")
    (directory / "spec.json").write_text(json.dumps(spec))
    return directory


def bench_anonymizer(ingest: Path, priors: Path, steps_per_epoch: int, epochs: int) -> list[dict[str, Any]]:
    """Short paper-profile verifier and classifier (their quality does not matter for throughput), then the
    paper-profile anonymizer against them, then applying it to every image of ``ingest``."""
    from cxrpriv.anonymize.config import TrainAnonymizerConfig
    from cxrpriv.anonymize.stage import train_anonymizer
    from cxrpriv.anonymize_dataset.config import AnonymizeConfig
    from cxrpriv.anonymize_dataset.methods import LearnedWarp
    from cxrpriv.anonymize_dataset.stage import anonymize_dataset
    from cxrpriv.classify.config import ClassifierConfig
    from cxrpriv.classify.data import load_data
    from cxrpriv.classify.model import classifier_artifact_spec
    from cxrpriv.classify.stage import train_classifier
    from cxrpriv.reid.config import TrainReidConfig
    from cxrpriv.reid.stage import train_reid
    from cxrpriv.training.accelerator import select_accelerator

    short = {"max_epochs": 1, "max_steps_per_epoch": 5, "patience": 1, "n_boot": 0}
    accelerator = select_accelerator("auto", True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        reid_config = load_stage_config(TrainReidConfig, "train_reid", PARAMS, "paper", short)
        reid = train_reid(reid_config, ingest, device="auto", progress=False)
        verifier = _saved(reid.model, reid.spec, root / "reid")
        classifier_config = load_stage_config(ClassifierConfig, "train_classifier", PARAMS, "paper", short)
        data = load_data(
            classifier_config, ingest, priors, None, None, mask_size=classifier_config.image_size
        )
        trained = train_classifier(classifier_config, data, ingest, accelerator, progress=False)
        size = classifier_config.image_size
        spec = classifier_artifact_spec(
            trained.spec, data.findings, classifier_config.input_size or size, size, data.priors_summary
        )
        classifier = _saved(trained.model, spec, root / "cls")
        overrides = {"pretrain_epochs": 1, "max_epochs": epochs, "patience": epochs}
        overrides["max_steps_per_epoch"] = steps_per_epoch
        config = load_stage_config(TrainAnonymizerConfig, "train_anonymizer", PARAMS, "paper", overrides)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        result = train_anonymizer(
            config, ingest, verifier, classifier, priors, checkpoint_dir=root / "ck", progress=False
        )
        training = _summary(
            f"anonymizer U-Net {config.widths[0]}..{config.widths[-1]} {config.image_size}px, helpers "
            f"{config.helpers}",
            result.history,
            config.batch_size,
            time.perf_counter() - start,
        )
        method = LearnedWarp(result.model.to(accelerator.device).eval(), config.image_size, "bench")
        apply_config = load_stage_config(AnonymizeConfig, "anonymize", PARAMS, "paper")
        applied = anonymize_dataset(
            apply_config, method, ingest, root / "anonymized", device=accelerator.device, progress=False
        ).metrics
    apply_row = {
        "model": f"anonymize (apply) at the stored size, batch {apply_config.batch_size}",
        "images": applied["images"],
        "images_per_s": applied["images_per_s"],
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30
        if torch.cuda.is_available()
        else 0.0,
    }
    return [training, apply_row]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ingest", type=Path, required=True, help="An ingest output at the paper size (256)."
    )
    parser.add_argument("--priors", type=Path, required=True, help="priors.json for the classifier.")
    parser.add_argument("--epochs", type=int, default=25, help="Epochs per model (early stopping is off).")
    parser.add_argument("--steps-per-epoch", type=int, default=50, help="Cap on steps per epoch.")
    parser.add_argument("--only", choices=("verifier", "classifier", "anonymizer"), default=None)
    parser.add_argument(
        "--verifier-profiles",
        nargs="+",
        default=["paper", "paper_siamese"],
        help="train_reid profiles to time (the metric attacker, the published siamese verifier).",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    epochs = args.epochs
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    print(f"device: {device}; torch {torch.__version__}; python {sys.version.split()[0]}", flush=True)
    rows = []
    if args.only in (None, "verifier"):
        for profile in args.verifier_profiles:
            rows.append(bench_verifier(args.ingest, args.steps_per_epoch, epochs, profile))
            print(json.dumps(rows[-1]), flush=True)
    if args.only in (None, "classifier"):
        rows.append(bench_classifier(args.ingest, args.priors, args.steps_per_epoch, epochs))
        print(json.dumps(rows[-1]), flush=True)
    if args.only in (None, "anonymizer"):
        training, applied = bench_anonymizer(args.ingest, args.priors, args.steps_per_epoch, epochs)
        rows.append(training)
        print(json.dumps(training), "\n", json.dumps(applied), flush=True)
        print(f"anonymize (apply): {applied['images']} images at {applied['images_per_s']:.0f} images/s")
    print("\n| model | steps | epoch-1 img/s | img/s (later epochs) | data wait | peak GPU memory (GiB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['steps_total']} | {r['first_epoch_images_per_s']:.0f} "
            f"| {r['images_per_s']:.0f} "
            f"| {100 * r['data_wait_fraction']:.1f}% | {r['peak_gpu_memory_gib']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
