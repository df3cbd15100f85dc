"""The test films every evaluate measurement reads: one dataset's test split, banked at a network's size.

An anonymized dataset and the original it came from hold the same manifest rows (``cxrpriv anonymize``
keeps them), so their test sets are aligned film by film: row i of both is one film before and after
anonymization. :func:`aligned_test_sets` checks that, because every attack pairs an anonymized film with
an original one by that alignment. The original test films are every attack's gallery (and the reference's
queries): :class:`OriginalFilms` banks them once per size for the whole evaluation.
"""

from __future__ import annotations

import numpy as np
import torch

from cxrpriv.dataset import Dataset
from cxrpriv.evaluate import EvaluateInputError
from cxrpriv.reid.attack import FilmSet
from cxrpriv.training.image_bank import ImageBank


def test_films(dataset: Dataset, size: int | None, device: torch.device, progress: bool = False) -> FilmSet:
    """The test split of ``dataset`` (manifest order), area-resized to ``size`` (None: as stored)."""
    rows = dataset.split_rows()["test"]
    if len(rows) == 0:
        raise EvaluateInputError(f"{dataset.manifest_path}: the test split is empty: nothing to evaluate")
    reader = dataset.images()
    native = int(reader[int(rows[0])].shape[-1])
    bank = ImageBank.from_shards(
        reader, rows, device, size=None if size in (None, native) else size, progress=progress
    )
    manifest = dataset.manifest
    return FilmSet(
        bank,
        np.arange(len(rows)),
        manifest["patient_id"].astype(str).to_numpy()[rows],
        manifest["image_id"].astype(str).to_numpy()[rows],
    )


def check_aligned(anonymized: Dataset, original: Dataset) -> None:
    """The two datasets' test splits hold the same films in the same order (the attacks' alignment)."""
    ids = [
        d.manifest["image_id"].astype(str).to_numpy()[d.split_rows()["test"]] for d in (anonymized, original)
    ]
    if not np.array_equal(*ids):
        raise EvaluateInputError(
            f"{anonymized.manifest_path}: its test films are not those of {original.manifest_path} (is it "
            "`cxrpriv anonymize` output of that dataset?)"
        )


class OriginalFilms:
    """The original dataset's test films, banked at each size once (the first attack at a size loads them,
    every later one reuses the bank on the accelerator)."""

    def __init__(self, dataset: Dataset, device: torch.device) -> None:
        self.dataset = dataset
        self.device = device
        self._by_size: dict[int, FilmSet] = {}

    def at(self, size: int) -> FilmSet:
        if size not in self._by_size:
            self._by_size[size] = test_films(self.dataset, size, self.device)
        return self._by_size[size]


def aligned_test_sets(anonymized: Dataset, originals: OriginalFilms, size: int) -> tuple[FilmSet, FilmSet]:
    """(anonymized queries, original gallery) at ``size``, aligned film by film; the original dataset
    itself (the reference) is its own queries."""
    check_aligned(anonymized, originals.dataset)
    gallery = originals.at(size)
    if anonymized is originals.dataset:
        return gallery, gallery
    return test_films(anonymized, size, originals.device), gallery
