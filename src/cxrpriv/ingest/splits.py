"""Patient-wise train/validation/test splits, stratified by findings, deterministic.

Iterative stratification (Sechidis, Tsoumakas & Vlahavas 2011) over patients rather than images: a patient
is one unit carrying the per-finding counts of positive images and its number of images. Each split wants
``fraction x total`` images and ``fraction x positives`` of every finding. The rarest finding not yet
distributed goes first: its patients, in a fixed pseudo-random order, each join the split that still wants
that finding most (ties: the split that wants the most images, then the order of the splits); then the next
rarest; patients without any finding fill the splits by images still wanted. A patient is never in two
splits, and the order depends only on the pseudonymous patient ID and the seed, so the same IDs and seed
always give the same splits.

Incremental runs keep every known patient in its split and stratify only the new patients among
themselves: a patient never moves between splits across dataset versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import numpy as np
import pandas as pd


def _order_key(seed: int, patient_id: str) -> str:
    return hashlib.sha256(f"cxrpriv-split:{seed}:{patient_id}".encode()).hexdigest()


def stratified_patient_splits(
    patients: pd.Series,
    labels: np.ndarray,
    fractions: Mapping[str, float],
    seed: int,
    existing: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Split per patient for images given as parallel ``patients`` (IDs) and ``labels`` (n x findings)."""
    existing = dict(existing or {})
    frame = pd.DataFrame(np.asarray(labels, dtype=np.int64), columns=range(labels.shape[1]))
    frame["_patient"] = np.asarray(patients)
    frame["_images"] = 1
    per_patient = frame.groupby("_patient", sort=True).sum()
    new = per_patient.loc[[p for p in per_patient.index if p not in existing]]
    splits = [s for s, f in fractions.items() if f > 0]
    if new.empty or not splits:
        return existing
    order = sorted(new.index, key=lambda p: _order_key(seed, str(p)))
    counts = new.loc[order, list(range(labels.shape[1]))].to_numpy()
    images = new.loc[order, "_images"].to_numpy()
    share = np.array([fractions[s] for s in splits], dtype=np.float64)
    want_images = share * images.sum()
    want_labels = share[:, None] * counts.sum(axis=0)[None, :]
    remaining = np.ones(len(order), dtype=bool)
    assigned: dict[str, str] = {}

    def place(i: int, split: int) -> None:
        assigned[str(order[i])] = splits[split]
        want_images[split] -= images[i]
        want_labels[split] -= counts[i]
        remaining[i] = False

    def best(scores: np.ndarray) -> int:
        # lexicographic: the finding's want, then the images' want, then the configured split order
        keys = np.lexsort((-np.arange(len(splits)), want_images, scores))
        return int(keys[-1])

    positives = counts > 0
    while True:
        left = positives[remaining].sum(axis=0)
        if not left.any():
            break
        rarest = int(np.argmin(np.where(left > 0, left, np.iinfo(np.int64).max)))
        for i in np.flatnonzero(remaining & positives[:, rarest]):
            place(int(i), best(want_labels[:, rarest]))
    for i in np.flatnonzero(remaining):
        place(int(i), best(want_images))
    return {**existing, **assigned}
