"""The utility measurements: how well findings are still read from anonymized test films.

- :func:`frozen_utility`: the classifier of the classifier stage, as it is, on the anonymized test films
  (and, for the reference, on the originals): per-finding and mean AUC with patient-bootstrap intervals
  (the classifier stage's own evaluation, :func:`cxrpriv.classify.evaluation.auc_report`), against the clean
  labels where the answer key gives them and the text-mined labels otherwise (the record says which);
- :func:`retrained_utility`: a fresh classifier (the train_classifier config) trained on the anonymized
  training films, on the anonymized test films: utility for people who train models on the release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrpriv.anonymize.data import View
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.classify.evaluation import auc_report
from cxrpriv.dataset import Dataset
from cxrpriv.evaluate.films import test_films
from cxrpriv.training.accelerator import Accelerator

CLEAN, MINED = "clean (answer key)", "text-mined"


def test_labels(
    dataset: Dataset, findings: tuple[str, ...], answer_key: Path | None
) -> tuple[np.ndarray, np.ndarray, str]:
    """The test films' labels (m, k), which of the n test films they belong to (bool n), and their source:
    clean from the answer key when given (every film), else text-mined (labeled films only)."""
    rows = dataset.split_rows()["test"]
    if answer_key is None:
        kept = dataset.labeled()[rows]
        return dataset.labels(findings, rows[kept]).astype(np.uint8), kept, MINED
    from cxrpriv.synth.answer_key import clean_labels

    ids = dataset.manifest["image_id"].astype(str).to_numpy()[rows].tolist()
    labels = clean_labels(dataset.root, answer_key, ids, findings).labels.astype(np.uint8)
    return labels, np.ones(len(rows), dtype=bool), CLEAN


@torch.no_grad()
def classifier_probabilities(
    classifier: torch.nn.Module, spec: dict[str, Any], dataset: Dataset, accelerator: Accelerator, batch: int
) -> np.ndarray:
    """Sigmoid outputs (n_test, k) of ``classifier`` on the test films, seen as it was trained to see them."""
    input_size = int(spec["input_size"])
    view = View(int(spec.get("image_size", input_size)), input_size)
    films = test_films(dataset, None, accelerator.device)
    classifier = classifier.to(accelerator.device).eval()
    out = []
    for start in range(0, len(films.rows), batch):
        images = films.bank.batch(films.rows[start : start + batch])
        with accelerator.autocast():
            out.append(torch.sigmoid(classifier(view(images)).float()).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def utility_record(report: dict[str, Any], labels: str) -> dict[str, Any]:
    """An :func:`auc_report` in the evaluate results' shape."""
    low, high = report["mean_auc_ci"] or (None, None)
    return {
        "labels": labels,
        "mean_auc": report["mean_auc"],
        "mean_auc_low": low,
        "mean_auc_high": high,
        "worst_finding": report["worst_finding"],
        "worst_auc": report["worst_auc"],
        "per_finding": {
            finding: {
                "auc": values["auc"],
                "low": (values["ci"] or (None, None))[0],
                "high": (values["ci"] or (None, None))[1],
                "n_positive": values["n_positive"],
                "in_mean": "too_few_positives" not in values["flags"],
            }
            for finding, values in report["findings"].items()
        },
    }


def frozen_utility(
    classifier: torch.nn.Module,
    spec: dict[str, Any],
    dataset: Dataset,
    answer_key: Path | None,
    *,
    config: ClassifierConfig,
    accelerator: Accelerator,
) -> dict[str, Any]:
    findings = tuple(spec["findings"])
    labels, kept, source = test_labels(dataset, findings, answer_key)
    probabilities = classifier_probabilities(classifier, spec, dataset, accelerator, config.eval_batch_size)
    patients = dataset.manifest["patient_id"].astype(str).to_numpy()[dataset.split_rows()["test"]]
    probabilities, patients = probabilities[kept], patients[kept]  # unlabeled films have nothing to score
    report = auc_report(
        labels,
        probabilities,
        findings,
        patients,
        min_positives=config.min_eval_positives,
        n_boot=config.n_boot,
        confidence=config.confidence,
        seed=config.seed,
    )
    return utility_record(report, source)


def retrained_utility(
    config: ClassifierConfig,
    dataset: Dataset,
    priors: Path | None,
    answer_key: Path | None,
    *,
    accelerator: Accelerator,
    work_dir: Path,
    progress: bool,
) -> dict[str, Any]:
    from cxrpriv.classify.data import load_data
    from cxrpriv.classify.stage import train_classifier

    data = load_data(config, dataset.root, priors, answer_key, None, mask_size=config.image_size)
    result = train_classifier(
        config,
        data,
        dataset.root,
        accelerator,
        checkpoint_dir=Path(work_dir) / "classifier",
        progress=progress,
    )
    clean = result.evaluation["clean"]
    report, source = (clean, CLEAN) if clean is not None else (result.evaluation["noisy"], MINED)
    return {**utility_record(report, source), "epochs": len(result.fit.history)}
