"""The privacy measurements: every attacker attacks the same test pairs, anonymized film vs original film.

- :func:`frozen_attack`: the verifier the anonymizer trained against, as it is (the weakest test: reported,
  never gated on);
- :func:`retrained_attack`: a fresh train_reid model per seed, trained on the anonymized train/validation
  films with one family's config, then attacking the anonymized test films against the originals
  (verification AUC with a patient-bootstrap interval; retrieval linkage P@1 and mAP@R). Each seed's
  record is cached under the work directory and each training checkpoints there, so a killed evaluate
  resumes where it stopped.

The test pairs and the bootstrap come from one :class:`AttackSettings` (the verifier stage's own), so every
attacker and every variant is measured on the same pairs as the verifier stage measured the originals.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from cxrpriv.config import config_to_dict
from cxrpriv.dataset import Dataset
from cxrpriv.evaluate.films import OriginalFilms, aligned_test_sets
from cxrpriv.evaluate.results import summarize_seeds
from cxrpriv.reid.attack import AttackSettings, FilmSet, attack
from cxrpriv.reid.config import TrainReidConfig
from cxrpriv.reid.pair_model import PairModel
from cxrpriv.training.accelerator import Accelerator


def attack_record(
    model: PairModel,
    queries: FilmSet,
    gallery: FilmSet,
    settings: AttackSettings,
    accelerator: Accelerator,
) -> dict[str, float]:
    """Verification (AUC, bootstrap interval) and linkage (P@1, mAP@R) of ``queries`` against ``gallery``."""
    result = attack(model.to(accelerator.device), queries, settings, gallery=gallery, accelerator=accelerator)
    auc = result.verification["auc"]
    return {
        "auc": float(auc["value"]),
        "auc_low": float(auc["low"]),
        "auc_high": float(auc["high"]),
        "p_at_1": float(result.retrieval["precision_at_1"]),
        "map_at_r": float(result.retrieval["map_at_r"]),
        "pairs": int(result.verification["n_pairs"]),
        "positive_pairs": int(result.verification["n_positive_pairs"]),
    }


def describe_attacker(config: TrainReidConfig) -> str:
    family = (
        "metric embedding (CosFace, cosine similarity)"
        if config.method == "metric"
        else "siamese pair network"
    )
    return f"{family}, {config.backbone} backbone at {config.image_size or 'stored'} px"


def frozen_attack(
    verifier: PairModel,
    spec: dict[str, Any],
    anonymized: Dataset,
    originals: OriginalFilms,
    settings: AttackSettings,
    *,
    accelerator: Accelerator,
) -> dict[str, Any]:
    queries, gallery = aligned_test_sets(anonymized, originals, int(spec["image_size"]))
    record = attack_record(verifier, queries, gallery, settings, accelerator)
    return {"attacker": f"frozen verifier of the verifier stage ({spec.get('builder', '?')})", **record}


@dataclasses.dataclass(frozen=True)
class RetrainedFamily:
    name: str  # the train_reid profile it was configured with
    config: TrainReidConfig
    seeds: tuple[int, ...]


def _train_pairs(metrics: dict[str, Any]) -> int:
    """Pairs the attacker learned from: the siamese family's scored pairs over its epochs; the metric
    family relates every pair of training films through the class prototypes (n choose 2 per epoch)."""
    data, epochs = metrics["data"], int(metrics["training"]["epochs"])
    if "train_pairs_per_epoch" in data:
        return int(data["train_pairs_per_epoch"]) * epochs
    films = int(data["train_images"])
    return films * (films - 1) // 2


def _fingerprint(config: TrainReidConfig, anonymized: Dataset, settings: AttackSettings) -> str:
    digest = hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True).encode())
    digest.update(json.dumps(dataclasses.asdict(settings), sort_keys=True).encode())
    digest.update(anonymized.manifest_path.read_bytes())
    for shard in sorted((anonymized.root / "images").glob("*.npy")):
        digest.update(shard.read_bytes())
    return digest.hexdigest()[:24]


def _train_one(
    config: TrainReidConfig,
    anonymized: Dataset,
    originals: OriginalFilms,
    settings: AttackSettings,
    *,
    accelerator: Accelerator,
    work: Path,
    progress: bool,
) -> dict[str, Any]:
    from cxrpriv.reid.stage import train_reid

    result = train_reid(
        config,
        anonymized.root,
        checkpoint_dir=work / "checkpoint",
        device=str(accelerator.device),
        progress=progress,
        test_seed=settings.seed,
    )
    queries, gallery = aligned_test_sets(anonymized, originals, int(result.spec["image_size"]))
    record = attack_record(result.model, queries, gallery, settings, accelerator)
    own = result.metrics["verification"]["auc"]["value"]
    return {
        "seed": config.seed,
        **record,
        "anonymized_vs_anonymized_auc": float(own),
        "epochs": int(result.metrics["training"]["epochs"]),
        "train_seconds": float(result.metrics["training"]["train_seconds"]),
        "train_images": int(result.metrics["data"]["train_images"]),
        "train_patients": int(result.metrics["data"]["train_patients"]),
        "train_pairs": _train_pairs(result.metrics),
    }


def retrained_attack(
    family: RetrainedFamily,
    anonymized: Dataset,
    originals: OriginalFilms,
    settings: AttackSettings,
    *,
    accelerator: Accelerator,
    work_dir: Path,
    progress: bool = True,
    log_run: Any = None,
) -> dict[str, Any]:
    """Every seed of ``family`` (cached per seed under ``work_dir``), and their summary."""
    runs = []
    for seed in family.seeds:
        config = dataclasses.replace(family.config, seed=seed)
        work = Path(work_dir) / family.name / f"seed-{seed}-{_fingerprint(config, anonymized, settings)}"
        cached = work / "record.json"
        if cached.is_file():
            record = json.loads(cached.read_text())
        else:
            record = _train_one(
                config, anonymized, originals, settings, accelerator=accelerator, work=work, progress=progress
            )
            work.mkdir(parents=True, exist_ok=True)
            cached.write_text(json.dumps(record, indent=1) + "\n")
        if log_run is not None:
            log_run(family.name, record)
        runs.append(record)
    return {"attacker": describe_attacker(family.config), **summarize_runs(runs)}


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The seeds' summary (:func:`cxrpriv.evaluate.results.summarize_seeds`) with what they trained on."""
    return {
        "train_images": int(runs[0]["train_images"]),
        "train_patients": int(runs[0]["train_patients"]),
        "train_pairs": int(max(r["train_pairs"] for r in runs)),
        "seeds": [int(r["seed"]) for r in runs],
        "runs": runs,
        **summarize_seeds(runs),
    }
