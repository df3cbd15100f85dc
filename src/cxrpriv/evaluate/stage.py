"""The evaluate stage as a function: anonymized datasets (and the original they came from), the trained
verifier and classifier in; the privacy-utility results (:mod:`cxrpriv.evaluate.results`'s format) and
example films out.

Each variant is one anonymized dataset (``cxrpriv anonymize`` output). The reference, no anonymization, is
the original dataset itself: its privacy is the verifier stage's model on the original test films (it was
trained on them), its utility the frozen classifier on them. For every other variant: the frozen verifier,
each retrained attacker family over its seeds, the frozen classifier and, optionally, a retrained one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.dataset import Dataset, anonymization, open_dataset
from cxrpriv.evaluate import EvaluateInputError
from cxrpriv.evaluate.attackers import (
    RetrainedFamily,
    describe_attacker,
    frozen_attack,
    retrained_attack,
    summarize_runs,
)
from cxrpriv.evaluate.config import EvaluateConfig
from cxrpriv.evaluate.films import OriginalFilms, check_aligned
from cxrpriv.evaluate.utility import frozen_utility, retrained_utility
from cxrpriv.reid.attack import AttackSettings
from cxrpriv.training.accelerator import select_accelerator
from cxrpriv.training.seeding import seed_everything

REFERENCE = "none"


@dataclass(frozen=True)
class EvaluateInputs:
    original: Path  # the ingest output the anonymized datasets were made from
    anonymized: tuple[Path, ...]  # the variants' datasets; the first is the one the release is about
    verifier: Path  # train_reid output (the frozen verifier)
    classifier: Path  # train_classifier output (the frozen classifier)
    attackers: tuple[RetrainedFamily, ...]
    settings: AttackSettings  # the test pairs and bootstrap of every attack
    classifier_config: ClassifierConfig  # evaluation settings, and the retrained classifier's recipe
    priors: Path | None = None
    answer_key: Path | None = None


def build_inputs(
    config: EvaluateConfig,
    paths: Mapping[str, Any],
    attacker_values: Mapping[str, Mapping[str, Any]],
    reid_values: Mapping[str, Any],
    classifier_values: Mapping[str, Any],
) -> EvaluateInputs:
    """The inputs from paths (``original``, ``anonymized``, ``verifier``, ``classifier``, ``priors``,
    ``answer_key``) and raw params: each attacker profile's train_reid values, the run's train_reid values
    (its test pairs and bootstrap) and train_classifier values; what the CLI and the component both build."""
    from cxrpriv.config import build_config
    from cxrpriv.reid.config import TrainReidConfig

    missing = [name for name in config.attacker_profiles if name not in attacker_values]
    if missing:
        raise EvaluateInputError(f"no train_reid config for attacker profile(s) {', '.join(missing)}")
    families = tuple(
        RetrainedFamily(
            name,
            build_config(TrainReidConfig, attacker_values[name], f"train_reid [{name}]"),
            config.seeds_of(name),
        )
        for name in config.attacker_profiles
    )
    reid = build_config(TrainReidConfig, reid_values, "train_reid")
    optional = {k: None if paths.get(k) is None else Path(paths[k]) for k in ("priors", "answer_key")}
    return EvaluateInputs(
        original=Path(paths["original"]),
        anonymized=tuple(Path(p) for p in paths["anonymized"]),
        verifier=Path(paths["verifier"]),
        classifier=Path(paths["classifier"]),
        attackers=families,
        settings=AttackSettings.of(reid),
        classifier_config=build_config(ClassifierConfig, classifier_values, "train_classifier"),
        **optional,
    )


@dataclass
class EvaluateResult:
    results: dict[str, Any]
    examples: dict[str, np.ndarray] = field(default_factory=dict)  # "original" and each variant: [k, H, W]
    device: dict[str, str] = field(default_factory=dict)


def variant_name(dataset: Dataset) -> tuple[str, str, dict[str, Any]]:
    """(name, method, settings) of an anonymized dataset, from what ``cxrpriv anonymize`` recorded."""
    applied = anonymization(dataset.root)
    if applied is None:
        raise EvaluateInputError(
            f"{dataset.root}: not an anonymized dataset (its state.json names no anonymizer; make it with "
            "`cxrpriv anonymize`)"
        )
    method, settings = str(applied["method"]), dict(applied.get("settings", {}))
    key = {"learned": "mu", "random_warp": "mu", "dp_pix": "b"}.get(method)
    name = method if key is None else f"{method} ({key}={settings.get(key)})"
    return name, method, settings


def _examples(original: Dataset, variants: Sequence[tuple[str, Dataset]], k: int) -> dict[str, np.ndarray]:
    if k == 0:
        return {}
    rows = original.first_films(k)
    out = {"original": np.stack([original.images().as_float(int(r)) for r in rows])}
    for name, dataset in variants:
        out[name] = np.stack([dataset.images().as_float(int(r)) for r in rows])
    return out


@dataclass
class _Judges:
    """The frozen verifier and classifier and everything needed to measure one variant."""

    config: EvaluateConfig
    inputs: EvaluateInputs
    original: Dataset
    accelerator: Any
    work_dir: Path
    progress: bool
    on_attacker_run: Callable[[str, str, dict[str, Any]], None] | None

    def __post_init__(self) -> None:
        from cxrpriv.classify.model import load_classifier
        from cxrpriv.reid.model import load_verifier

        device = self.accelerator.device
        self.verifier, self.verifier_spec = load_verifier(self.inputs.verifier, device)
        self.classifier, self.classifier_spec = load_classifier(self.inputs.classifier, device)
        # Every attack's gallery: banked once per size, not once per attack.
        self.originals = OriginalFilms(self.original, device)

    def frozen_attack(self, dataset: Dataset) -> dict[str, Any]:
        return frozen_attack(
            self.verifier,
            self.verifier_spec,
            dataset,
            self.originals,
            self.inputs.settings,
            accelerator=self.accelerator,
        )

    def utility(self, dataset: Dataset) -> dict[str, Any]:
        inputs = self.inputs
        return frozen_utility(
            self.classifier,
            self.classifier_spec,
            dataset,
            inputs.answer_key,
            config=inputs.classifier_config,
            accelerator=self.accelerator,
        )

    def reference(self) -> dict[str, Any]:
        """The original films: the frozen verifier was trained on them, so it is their retrained attacker."""
        frozen = self.frozen_attack(self.original)
        train = self.original.split_rows()["train"]
        run = {
            "seed": int(self.inputs.settings.seed),
            **{k: v for k, v in frozen.items() if k != "attacker"},
            "train_images": int(train.size),
            "train_patients": int(np.unique(self.original.manifest["patient_id"].to_numpy()[train]).size),
            "train_pairs": 0,
        }
        trained = {"attacker": "the verifier stage's model (trained on the original films)"}
        retrained = {self.inputs.attackers[0].name: {**trained, **summarize_runs([run])}}
        return {
            "name": REFERENCE,
            "method": REFERENCE,
            "settings": {},
            "privacy": {"frozen_verifier": frozen, "retrained": retrained},
            "utility": {"frozen_classifier": self.utility(self.original)},
        }

    def variant(self, name: str, method: str, settings: dict[str, Any], dataset: Dataset) -> dict[str, Any]:
        work = self.work_dir / folder_name(name)

        def log_run(family: str, record: dict[str, Any]) -> None:
            if self.on_attacker_run is not None:
                self.on_attacker_run(name, family, record)

        retrained = {
            family.name: retrained_attack(
                family,
                dataset,
                self.originals,
                self.inputs.settings,
                accelerator=self.accelerator,
                work_dir=work,
                progress=self.progress,
                log_run=log_run,
            )
            for family in self.inputs.attackers
        }
        usefulness = {"frozen_classifier": self.utility(dataset)}
        if self.config.retrain_classifier:
            inputs = self.inputs
            usefulness["retrained_classifier"] = retrained_utility(
                inputs.classifier_config,
                dataset,
                inputs.priors,
                inputs.answer_key,
                accelerator=self.accelerator,
                work_dir=work,
                progress=self.progress,
            )
        privacy = {"frozen_verifier": self.frozen_attack(dataset), "retrained": retrained}
        return {
            "name": name,
            "method": method,
            "settings": settings,
            "privacy": privacy,
            "utility": usefulness,
        }


def _open_variants(
    inputs: EvaluateInputs, original: Dataset
) -> list[tuple[str, str, dict[str, Any], Dataset]]:
    variants = []
    for path in inputs.anonymized:
        dataset = open_dataset(path)
        check_aligned(dataset, original)
        variants.append((*variant_name(dataset), dataset))
    names = [v[0] for v in variants]
    # Two generators with the same bound (trained differently) are told apart by their folders' names.
    variants = [
        (f"{name} [{dataset.root.name}]" if names.count(name) > 1 else name, method, settings, dataset)
        for name, method, settings, dataset in variants
    ]
    names = [v[0] for v in variants]
    if len(set(names)) != len(names) or REFERENCE in names:
        raise EvaluateInputError(f"variant names must be unique and not '{REFERENCE}': {names}")
    return variants


def evaluate(
    config: EvaluateConfig,
    inputs: EvaluateInputs,
    work_dir: Path,
    *,
    device: str = "auto",
    progress: bool = True,
    on_attacker_run: Callable[[str, str, dict[str, Any]], None] | None = None,
) -> EvaluateResult:
    """``on_attacker_run(variant, family, record)`` is called after each retrained attacker seed."""
    accelerator = select_accelerator(device, mixed_precision=True)
    seed_everything(inputs.settings.seed)
    original = open_dataset(inputs.original)
    variants = _open_variants(inputs, original)
    judges = _Judges(config, inputs, original, accelerator, Path(work_dir), progress, on_attacker_run)
    records = [judges.reference(), *(judges.variant(*variant) for variant in variants)]
    test = original.split_rows()["test"]
    frozen = records[0]["privacy"]["frozen_verifier"]
    results = {
        "reference": REFERENCE,
        "chosen": variants[0][0] if variants else REFERENCE,
        "test": {
            "images": int(test.size),
            "patients": int(np.unique(original.manifest["patient_id"].to_numpy()[test]).size),
            "pairs": int(frozen["pairs"]),
            "positive_pairs": int(frozen["positive_pairs"]),
        },
        "attackers": {
            f.name: {"description": describe_attacker(f.config), "seeds": list(f.seeds)}
            for f in inputs.attackers
        },
        "variants": records,
    }
    examples = _examples(original, [(v[0], v[3]) for v in variants], config.examples)
    return EvaluateResult(results, examples, accelerator.describe())


def folder_name(name: str) -> str:
    """``name`` (a variant's, an anonymizer's overrides) as a folder name: letters, digits and ``-_.=``
    kept, anything else ``_``."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in name)
