"""Typed loaders for the statistics derived from real chest X-ray tables.

The JSON files under ``cxrpriv/synth/data`` are written by ``scripts/derive_synth_stats.py`` from public
reference tables that are *not* part of the repository (see ``data/README.md`` for what each file holds and
its attribution). Only these small derived files are vendored, so the synthetic cohort generator can be
calibrated on a fresh clone.

The loaders are cached, so every caller shares one object: arrays are made read-only and mappings are
wrapped in :class:`types.MappingProxyType` so that no caller can change what another one sees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from types import MappingProxyType
from typing import Any

import numpy as np

# Also importable from here, where the synthesizer and its tests look for them.
from cxrpriv.chestxray14 import DATA_ENTRY_COLUMNS as DATA_ENTRY_COLUMNS
from cxrpriv.chestxray14 import FINDINGS as FINDINGS
from cxrpriv.chestxray14 import NO_FINDING as NO_FINDING

COHORT_STATS_FILE = "chestxray14_stats.json"
LABEL_NOISE_FILE = "label_noise.json"
LUNG_SHAPE_FILE = "lung_shape_model.json"


def read_packaged_json(name: str) -> dict[str, Any]:
    """Parse one of the vendored JSON files (``cxrpriv/synth/data/<name>``)."""
    resource = files("cxrpriv.synth") / "data" / name
    data: dict[str, Any] = json.loads(resource.read_text(encoding="utf-8"))
    return data


def _frozen_array(values: Any, dtype: Any = float) -> np.ndarray:
    array = np.array(values, dtype=dtype)
    array.setflags(write=False)
    return array


def _frozen_mapping(values: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType({key: float(value) for key, value in values.items()})


def label_set(labels: str) -> frozenset[str]:
    """The findings of a ChestX-ray14 ``Finding Labels`` string (``No Finding`` is the empty set)."""
    if labels == NO_FINDING:
        return frozenset()
    return frozenset(labels.split("|"))


@dataclass(frozen=True)
class Histogram:
    """A discrete distribution as distinct values and how often each occurred."""

    values: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_json(cls, block: Mapping[str, Sequence[Any]], dtype: Any = float) -> Histogram:
        if len(block["values"]) != len(block["counts"]):
            raise ValueError("histogram values and counts differ in length")
        return cls(
            values=_frozen_array(block["values"], dtype), counts=_frozen_array(block["counts"], np.int64)
        )

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def probabilities(self) -> np.ndarray:
        return self.counts / self.counts.sum()

    def mean(self) -> float:
        """Mean of a numeric histogram."""
        return float(np.dot(self.values.astype(float), self.probabilities))

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        """Draw ``size`` values with the histogram's frequencies."""
        return rng.choice(self.values, size=size, p=self.probabilities)


@dataclass(frozen=True)
class Transition:
    """How a finding's text-mined label moves from one follow-up image of a patient to the next."""

    p_persist: float
    """P(finding at follow-up t+1 | finding at t)."""
    p_onset: float
    """P(finding at follow-up t+1 | no finding at t)."""


@dataclass(frozen=True)
class CohortStats:
    """Cohort-level statistics of NIH ChestX-ray14 (labels are the *text-mined* ones)."""

    source: str
    n_images: int
    n_patients: int
    findings: tuple[str, ...]
    images_per_patient: Histogram
    age_first_image: Histogram
    age_step_years: Histogram
    sex: Mapping[str, float]
    view_position: Mapping[str, float]
    p_ap_given_previous: Mapping[str, float]
    """Keyed by the previous image's view: P(AP at t+1 | view at t)."""
    label_combinations: Histogram
    """Values are ``Finding Labels`` strings with findings in canonical order, by descending count."""
    p_same_labels_as_previous: float
    transition: Mapping[str, Transition]
    prevalence: Mapping[str, float]
    no_finding_fraction: float
    cooccurrence: np.ndarray
    """(14, 14): entry [i, j] is P(finding j | finding i), in :data:`FINDINGS` order."""
    prevalence_by_view: Mapping[str, Mapping[str, float]]
    pixel_spacing_mm: Histogram

    def prevalence_vector(self) -> np.ndarray:
        """Per-finding prevalence as an array in :data:`FINDINGS` order."""
        return np.array([self.prevalence[name] for name in self.findings])


@dataclass(frozen=True)
class NoiseRate:
    """Text-mining label noise of one finding, the adjudicated radiologist label taken as truth."""

    sensitivity: float
    """P(text-mined label = 1 | true label = 1)."""
    false_positive_rate: float
    """P(text-mined label = 1 | true label = 0); applies to truly negative images only."""
    source: str
    """``measured: <Google class>`` or ``fallback: <what>``."""
    sensitivity_ci95: tuple[float, float]
    false_positive_rate_ci95: tuple[float, float]
    text_mined_prevalence: float
    """Fraction of all ChestX-ray14 images whose text-mined labels include the finding."""
    implied_true_prevalence: float
    """Solves text_mined = sens * p + fpr * (1 - p) for p (clipped to [0, 1])."""

    @property
    def measured(self) -> bool:
        return self.source.startswith("measured")


@dataclass(frozen=True)
class LungShape:
    """PCA model of one lung's radial function r(theta) (see :attr:`LungShapeModel.convention`)."""

    centroid_mean: np.ndarray
    """(2,): (x, y) of the lung centroid, normalized by the two-lung bounding box, y downward."""
    centroid_std: np.ndarray
    mean_radius: np.ndarray
    """(K,): mean r(theta) in units of the bounding-box width."""
    modes: np.ndarray
    """(M, K): orthonormal principal directions, largest variance first."""
    mode_std: np.ndarray
    """(M,): standard deviation of the real masks' scores along each mode."""
    explained_variance_ratio: np.ndarray

    def radius(self, scores: np.ndarray) -> np.ndarray:
        """r(theta) for standardized mode scores (``scores[m]`` in units of ``mode_std[m]``)."""
        scores = np.asarray(scores, dtype=float)
        return (
            self.mean_radius + (scores * self.mode_std[: scores.shape[-1]]) @ self.modes[: scores.shape[-1]]
        )


@dataclass(frozen=True)
class LungShapeModel:
    """Statistical shape model of the two lungs from real hand-drawn lung masks."""

    theta: np.ndarray
    """(K,): the ray angles in radians."""
    image_left: LungShape
    """The lung on the left of the displayed image (the patient's right lung)."""
    image_right: LungShape
    box_aspect_mean: float
    """Mean height / width of the bounding box of both lungs."""
    box_aspect_std: float
    n_masks_used: int
    n_masks_skipped: int
    convention: str
    joint_variables: tuple[str, ...]
    """Names of the jointly Gaussian shape parameters, e.g. ``box_aspect``, ``image_left.z0``."""
    joint_mean: np.ndarray
    joint_covariance: np.ndarray
    """Covariance of the real masks' parameters: mode 0 of each lung moves with the box aspect and with
    the other lung, so draw the parameters together (see :meth:`sample_joint`), not one by one."""

    def sample_joint(self, rng: np.random.Generator) -> dict[str, float]:
        """One draw of all shape parameters from the joint Gaussian, keyed by :attr:`joint_variables`."""
        draw = rng.multivariate_normal(self.joint_mean, self.joint_covariance)
        return dict(zip(self.joint_variables, (float(value) for value in draw), strict=True))

    def mode_scores(self, parameters: Mapping[str, float], lung: str) -> np.ndarray:
        """The standardized mode scores of ``lung`` (``image_left``/``image_right``) in a joint draw."""
        n_modes = len(getattr(self, lung).mode_std)
        return np.array([parameters[f"{lung}.z{mode}"] for mode in range(n_modes)])


def _cohort_stats_from_json(data: Mapping[str, Any]) -> CohortStats:
    findings = tuple(data["findings"])
    if findings != FINDINGS:
        raise ValueError(f"{COHORT_STATS_FILE} lists findings {findings}, expected {FINDINGS}")
    cooc = data["cooccurrence"]
    if tuple(cooc["findings"]) != FINDINGS:
        raise ValueError(f"{COHORT_STATS_FILE}: cooccurrence is not in canonical finding order")
    return CohortStats(
        source=data["source"],
        n_images=int(data["n_images"]),
        n_patients=int(data["n_patients"]),
        findings=findings,
        images_per_patient=Histogram.from_json(data["images_per_patient"], np.int64),
        age_first_image=Histogram.from_json(data["age_first_image"], np.int64),
        age_step_years=Histogram.from_json(data["age_step_years"], np.int64),
        sex=_frozen_mapping(data["sex"]),
        view_position=_frozen_mapping(data["view_position"]),
        p_ap_given_previous=_frozen_mapping(data["p_ap_given_previous"]),
        label_combinations=Histogram.from_json(data["label_combinations"], str),
        p_same_labels_as_previous=float(data["p_same_labels_as_previous"]),
        transition=MappingProxyType(
            {
                name: Transition(p_persist=float(block["p_persist"]), p_onset=float(block["p_onset"]))
                for name, block in data["transition"].items()
            }
        ),
        prevalence=_frozen_mapping(data["prevalence"]),
        no_finding_fraction=float(data["no_finding_fraction"]),
        cooccurrence=_frozen_array(cooc["p_j_given_i"]),
        prevalence_by_view=MappingProxyType(
            {view: _frozen_mapping(block) for view, block in data["prevalence_by_view"].items()}
        ),
        pixel_spacing_mm=Histogram.from_json(data["pixel_spacing_mm"], float),
    )


def _interval(values: Sequence[float]) -> tuple[float, float]:
    low, high = values
    return float(low), float(high)


def _label_noise_from_json(data: Mapping[str, Any]) -> dict[str, NoiseRate]:
    per_finding = data["per_finding"]
    missing = [name for name in FINDINGS if name not in per_finding]
    if missing:
        raise ValueError(f"{LABEL_NOISE_FILE} has no per_finding entry for {missing}")
    return {
        name: NoiseRate(
            sensitivity=float(per_finding[name]["sensitivity"]),
            false_positive_rate=float(per_finding[name]["false_positive_rate"]),
            source=str(per_finding[name]["source"]),
            sensitivity_ci95=_interval(per_finding[name]["sensitivity_ci95"]),
            false_positive_rate_ci95=_interval(per_finding[name]["false_positive_rate_ci95"]),
            text_mined_prevalence=float(per_finding[name]["text_mined_prevalence"]),
            implied_true_prevalence=float(per_finding[name]["implied_true_prevalence"]),
        )
        for name in FINDINGS
    }


def _lung_from_json(block: Mapping[str, Any]) -> LungShape:
    return LungShape(
        centroid_mean=_frozen_array(block["centroid_mean"]),
        centroid_std=_frozen_array(block["centroid_std"]),
        mean_radius=_frozen_array(block["mean_radius"]),
        modes=_frozen_array(block["modes"]),
        mode_std=_frozen_array(block["mode_std"]),
        explained_variance_ratio=_frozen_array(block["explained_variance_ratio"]),
    )


def _lung_shape_from_json(data: Mapping[str, Any]) -> LungShapeModel:
    return LungShapeModel(
        # Exact angles from the count: the listed theta_rad are rounded to 6 significant digits.
        theta=_frozen_array(2 * np.pi * np.arange(int(data["n_angles"])) / int(data["n_angles"])),
        image_left=_lung_from_json(data["image_left"]),
        image_right=_lung_from_json(data["image_right"]),
        box_aspect_mean=float(data["box_aspect_mean"]),
        box_aspect_std=float(data["box_aspect_std"]),
        n_masks_used=int(data["n_masks_used"]),
        n_masks_skipped=int(data["n_masks_skipped"]),
        convention=str(data["convention"]),
        joint_variables=tuple(data["joint"]["variables"]),
        joint_mean=_frozen_array(data["joint"]["mean"]),
        joint_covariance=_frozen_array(data["joint"]["covariance"]),
    )


@cache
def load_cohort_stats() -> CohortStats:
    """ChestX-ray14 cohort statistics (``data/chestxray14_stats.json``)."""
    return _cohort_stats_from_json(read_packaged_json(COHORT_STATS_FILE))


@cache
def _label_noise() -> Mapping[str, NoiseRate]:
    return MappingProxyType(_label_noise_from_json(read_packaged_json(LABEL_NOISE_FILE)))


def load_label_noise() -> dict[str, NoiseRate]:
    """Per-finding text-mining noise rates for all 14 findings, in :data:`FINDINGS` order.

    A fresh dict each call (the rates themselves are immutable), so a caller may edit its own copy.
    """
    return dict(_label_noise())


@cache
def load_lung_shape_model() -> LungShapeModel:
    """Lung shape model from real lung masks (``data/lung_shape_model.json``)."""
    return _lung_shape_from_json(read_packaged_json(LUNG_SHAPE_FILE))
