"""The two attacks a trained verifier makes, as functions over any pair of film sets.

- **Verification**: fixed same-/different-patient pairs drawn from the query set's patients; the first film
  of a pair comes from the queries, the second from the gallery (the same set, or an aligned other version
  of it: anonymized queries against the original films). AUC and accuracy with patient-bootstrap intervals.
- **Linkage (retrieval)**: every query searches the gallery; mAP@R, R-precision, P@1.

``train_reid`` calls :func:`attack` with the test split as both sets; the evaluate stage calls it with
anonymized test films as queries and the original ones as the gallery. Works for either attacker family.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from cxrpriv.reid.metrics import verification_metrics
from cxrpriv.reid.pair_model import PairModel
from cxrpriv.reid.pairs import fixed_pairs
from cxrpriv.reid.retrieval import retrieval_metrics
from cxrpriv.training.accelerator import Accelerator
from cxrpriv.training.image_bank import ImageBank


@dataclass(frozen=True)
class FilmSet:
    """Films to attack: an image bank, the bank rows to use, and each row's patient and image id."""

    bank: ImageBank
    rows: np.ndarray
    patients: np.ndarray
    image_ids: np.ndarray


@dataclass(frozen=True)
class AttackSettings:
    seed: int
    max_pairs_per_patient: int
    n_boot: int
    confidence: float
    eval_batch_size: int
    retrieval_k: int
    retrieval_chunk: int

    @classmethod
    def of(cls, config: Any) -> AttackSettings:
        """The settings of a config that has these fields (the train_reid config does)."""
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})


@dataclass
class AttackResult:
    verification: dict[str, Any]
    retrieval: dict[str, float]
    pairs: pd.DataFrame  # image ids, pseudonyms, label, probability of each pair
    queries: pd.DataFrame  # one row per query
    roc: tuple[np.ndarray, np.ndarray]  # false and true positive rates


def embed_bank(
    model: PairModel,
    bank: ImageBank,
    batch: int = 256,
    rows: np.ndarray | None = None,
    accelerator: Accelerator | None = None,
) -> torch.Tensor:
    """Features [n, feature_dim] (float32, on the bank's device) of the bank's images (or of ``rows``)."""
    rows = np.arange(len(bank)) if rows is None else np.asarray(rows)
    autocast = accelerator.autocast() if accelerator is not None else torch.autocast("cpu", enabled=False)
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad(), autocast:
        for start in range(0, len(rows), batch):
            out.append(model.embed(bank.batch(rows[start : start + batch])).float())
    model.train(was_training)
    if not out:
        return torch.zeros((0, model.features.out_features), device=bank.device)
    return torch.cat(out)


def pair_logits(
    model: PairModel, features: torch.Tensor, pairs: np.ndarray, second: torch.Tensor | None = None
) -> torch.Tensor:
    """Logits of ``pairs`` (index into ``features``; the second index into ``second`` when given)."""
    index = torch.as_tensor(pairs, dtype=torch.long, device=features.device)
    second = features if second is None else second
    with torch.no_grad():
        return model.score(features[index[:, 0]], second[index[:, 1]]).float()


def attack(
    model: PairModel,
    queries: FilmSet,
    settings: AttackSettings,
    *,
    gallery: FilmSet | None = None,
    accelerator: Accelerator | None = None,
    purpose: str = "test",
) -> AttackResult:
    """Verification and linkage of ``queries`` against ``gallery`` (default: the queries themselves).

    A separate gallery must be aligned with the queries (row i: another version of query film i), so that
    the pairs and the relevant films are the same films either way.
    """
    if gallery is not None and not np.array_equal(gallery.image_ids, queries.image_ids):
        raise ValueError("the gallery must hold the query films, in the same order (another version of each)")
    model.eval()
    batch = settings.eval_batch_size
    query_features = embed_bank(model, queries.bank, batch, queries.rows, accelerator)
    gallery_features = (
        query_features
        if gallery is None
        else embed_bank(model, gallery.bank, batch, gallery.rows, accelerator)
    )
    pairs, labels = fixed_pairs(queries.patients, settings.max_pairs_per_patient, settings.seed, purpose)
    probabilities = (
        torch.sigmoid(pair_logits(model, query_features, pairs, gallery_features)).cpu().numpy().astype(float)
    )
    verification = verification_metrics(
        labels,
        probabilities,
        groups=queries.patients[pairs[:, 0]] if len(pairs) else None,
        n_boot=settings.n_boot,
        confidence=settings.confidence,
        seed=settings.seed,
    )
    summary, per_query = retrieval_metrics(
        # on the model's device: the head re-scores the shortlist there (on a GPU, so does the search)
        query_features,
        queries.patients,
        model.head,
        k=settings.retrieval_k,
        chunk=settings.retrieval_chunk,
        gallery=None if gallery is None else gallery_features,
        gallery_identities=None if gallery is None else gallery.patients,
        aligned=gallery is not None,
    )
    return AttackResult(
        verification=verification,
        retrieval=summary,
        pairs=_pairs_frame(queries, pairs, labels, probabilities),
        queries=_queries_frame(queries, per_query),
        roc=roc_curve(labels, probabilities),
    )


def _pairs_frame(
    films: FilmSet, pairs: np.ndarray, labels: np.ndarray, probabilities: np.ndarray
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "image_a": films.image_ids[pairs[:, 0]],
            "image_b": films.image_ids[pairs[:, 1]],
            "patient_a": films.patients[pairs[:, 0]],
            "patient_b": films.patients[pairs[:, 1]],
            "label": labels.astype(np.int8),
            "probability": probabilities,
        }
    )


def _queries_frame(films: FilmSet, per_query: dict[str, np.ndarray]) -> pd.DataFrame:
    top1 = per_query["top1"]
    return pd.DataFrame(
        {
            "image_id": films.image_ids,
            "patient_id": films.patients,
            "n_relevant": per_query["n_relevant"],
            "ap_at_r": per_query["ap_at_r"],
            "r_precision": per_query["r_precision"],
            "precision_at_1": per_query["precision_at_1"],
            "top1_image_id": np.where(top1 >= 0, films.image_ids[np.maximum(top1, 0)], ""),
        }
    )


def roc_curve(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates (the diagonal when only one class is present)."""
    from sklearn.metrics import roc_curve as sklearn_roc_curve

    if len(labels) == 0 or labels.min() == labels.max():
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    fpr, tpr, _ = sklearn_roc_curve(labels, probabilities)
    return fpr, tpr
