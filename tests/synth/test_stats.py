"""The vendored statistics derived from real chest X-ray tables, their loaders and the derivation script.

Everything except ``test_rederive_matches_vendored`` runs on a fresh clone: the real tables live outside the
repository (``../shared/data/real``) and that test is skipped where they are absent.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from importlib.resources import files
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from cxrpriv.synth.stats import (
    FINDINGS,
    LABEL_NOISE_FILE,
    NO_FINDING,
    label_set,
    load_cohort_stats,
    load_label_noise,
    load_lung_shape_model,
    read_packaged_json,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "derive_synth_stats.py"
REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
VENDORED_FILES = ("chestxray14_stats.json", "label_noise.json", "lung_shape_model.json")


@pytest.fixture(scope="module")
def derive() -> ModuleType:
    """The derivation script, imported as a module (``scripts/`` is not a package)."""
    spec = importlib.util.spec_from_file_location("derive_synth_stats", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ loaders


def test_findings_constant() -> None:
    assert len(FINDINGS) == 14
    assert len(set(FINDINGS)) == 14
    assert FINDINGS[0] == "Atelectasis" and FINDINGS[-1] == "Hernia"


def test_cohort_histograms_are_consistent() -> None:
    stats = load_cohort_stats()
    assert stats.findings == FINDINGS
    for histogram in (
        stats.images_per_patient,
        stats.age_first_image,
        stats.age_step_years,
        stats.label_combinations,
        stats.pixel_spacing_mm,
    ):
        assert histogram.values.size > 0
        assert histogram.values.shape == histogram.counts.shape
        assert (histogram.counts >= 0).all()
        assert histogram.total > 0
    assert stats.images_per_patient.total == stats.n_patients
    assert int(np.dot(stats.images_per_patient.values, stats.images_per_patient.counts)) == stats.n_images
    assert stats.images_per_patient.values.min() >= 1
    assert stats.label_combinations.total == stats.n_images
    assert stats.pixel_spacing_mm.total == stats.n_images
    assert stats.age_first_image.values.min() >= 0 and stats.age_first_image.values.max() <= 100
    assert stats.age_step_years.values.tolist() == list(range(21))
    # Every patient with a plausible first age is in the age histogram.
    raw = read_packaged_json("chestxray14_stats.json")
    assert stats.age_first_image.total == stats.n_patients - raw["age_first_image_dropped_patients"]


def test_cohort_probabilities_are_probabilities() -> None:
    stats = load_cohort_stats()
    for mapping in (stats.sex, stats.view_position):
        assert math.isclose(sum(mapping.values()), 1.0, abs_tol=1e-5)
    scalars = [
        stats.p_same_labels_as_previous,
        stats.no_finding_fraction,
        *stats.sex.values(),
        *stats.view_position.values(),
        *stats.p_ap_given_previous.values(),
        *stats.prevalence.values(),
        *(p for block in stats.prevalence_by_view.values() for p in block.values()),
        *(p for t in stats.transition.values() for p in (t.p_persist, t.p_onset)),
    ]
    assert all(0.0 <= p <= 1.0 for p in scalars)
    assert set(stats.prevalence) == set(FINDINGS) == set(stats.transition)
    assert set(stats.p_ap_given_previous) == set(stats.view_position) == {"AP", "PA"}
    assert stats.cooccurrence.shape == (14, 14)
    assert ((stats.cooccurrence >= 0) & (stats.cooccurrence <= 1)).all()
    np.testing.assert_allclose(np.diag(stats.cooccurrence), 1.0)
    # P(j | i) P(i) = P(i, j) is symmetric.
    joint = stats.cooccurrence * stats.prevalence_vector()[:, None]
    np.testing.assert_allclose(joint, joint.T, rtol=1e-4, atol=1e-8)


def test_prevalence_agrees_with_label_combinations() -> None:
    stats = load_cohort_stats()
    combos = stats.label_combinations
    assert len(set(combos.values.tolist())) == combos.values.size
    assert (np.diff(combos.counts) <= 0).all(), "label combinations are sorted by descending count"
    positives = dict.fromkeys(FINDINGS, 0)
    for text, count in zip(combos.values.tolist(), combos.counts.tolist(), strict=True):
        findings = label_set(text)
        assert findings <= set(FINDINGS)
        if findings:
            assert text.split("|") == [name for name in FINDINGS if name in findings], "canonical order"
        for name in findings:
            positives[name] += count
    for name in FINDINGS:
        assert math.isclose(positives[name] / stats.n_images, stats.prevalence[name], rel_tol=1e-5)
    no_finding = int(combos.counts[combos.values == NO_FINDING].sum())
    assert math.isclose(no_finding / stats.n_images, stats.no_finding_fraction, rel_tol=1e-5)


def test_loaders_return_read_only_data() -> None:
    stats = load_cohort_stats()
    assert load_cohort_stats() is stats
    with pytest.raises(ValueError):
        stats.cooccurrence[0, 0] = 0.5
    with pytest.raises(TypeError):
        stats.prevalence["Hernia"] = 0.5  # type: ignore[index]


def test_label_noise_rates() -> None:
    noise = load_label_noise()
    assert list(noise) == list(FINDINGS)
    for name, rate in noise.items():
        for value, (low, high) in (
            (rate.sensitivity, rate.sensitivity_ci95),
            (rate.false_positive_rate, rate.false_positive_rate_ci95),
        ):
            assert 0.0 <= low <= value <= high <= 1.0, name
        assert rate.sensitivity > rate.false_positive_rate, name
        assert 0.0 <= rate.implied_true_prevalence <= 1.0
        # The noise model must be able to reproduce the text-mined prevalence from the implied truth.
        p = rate.implied_true_prevalence
        rebuilt = rate.sensitivity * p + rate.false_positive_rate * (1 - p)
        assert math.isclose(rebuilt, rate.text_mined_prevalence, rel_tol=1e-3, abs_tol=1e-5), name
    assert noise["Pneumothorax"].source == "measured: Pneumothorax"
    assert noise["Nodule"].source == noise["Mass"].source == "measured: Nodule or mass"
    for name in ("Consolidation", "Pneumonia", "Infiltration"):
        assert noise[name].source == "measured: Airspace opacity"
    for name in ("Cardiomegaly", "Effusion", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia"):
        assert noise[name].source.startswith("fallback:") and not noise[name].measured


def test_label_noise_counts_and_notes() -> None:
    raw = read_packaged_json(LABEL_NOISE_FILE)
    assert raw["n"] == sum(raw["n_by_set"].values())
    assert raw["mapping_note"] and raw["note"] and raw["source"] and raw["derived_by"]
    for name, block in raw["classes"].items():
        assert block["tp"] + block["fp"] + block["fn"] + block["tn"] == raw["n"], name
        assert math.isclose(block["sensitivity"], block["tp"] / (block["tp"] + block["fn"]), rel_tol=1e-5)
        assert math.isclose(
            block["false_positive_rate"], block["fp"] / (block["fp"] + block["tn"]), rel_tol=1e-5
        )
        by_set = block["by_set"].values()
        assert sum(sum(counts.values()) for counts in by_set) == raw["n"]


def test_readme_table_matches_label_noise() -> None:
    readme = (files("cxrpriv.synth") / "data" / "README.md").read_text(encoding="utf-8")
    for name in ("chestxray14_stats.json", "label_noise.json", "lung_shape_model.json"):
        assert name in readme
    noise = load_label_noise()
    row = re.compile(r"^\| (\w+) \| ([\d.]+) \(.*?\) \| ([\d.]+) \(.*?\) \|.*\| (\w+): .* \|$", re.M)
    rows = {match[0]: match for match in row.findall(readme)}
    assert set(rows) == set(FINDINGS)
    for name, (_, sensitivity, false_positive_rate, kind) in rows.items():
        assert float(sensitivity) == round(noise[name].sensitivity, 3), name
        assert float(false_positive_rate) == round(noise[name].false_positive_rate, 4), name
        assert noise[name].source.startswith(kind)


def test_lung_shape_model_shapes() -> None:
    model = load_lung_shape_model()
    k = model.theta.size
    assert k == 64
    np.testing.assert_allclose(np.diff(model.theta), 2 * np.pi / k)
    np.testing.assert_allclose(
        model.theta, read_packaged_json("lung_shape_model.json")["theta_rad"], atol=1e-5
    )
    for lung in (model.image_left, model.image_right):
        assert lung.mean_radius.shape == (k,)
        assert (lung.mean_radius > 0).all()
        assert lung.modes.shape == (8, k)
        assert lung.mode_std.shape == (8,)
        assert (lung.mode_std > 0).all() and (np.diff(lung.mode_std) <= 0).all()
        np.testing.assert_allclose(lung.modes @ lung.modes.T, np.eye(8), atol=1e-4)
        assert lung.centroid_mean.shape == lung.centroid_std.shape == (2,)
        assert ((lung.centroid_mean > 0) & (lung.centroid_mean < 1)).all()
        np.testing.assert_allclose(lung.radius(np.zeros(8)), lung.mean_radius)
    assert model.image_left.centroid_mean[0] < 0.5 < model.image_right.centroid_mean[0]
    assert model.box_aspect_mean > 0 and model.box_aspect_std > 0
    assert model.n_masks_used > 8 and model.n_masks_skipped >= 0
    assert "counter-clockwise" in model.convention


def test_lung_shape_joint_model() -> None:
    model = load_lung_shape_model()
    n = len(model.joint_variables)
    assert model.joint_mean.shape == (n,) and model.joint_covariance.shape == (n, n)
    np.testing.assert_allclose(model.joint_covariance, model.joint_covariance.T)
    assert np.linalg.eigvalsh(model.joint_covariance).min() > 0
    draw = model.sample_joint(np.random.default_rng(0))
    assert set(draw) == set(model.joint_variables)
    scores = model.mode_scores(draw, "image_left")
    assert scores.shape == (8,)
    assert model.image_left.radius(scores).shape == model.theta.shape


# ------------------------------------------------------------------------------ derivation script


def test_wilson_interval(derive: ModuleType) -> None:
    low, high = derive.wilson_interval(5, 10)
    assert math.isclose(low, 0.236593, rel_tol=1e-4) and math.isclose(high, 0.763407, rel_tol=1e-4)
    low, high = derive.wilson_interval(0, 20)
    assert low == 0.0 and 0 < high < 0.2


def test_derive_cohort_stats_on_a_toy_table(derive: ModuleType, tmp_path: Path) -> None:
    # The real header has commas inside brackets; the reader must still map the 11 columns right.
    header = (
        "Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
        "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]"
    )
    everything = "|".join(sorted(FINDINGS))  # every finding once, so no transition has an empty denominator
    rows = [
        "00000001_001.png,Nodule|Effusion,1,1,41,M,AP,2500,2048,0.168,0.168",
        "00000001_000.png,Effusion,0,1,40,M,PA,2500,2048,0.14300000000000002,0.143",
        "00000001_002.png,No Finding,2,1,41,M,AP,2500,2048,0.168,0.168",
        "00000002_000.png,No Finding,0,2,70,F,PA,3000,2800,0.139,0.139",
        "00000003_000.png,No Finding,0,3,30,F,PA,3000,2800,0.139,0.139",
        f"00000003_001.png,{everything},1,3,30,F,PA,3000,2800,0.139,0.139",
        "00000003_002.png,No Finding,2,3,31,F,PA,3000,2800,0.139,0.139",
    ]
    path = tmp_path / "Data_Entry.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    stats = derive.derive_cohort_stats(derive.read_data_entry(path))
    assert stats["n_images"] == 7 and stats["n_patients"] == 3
    assert stats["images_per_patient"] == {"values": [1, 3], "counts": [1, 2]}
    assert stats["age_first_image"] == {"values": [30, 40, 70], "counts": [1, 1, 1]}
    assert stats["age_step_years"]["counts"][:3] == [2, 2, 0]
    assert stats["sex"] == {"F": 2 / 3, "M": 1 / 3}
    # Canonical order inside a combination ("Nodule|Effusion" -> "Effusion|Nodule"), descending count.
    assert stats["label_combinations"] == {
        "values": ["No Finding", "|".join(FINDINGS), "Effusion", "Effusion|Nodule"],
        "counts": [4, 1, 1, 1],
    }
    # Follow-up # order, not file order: Effusion -> Effusion|Nodule -> No Finding.
    assert math.isclose(stats["transition"]["Effusion"]["p_persist"], 1 / 3)
    assert stats["transition"]["Nodule"] == {"p_persist": 0.0, "p_onset": 1.0}
    assert stats["p_same_labels_as_previous"] == 0.0
    assert stats["p_ap_given_previous"] == {"AP": 1.0, "PA": 1 / 3}
    assert stats["pixel_spacing_mm"] == {"values": [0.139, 0.143, 0.168], "counts": [4, 1, 2]}
    assert math.isclose(stats["prevalence"]["Nodule"], 2 / 7)


def test_measure_mask_on_ellipses(derive: ModuleType) -> None:
    rows, columns = np.mgrid[0:300, 0:400]
    left = ((columns - 100) / 60) ** 2 + ((rows - 150) / 100) ** 2 <= 1
    right = ((columns - 300) / 60) ** 2 + ((rows - 150) / 100) ** 2 <= 1
    theta = 2 * np.pi * np.arange(64) / 64
    measured = derive.measure_mask(left | right, theta)
    assert isinstance(measured, dict)
    width = 320.0  # both ellipses together span x 40..360
    assert math.isclose(measured["box_aspect"], 200 / width, rel_tol=0.02)
    np.testing.assert_allclose(measured["image_left"]["centroid"], (60 / width, 0.5), atol=0.01)
    expected = 1 / np.sqrt((np.cos(theta) / 60) ** 2 + (np.sin(theta) / 100) ** 2) / width
    np.testing.assert_allclose(measured["image_right"]["radius"], expected, atol=2 / width)
    assert derive.measure_mask(left, theta) == "fewer than two connected components"


def test_missing_input_file_is_named(
    derive: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert derive.main(["--real-dir", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "Data_Entry_2017_v2020.csv.gz" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def _assert_same(derived: Any, vendored: Any, where: str) -> None:
    # Floats may differ in the last rounded digit across BLAS/LAPACK builds; everything else is exact.
    if isinstance(vendored, dict):
        assert isinstance(derived, dict) and derived.keys() == vendored.keys(), where
        for key in vendored:
            _assert_same(derived[key], vendored[key], f"{where}.{key}")
    elif isinstance(vendored, list):
        assert isinstance(derived, list) and len(derived) == len(vendored), where
        for index, (a, b) in enumerate(zip(derived, vendored, strict=True)):
            _assert_same(a, b, f"{where}[{index}]")
    elif isinstance(vendored, float):
        assert math.isclose(derived, vendored, rel_tol=2e-5, abs_tol=1e-6), (
            f"{where}: {derived} != {vendored}"
        )
    else:
        assert derived == vendored, f"{where}: {derived!r} != {vendored!r}"


@pytest.mark.slow
def test_rederive_matches_vendored(derive: ModuleType, tmp_path: Path) -> None:
    if not REAL_DIR.is_dir():
        pytest.skip(f"real reference tables not present at {REAL_DIR} (not part of a fresh clone)")
    assert derive.main(["--real-dir", str(REAL_DIR), "--out", str(tmp_path)]) == 0
    for name in VENDORED_FILES:
        derived = json.loads((tmp_path / name).read_text(encoding="utf-8"))
        _assert_same(derived, read_packaged_json(name), name)
