"""Patient-wise stratified splits: disjoint, deterministic, near the fractions, stable across increments."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cxrpriv.ingest.splits import stratified_patient_splits

FRACTIONS = {"train": 0.7, "validation": 0.1, "test": 0.2}


def cohort(n_patients: int = 300, seed: int = 0) -> tuple[pd.Series, np.ndarray]:
    rng = np.random.default_rng(seed)
    per_patient = rng.integers(1, 6, n_patients)
    patients = pd.Series(np.repeat([f"P{i:04d}" for i in range(n_patients)], per_patient))
    prevalence = np.array([0.2, 0.1, 0.05, 0.02])
    labels = (rng.random((len(patients), len(prevalence))) < prevalence).astype(int)
    return patients, labels


def test_each_patient_in_one_split_and_images_near_the_fractions():
    patients, labels = cohort()
    splits = stratified_patient_splits(patients, labels, FRACTIONS, seed=1)
    assert set(splits) == set(patients)
    per_image = patients.map(splits)
    for name, fraction in FRACTIONS.items():
        assert abs((per_image == name).mean() - fraction) < 0.02
        for k in range(labels.shape[1]):  # every finding is spread like the images
            share = labels[(per_image == name).to_numpy(), k].sum() / labels[:, k].sum()
            assert abs(share - fraction) < 0.06, (name, k)


def test_deterministic_in_ids_and_seed_not_in_order():
    patients, labels = cohort()
    first = stratified_patient_splits(patients, labels, FRACTIONS, seed=1)
    order = np.random.default_rng(5).permutation(len(patients))
    shuffled = stratified_patient_splits(
        patients.iloc[order].reset_index(drop=True), labels[order], FRACTIONS, 1
    )
    assert first == shuffled
    assert first != stratified_patient_splits(patients, labels, FRACTIONS, seed=2)


def test_known_patients_keep_their_split_and_new_ones_are_stratified():
    patients, labels = cohort()
    first = stratified_patient_splits(patients, labels, FRACTIONS, seed=1)
    more, more_labels = cohort(100, seed=9)
    more = more.str.replace("P", "Q")
    both = pd.concat([patients, more], ignore_index=True)
    second = stratified_patient_splits(both, np.vstack([labels, more_labels]), FRACTIONS, 1, existing=first)
    assert all(second[p] == s for p, s in first.items())
    assert {second[p] for p in more} == set(FRACTIONS)


def test_a_zero_fraction_split_stays_empty():
    patients, labels = cohort(50)
    splits = stratified_patient_splits(patients, labels, {"train": 0.8, "validation": 0.0, "test": 0.2}, 3)
    assert "validation" not in set(splits.values())
