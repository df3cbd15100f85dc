"""Derive the small, vendorable statistics that calibrate the synthetic cohort generator.

Reads public reference tables that are *not* part of the repository (NIH ChestX-ray14 metadata, the
Google 2019 radiologist re-read of 4,376 of its images, and V7 Labs hand-drawn lung masks) and writes three
JSON files into ``src/cxrpriv/synth/data``:

* ``chestxray14_stats.json``: cohort structure, demographics, views and text-mined label statistics;
* ``label_noise.json``: how the text-mined labels disagree with adjudicated radiologist labels;
* ``lung_shape_model.json``: a PCA model of each lung's radial outline.

The output is deterministic (sorted keys, floats rounded to 6 significant digits), so re-running it on the
same tables reproduces the vendored files and a diff shows any real change.

Usage, from the repository root::

    python scripts/derive_synth_stats.py --real-dir ../shared/data/real
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from scipy import ndimage

try:
    from cxrpriv.synth import stats
except ModuleNotFoundError:  # a checkout without `pip install -e .`: use the sources next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from cxrpriv.synth import stats

FINDINGS = stats.FINDINGS
NO_FINDING = stats.NO_FINDING

DATA_ENTRY_FILE = "Data_Entry_2017_v2020.csv.gz"
GOOGLE_FILE = "google2019_nih-chest-xray-labels.csv.gz"
MASKS_FILE = "semantic_masks_v7labs_lungs.zip"

DERIVED_BY = "scripts/derive_synth_stats.py"
SOURCE_NIH = (
    "NIH Clinical Center ChestX-ray14, Data_Entry_2017_v2020.csv "
    "(as shipped in the torchxrayvision 1.5.7 wheel)"
)
SOURCE_GOOGLE = (
    "Majkowska et al., Radiology 2019 (Google): radiologist-adjudicated labels of 4,376 ChestX-ray14 images, "
    "google2019_nih-chest-xray-labels.csv (as shipped in torchxrayvision); text-mined labels from "
    "NIH Clinical Center ChestX-ray14"
)
SOURCE_MASKS = (
    "V7 Labs COVID-19 X-ray lung masks, semantic_masks_v7labs_lungs (as shipped in torchxrayvision)"
)

# The header of the NIH table puts commas inside brackets ("OriginalImage[Width,Height]"), so a CSV reader
# splits those two names into four columns; the data rows really do have four values there.
DATA_ENTRY_COLUMNS = (
    "image_index",
    "finding_labels",
    "follow_up",
    "patient_id",
    "age",
    "sex",
    "view",
    "width",
    "height",
    "spacing_x",
    "spacing_y",
)
DATA_ENTRY_HEADER_START = stats.DATA_ENTRY_COLUMNS[:7]
MAX_PLAUSIBLE_AGE = 100  # older versions of the table had ages like 148 and 413 (typos); none is real
MAX_AGE_STEP = 20

# Google class -> the text-mined ChestX-ray14 findings that count as a positive for it.
GOOGLE_CLASSES: dict[str, tuple[str, ...]] = {
    "Pneumothorax": ("Pneumothorax",),
    "Nodule or mass": ("Nodule", "Mass"),
    "Airspace opacity": ("Consolidation", "Pneumonia", "Infiltration", "Edema", "Atelectasis"),
}
MAPPING_NOTE = (
    "Pneumothorax <- text-mined Pneumothorax. Nodule or mass <- text-mined Nodule OR Mass. Airspace opacity "
    "<- text-mined Consolidation OR Pneumonia OR Infiltration OR Edema OR Atelectasis: these are the five "
    "ChestX-ray14 findings whose radiographic sign is increased parenchymal (airspace) density, and on this "
    "table each of them, taken alone, is adjudicated as airspace opacity in {ppv_low:.0%}-{ppv_high:.0%} of "
    "its text-mined positives (classes.*.members.*.ppv). Effusion also has a high PPV ({effusion_ppv:.0%}) "
    "but it is pleural fluid, not an airspace process: it co-occurs with basal opacity rather than being "
    "one, so it is left out. Fracture has no ChestX-ray14 counterpart and is not used."
)
WILSON_Z = 1.959963984540054  # two-sided 95%

N_ANGLES = 64
N_MODES = 8
LUNG_VALUE_THRESHOLD = 192  # lungs are 255; 127 marks other drawn objects (rulers, markers, boxes)
CLOSING_SIZE = 5  # square structuring element, in resampled pixels
MASK_MAX_SIDE = 512  # masks are resampled so that the longest side is at most this many pixels
RAY_STEP_PX = 0.25
MIN_SECOND_LUNG_FRACTION = 0.25  # smaller second component: one lung missing or both lungs merged
MIN_CENTROID_SEPARATION = 0.25  # in box widths; closer: the two components are not left and right lungs
ANGLE_CONVENTION = (
    "theta_k = 2*pi*k/K, k = 0..K-1 (K = 64), in radians. Image coordinates: x to the right, y downward, "
    "pixel (row i, column j) covers [j, j+1) x [i, i+1). The ray at theta leaves the lung centroid in "
    "direction (dx, dy) = (cos theta, -sin theta): theta = 0 points to the image right, pi/2 points up "
    "(toward the apices), i.e. counter-clockwise as displayed. r(theta) is the distance from the centroid "
    "to the farthest mask pixel along the ray, in pixels divided by the width of the bounding box of both "
    "lungs (distances are isotropic: the same unit along x and y). Centroids are ((x - box_x0) / box_width, "
    "(y - box_y0) / box_height). image_left is the lung on the left of the displayed image, conventionally "
    "the patient's right lung. To draw a lung: pick box width W and height H = aspect * W, place the "
    "centroid at (x0 + cx * W, y0 + cy * H) and trace centroid + r(theta) * W * (cos theta, -sin theta)."
)


class InputError(Exception):
    """A reference table that is missing or does not have the expected layout."""


# --------------------------------------------------------------------------------------------- helpers


def _require(path: Path, what: str) -> Path:
    if not path.is_file():
        raise InputError(
            f"missing input file {path} ({what}); pass --real-dir pointing at the reference tables"
        )
    return path


def _round_sig(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"non-finite value {value!r} in derived statistics")
    return float(f"{value:.6g}")


def _jsonable(obj: Any) -> Any:
    """Plain JSON types with floats rounded to 6 significant digits, so output is stable across runs."""
    if isinstance(obj, Mapping):
        return {str(key): _jsonable(value) for key, value in obj.items()}
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, list | tuple):
        return [_jsonable(value) for value in obj]
    if isinstance(obj, bool | np.bool_):
        return bool(obj)
    if isinstance(obj, int | np.integer):
        return int(obj)
    if isinstance(obj, float | np.floating):
        return _round_sig(float(obj))
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"cannot write {type(obj).__name__} to JSON")


def write_json(path: Path, data: Mapping[str, Any]) -> int:
    """Write ``data`` deterministically; returns the number of bytes written."""
    text = json.dumps(_jsonable(data), sort_keys=True, indent=1, allow_nan=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))


def _histogram(values: np.ndarray) -> dict[str, list[Any]]:
    distinct, counts = np.unique(values, return_counts=True)
    return {"values": distinct.tolist(), "counts": counts.tolist()}


def _ratio(numerator: float, denominator: float) -> float:
    if denominator <= 0:
        raise ValueError("empty denominator in a derived probability")
    return numerator / denominator


def wilson_interval(successes: int, trials: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (well-behaved near 0 and 1, unlike the Wald one)."""
    if trials <= 0:
        raise ValueError("Wilson interval of an empty sample")
    p = successes / trials
    denominator = 1 + z * z / trials
    center = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, center - half), min(1.0, center + half)


# ------------------------------------------------------------------------------------- ChestX-ray14


def finding_matrix(labels: pd.Series) -> np.ndarray:
    """(n, 14) boolean matrix of the text-mined findings of each ``Finding Labels`` string."""
    index = {name: column for column, name in enumerate(FINDINGS)}
    by_string: dict[str, np.ndarray] = {}
    for text in labels.unique():
        tokens = set(str(text).split("|"))
        unknown = tokens - set(FINDINGS) - {NO_FINDING}
        if unknown:
            raise InputError(f"unknown finding(s) {sorted(unknown)} in Finding Labels {text!r}")
        if NO_FINDING in tokens and len(tokens) > 1:
            raise InputError(f"'{NO_FINDING}' together with findings in {text!r}")
        row = np.zeros(len(FINDINGS), dtype=bool)
        row[[index[name] for name in tokens if name != NO_FINDING]] = True
        by_string[str(text)] = row
    return np.stack([by_string[str(text)] for text in labels])


def canonical_label_string(row: np.ndarray) -> str:
    names = [name for name, present in zip(FINDINGS, row, strict=True) if present]
    return "|".join(names) if names else NO_FINDING


def read_data_entry(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    header = tuple(str(name) for name in table.columns[: len(DATA_ENTRY_HEADER_START)])
    if header != DATA_ENTRY_HEADER_START or table.shape[1] < len(DATA_ENTRY_COLUMNS):
        raise InputError(f"{path}: unexpected header {list(table.columns)}")
    # Some releases end every row with a comma (an extra empty column); only the first 11 are data.
    table = table.iloc[:, : len(DATA_ENTRY_COLUMNS)].copy()
    table.columns = list(DATA_ENTRY_COLUMNS)
    return table.sort_values(["patient_id", "follow_up"], kind="stable").reset_index(drop=True)


def derive_cohort_stats(table: pd.DataFrame) -> dict[str, Any]:
    """Statistics of ChestX-ray14; ``table`` comes from :func:`read_data_entry` (sorted by follow-up)."""
    if table.duplicated(["patient_id", "follow_up"]).any():
        raise InputError("duplicate (Patient ID, Follow-up #) rows")
    findings = finding_matrix(table["finding_labels"])
    patient = table["patient_id"].to_numpy()
    age = table["age"].to_numpy()
    view = table["view"].to_numpy().astype(str)
    n_images = len(table)

    # Consecutive pairs of the same patient, in Follow-up # order (the v2020 table renumbered Follow-up #
    # chronologically; the number in the file name is not always chronological).
    same = patient[1:] == patient[:-1]
    previous, following = findings[:-1][same], findings[1:][same]

    first = ~np.r_[False, same]  # the first image of each patient (lowest Follow-up #)
    images_per_patient = np.unique(patient, return_counts=True)[1]

    valid_age = (age >= 0) & (age <= MAX_PLAUSIBLE_AGE)
    age_first = age[first & valid_age]
    valid_pair = same & valid_age[1:] & valid_age[:-1]
    age_step = (age[1:] - age[:-1])[valid_pair]

    sex_first = table["sex"].to_numpy().astype(str)[first]
    sex_per_patient = table.groupby("patient_id")["sex"].nunique()

    views = sorted(set(view))
    view_previous, view_following = view[:-1][same], view[1:][same]
    p_ap_given_previous = {
        name: _ratio(
            float(np.sum((view_previous == name) & (view_following == "AP"))), np.sum(view_previous == name)
        )
        for name in views
    }

    canonical = pd.Series([canonical_label_string(row) for row in findings])
    combo_counts = sorted(Counter(canonical).items(), key=lambda item: (-item[1], item[0]))

    counts = findings.sum(axis=0)
    joint = findings.T.astype(np.int64) @ findings.astype(np.int64)

    spacing = np.round(table["spacing_x"].to_numpy(dtype=float), 3)
    spacing_values, spacing_counts = np.unique(spacing, return_counts=True)

    return {
        "source": SOURCE_NIH,
        "derived_by": DERIVED_BY,
        "n_images": n_images,
        "n_patients": len(images_per_patient),
        "n_consecutive_pairs": int(same.sum()),
        "findings": list(FINDINGS),
        "images_per_patient": _histogram(images_per_patient),
        "age_first_image": _histogram(age_first),
        "age_dropped_rows": int((~valid_age).sum()),
        "age_first_image_dropped_patients": int((first & ~valid_age).sum()),
        "age_step_years": {
            "values": list(range(MAX_AGE_STEP + 1)),
            "counts": np.bincount(np.clip(age_step, 0, MAX_AGE_STEP), minlength=MAX_AGE_STEP + 1).tolist(),
        },
        "age_step_negative_pairs": int((age_step < 0).sum()),
        "sex": {name: count / len(sex_first) for name, count in sorted(Counter(sex_first).items())},
        "sex_inconsistent_patients": int((sex_per_patient > 1).sum()),
        "view_position": {name: float(np.mean(view == name)) for name in views},
        "p_ap_given_previous": p_ap_given_previous,
        "label_combinations": {
            "values": [text for text, _ in combo_counts],
            "counts": [count for _, count in combo_counts],
        },
        "p_same_labels_as_previous": float(np.mean(np.all(previous == following, axis=1))),
        "transition": {
            name: {
                "p_persist": _ratio(np.sum(previous[:, i] & following[:, i]), np.sum(previous[:, i])),
                "p_onset": _ratio(np.sum(~previous[:, i] & following[:, i]), np.sum(~previous[:, i])),
            }
            for i, name in enumerate(FINDINGS)
        },
        "prevalence": {name: counts[i] / n_images for i, name in enumerate(FINDINGS)},
        "no_finding_fraction": float(np.mean(~findings.any(axis=1))),
        "cooccurrence": {
            "findings": list(FINDINGS),
            "p_j_given_i": joint / np.diag(joint)[:, None],
        },
        "prevalence_by_view": {
            name: {finding: float(findings[view == name, i].mean()) for i, finding in enumerate(FINDINGS)}
            for name in views
        },
        "pixel_spacing_mm": {"values": spacing_values.tolist(), "counts": spacing_counts.tolist()},
    }


# ---------------------------------------------------------------------------------------- label noise


def read_google(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    needed = ["Image Index", "Finding Labels", "Set Id", *GOOGLE_CLASSES]
    missing = [name for name in needed if name not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}")
    for name in GOOGLE_CLASSES:
        bad = set(table[name].unique()) - {"YES", "NO"}
        if bad:
            raise InputError(f"{path}: column {name!r} has values {sorted(bad)}, expected YES/NO")
    return table


def _confusion(text_mined: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    return {
        "tp": int(np.sum(text_mined & truth)),
        "fp": int(np.sum(text_mined & ~truth)),
        "fn": int(np.sum(~text_mined & truth)),
        "tn": int(np.sum(~text_mined & ~truth)),
    }


def _rates(confusion: Mapping[str, int]) -> dict[str, Any]:
    positives = confusion["tp"] + confusion["fn"]
    negatives = confusion["fp"] + confusion["tn"]
    return {
        "sensitivity": _ratio(confusion["tp"], positives),
        "sensitivity_ci95": wilson_interval(confusion["tp"], positives),
        "false_positive_rate": _ratio(confusion["fp"], negatives),
        "false_positive_rate_ci95": wilson_interval(confusion["fp"], negatives),
    }


def _implied_true_prevalence(text_mined: float, sensitivity: float, false_positive_rate: float) -> float:
    # text_mined = sens * p + fpr * (1 - p)  =>  p = (text_mined - fpr) / (sens - fpr)
    if sensitivity <= false_positive_rate:
        return 0.0
    return min(1.0, max(0.0, (text_mined - false_positive_rate) / (sensitivity - false_positive_rate)))


def derive_label_noise(google: pd.DataFrame, cohort: Mapping[str, Any]) -> dict[str, Any]:
    """Text-mining noise from the Google re-read; ``cohort`` is :func:`derive_cohort_stats`'s output."""
    full_prevalence: Mapping[str, float] = cohort["prevalence"]
    text = finding_matrix(google["Finding Labels"])
    column = {name: i for i, name in enumerate(FINDINGS)}
    set_id = google["Set Id"].to_numpy().astype(str)

    classes: dict[str, Any] = {}
    per_finding: dict[str, Any] = {}
    member_fp = member_negatives = 0
    expected_fp = 0.0  # sum over measured findings of negatives * full-table text-mined prevalence
    ratios: dict[str, float] = {}
    for google_class, members in GOOGLE_CLASSES.items():
        truth = google[google_class].to_numpy() == "YES"
        mined = text[:, [column[name] for name in members]].any(axis=1)
        confusion = _confusion(mined, truth)
        rates = _rates(confusion)
        member_blocks: dict[str, Any] = {}
        for name in members:
            # A member can only be truly present where the class is, so on images the radiologists called
            # class-negative a text-mined member is a false positive of that member alone.
            member = _confusion(text[:, column[name]], truth)
            member_rates = _rates(member)
            member_blocks[name] = {
                "fp": member["fp"],
                "tn": member["tn"],
                "ppv": _ratio(member["tp"], member["tp"] + member["fp"]),
                "false_positive_rate": member_rates["false_positive_rate"],
                "false_positive_rate_ci95": member_rates["false_positive_rate_ci95"],
            }
            member_fp += member["fp"]
            member_negatives += member["fp"] + member["tn"]
            expected_fp += (member["fp"] + member["tn"]) * full_prevalence[name]
            ratios[name] = member_rates["false_positive_rate"] / full_prevalence[name]
            per_finding[name] = {
                "sensitivity": rates["sensitivity"],
                "sensitivity_ci95": rates["sensitivity_ci95"],
                "false_positive_rate": member_rates["false_positive_rate"],
                "false_positive_rate_ci95": member_rates["false_positive_rate_ci95"],
                "source": f"measured: {google_class}",
                "basis": (
                    f"sensitivity: P(text-mined {' or '.join(members)} | {google_class} = YES), class level; "
                    f"false-positive rate: P(text-mined {name} | {google_class} = NO)"
                ),
            }
        classes[google_class] = {
            "text_mined_findings": list(members),
            "n": len(google),
            **confusion,
            **rates,
            "true_prevalence_in_subset": float(truth.mean()),
            "by_set": {
                name: _confusion(mined[set_id == name], truth[set_id == name]) for name in sorted(set(set_id))
            },
            "members": member_blocks,
        }

    pooled_tp = sum(block["tp"] for block in classes.values())
    pooled_positives = sum(block["tp"] + block["fn"] for block in classes.values())
    pooled_fp = sum(block["fp"] for block in classes.values())
    pooled_negatives = sum(block["fp"] + block["tn"] for block in classes.values())
    fpr_ratio = member_fp / expected_fp
    fpr_ratio_low, fpr_ratio_high = (
        bound * member_negatives / expected_fp for bound in wilson_interval(member_fp, member_negatives)
    )
    pooled = {
        "sensitivity": pooled_tp / pooled_positives,
        "sensitivity_ci95": wilson_interval(pooled_tp, pooled_positives),
        "false_positive_rate_class_level": pooled_fp / pooled_negatives,
        "false_positive_rate_class_level_ci95": wilson_interval(pooled_fp, pooled_negatives),
        "false_positive_rate_per_finding": member_fp / member_negatives,
        "fpr_to_text_mined_prevalence_ratio": fpr_ratio,
        "fpr_to_text_mined_prevalence_ratio_ci95": (fpr_ratio_low, fpr_ratio_high),
        "fpr_to_text_mined_prevalence_ratio_by_finding": ratios,
    }

    for name in FINDINGS:
        if name not in per_finding:
            per_finding[name] = {
                "sensitivity": pooled["sensitivity"],
                "sensitivity_ci95": pooled["sensitivity_ci95"],
                "false_positive_rate": fpr_ratio * full_prevalence[name],
                "false_positive_rate_ci95": (
                    fpr_ratio_low * full_prevalence[name],
                    fpr_ratio_high * full_prevalence[name],
                ),
                "source": "fallback: pooled over measured classes",
                "basis": (
                    "sensitivity: pooled (count-weighted) class-level sensitivity of "
                    f"{', '.join(GOOGLE_CLASSES)}; false-positive rate: this finding's text-mined "
                    "prevalence times the pooled ratio of measured per-finding false-positive rate to "
                    "text-mined prevalence"
                ),
            }
        entry = per_finding[name]
        entry["text_mined_prevalence"] = full_prevalence[name]
        entry["implied_true_prevalence"] = _implied_true_prevalence(
            full_prevalence[name], entry["sensitivity"], entry["false_positive_rate"]
        )

    airspace_ppv = [block["ppv"] for block in classes["Airspace opacity"]["members"].values()]
    truth_effusion = google["Airspace opacity"].to_numpy() == "YES"
    effusion = text[:, column["Effusion"]]
    view = google["View Position"].to_numpy().astype(str) if "View Position" in google else None
    subset_prevalence = ", ".join(
        f"{name} {block['true_prevalence_in_subset']:.0%}" for name, block in classes.items()
    )
    view_note = (
        f"; {np.mean(view == 'AP'):.0%} AP views against {cohort['view_position'].get('AP', 0.0):.0%} in "
        "the full table"
        if view is not None
        else ""
    )
    return {
        "source": SOURCE_GOOGLE,
        "derived_by": DERIVED_BY,
        "n": len(google),
        "n_by_set": {name: int(np.sum(set_id == name)) for name in sorted(set(set_id))},
        "truth": "adjudicated radiologist label (Google re-read); text-mined = ChestX-ray14 Finding Labels",
        "mapping_note": MAPPING_NOTE.format(
            ppv_low=min(airspace_ppv),
            ppv_high=max(airspace_ppv),
            effusion_ppv=_ratio(np.sum(effusion & truth_effusion), np.sum(effusion)),
        ),
        "classes": classes,
        "pooled": pooled,
        "per_finding": {name: per_finding[name] for name in FINDINGS},
        "note": (
            "The Google subset is enriched for positives (adjudicated prevalence: "
            f"{subset_prevalence}{view_note}), so neither its PPV nor its label prevalence transfers to the "
            "full cohort. Sensitivity and false-positive rate are conditional on the true label and "
            "transfer better: apply `sensitivity` to images whose true label is positive and "
            "`false_positive_rate` to images whose true label is negative, never to all images. "
            "Per-finding false-positive rates of measured findings are P(text-mined finding | Google class "
            "NO): the class-level rate of a multi-finding class counts a false positive when any member is "
            "mined, and applying it to every member independently would multiply false positives. "
            "Sensitivity of a member finding is the class-level sensitivity (per-member truth was not "
            "adjudicated). Fallback findings have no adjudicated label; one constant false-positive rate "
            "would exceed the text-mined prevalence of rare findings (Hernia "
            f"{full_prevalence['Hernia']:.1%}), so it scales with prevalence using the pooled ratio "
            f"measured on the {len(ratios)} measured findings (fpr / text-mined prevalence lies between "
            f"{min(ratios.values()):.2f} and {max(ratios.values()):.2f} for them). "
            "`pooled.false_positive_rate_class_level` is the plain pooled class-level rate, for reference. "
            "Confidence intervals are 95% Wilson intervals of sampling error only; fallback intervals do "
            "not include the error of assuming a measured finding's behaviour. `implied_true_prevalence` "
            "inverts text_mined = sens * p + fpr * (1 - p) with the full table's text-mined prevalence "
            "(clipped to [0, 1]); use it, not the text-mined prevalence, as the true label rate when the "
            "generator adds this noise."
        ),
    }


# --------------------------------------------------------------------------------------- lung shape


def load_mask(data: bytes, max_side: int = MASK_MAX_SIDE) -> np.ndarray:
    """Binary lung mask, resampled so its longest side is at most ``max_side`` pixels."""
    with Image.open(io.BytesIO(data)) as image:
        gray = image.convert("L")
    binary = gray.point(lambda value: 255 if value >= LUNG_VALUE_THRESHOLD else 0)
    scale = max_side / max(binary.size)
    if scale < 1:
        size = (max(1, round(binary.width * scale)), max(1, round(binary.height * scale)))
        # reducing_gap: integer block-average first (fast), then the exact BOX resample of the rest.
        binary = binary.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    mask = np.asarray(binary) >= 128
    if not mask.any():
        return mask
    # A few masks have thin annotation lines (e.g. a drawn box) cutting through a lung; a 5x5 closing
    # rejoins the pieces. Padding keeps the closing from eroding lungs that touch the image border, and
    # separable max/min filters do the same as binary morphology much faster.
    pad = CLOSING_SIZE
    padded = np.pad(mask.astype(np.uint8), pad)
    closed = ndimage.minimum_filter(ndimage.maximum_filter(padded, CLOSING_SIZE), CLOSING_SIZE)
    closed = closed[pad:-pad, pad:-pad].astype(bool)
    # Fill holes: background components that do not touch the image border.
    background, _ = ndimage.label(~closed)
    border = np.unique(np.concatenate([background[0], background[-1], background[:, 0], background[:, -1]]))
    return closed | ~np.isin(background, border)


def radial_profile(lung: np.ndarray, center_x: float, center_y: float, theta: np.ndarray) -> np.ndarray:
    """Distance in pixels from (center_x, center_y) to the farthest lung pixel along each ray."""
    height, width = lung.shape
    t = np.arange(0.0, math.hypot(height, width), RAY_STEP_PX)
    xs = center_x + np.outer(np.cos(theta), t)
    ys = center_y - np.outer(np.sin(theta), t)
    columns, rows = np.floor(xs).astype(np.int64), np.floor(ys).astype(np.int64)
    inside_image = (columns >= 0) & (columns < width) & (rows >= 0) & (rows < height)
    hit = np.zeros(xs.shape, dtype=bool)
    hit[inside_image] = lung[rows[inside_image], columns[inside_image]]
    last = t.size - 1 - np.argmax(hit[:, ::-1], axis=1)
    # Half a step past the last sample inside puts the edge between it and the first sample outside.
    return np.where(hit.any(axis=1), t[last] + RAY_STEP_PX / 2, 0.0)


def measure_mask(mask: np.ndarray, theta: np.ndarray) -> dict[str, Any] | str:
    """Per-lung centroids and radial functions of one mask, or the reason it cannot be used."""
    labels, count = ndimage.label(mask)
    if count < 2:
        return "fewer than two connected components"
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")[:2]
    if sizes[order[1]] < MIN_SECOND_LUNG_FRACTION * sizes[order[0]]:
        return "second component too small"
    objects = ndimage.find_objects(labels)
    windows = [objects[index] for index in order]
    x0, x1 = min(w[1].start for w in windows), max(w[1].stop for w in windows)
    y0, y1 = min(w[0].start for w in windows), max(w[0].stop for w in windows)
    box_width, box_height = float(x1 - x0), float(y1 - y0)

    # Each lung is handled inside its own bounding window (offset by the window's corner): short rays.
    lungs = []
    for index, window in zip(order, windows, strict=True):
        lung = labels[window] == index + 1
        lung_rows, lung_columns = np.nonzero(lung)
        top, left = window[0].start, window[1].start
        center_x, center_y = lung_columns.mean() + 0.5 + left, lung_rows.mean() + 0.5 + top
        lungs.append((center_x, center_y, lung, left, top))
    lungs.sort(key=lambda lung: lung[0])
    if (lungs[1][0] - lungs[0][0]) / box_width < MIN_CENTROID_SEPARATION:
        return "components not side by side"

    result: dict[str, Any] = {
        "box_aspect": box_height / box_width,
        "box_in_image": (
            x0 / mask.shape[1],
            y0 / mask.shape[0],
            x1 / mask.shape[1],
            y1 / mask.shape[0],
        ),
    }
    for key, (center_x, center_y, lung, left, top) in zip(("image_left", "image_right"), lungs, strict=True):
        result[key] = {
            "centroid": ((center_x - x0) / box_width, (center_y - y0) / box_height),
            "radius": radial_profile(lung, center_x - left, center_y - top, theta) / box_width,
        }
    return result


def _pca(samples: np.ndarray, n_modes: int) -> dict[str, Any]:
    mean = samples.mean(axis=0)
    _, singular, directions = np.linalg.svd(samples - mean, full_matrices=False)
    modes = directions[:n_modes]
    # SVD signs are arbitrary; fixing them makes the output reproducible across LAPACK builds.
    signs = np.sign(modes[np.arange(len(modes)), np.argmax(np.abs(modes), axis=1)])
    modes = modes * signs[:, None]
    variance = singular**2
    return {
        "mean_radius": mean,
        "modes": modes,
        "mode_std": singular[:n_modes] / math.sqrt(len(samples) - 1),
        "explained_variance_ratio": variance[:n_modes] / variance.sum(),
    }


def derive_lung_shape_model(zip_path: Path) -> dict[str, Any]:
    theta = 2 * np.pi * np.arange(N_ANGLES) / N_ANGLES
    measurements: list[dict[str, Any]] = []
    skipped: Counter[str] = Counter()
    with zipfile.ZipFile(zip_path) as archive:
        names = sorted(info.filename for info in archive.infolist() if not info.is_dir())
        for name in names:
            try:
                mask = load_mask(archive.read(name))
            except (UnidentifiedImageError, OSError):
                skipped["not a readable image"] += 1
                continue
            if not mask.any():
                skipped["empty mask"] += 1
                continue
            measured = measure_mask(mask, theta)
            if isinstance(measured, str):
                skipped[measured] += 1
            else:
                measurements.append(measured)
    if len(measurements) <= N_MODES:
        raise InputError(f"{zip_path}: only {len(measurements)} usable lung masks")

    model: dict[str, Any] = {
        "source": SOURCE_MASKS,
        "derived_by": DERIVED_BY,
        "convention": ANGLE_CONVENTION,
        "n_angles": N_ANGLES,
        "theta_rad": theta,
        "n_masks_used": len(measurements),
        "n_masks_skipped": sum(skipped.values()),
        "skipped_reasons": dict(sorted(skipped.items())),
        "processing": (
            f"pixels >= {LUNG_VALUE_THRESHOLD} are lung (value 127 marks other drawn objects); masks "
            f"resampled to at most {MASK_MAX_SIDE} px on the longest side, closed with a "
            f"{CLOSING_SIZE}x{CLOSING_SIZE} square and hole-filled; the two largest connected components "
            "are the lungs"
        ),
        "box_aspect_mean": float(np.mean([m["box_aspect"] for m in measurements])),
        "box_aspect_std": float(np.std([m["box_aspect"] for m in measurements], ddof=1)),
        "box_in_image_mean": np.mean([m["box_in_image"] for m in measurements], axis=0),
        "box_in_image_std": np.std([m["box_in_image"] for m in measurements], axis=0, ddof=1),
        "box_in_image_note": (
            "(x0, y0, x1, y1) of the two-lung box as fractions of the image size; the source images are "
            "heterogeneous (clinical exports and cropped journal figures), so treat it as a loose guide"
        ),
    }
    joint_names = ["box_aspect"]
    joint_columns = [np.array([m["box_aspect"] for m in measurements])]
    for key in ("image_left", "image_right"):
        centroids = np.array([m[key]["centroid"] for m in measurements])
        radii = np.array([m[key]["radius"] for m in measurements])
        pca = _pca(radii, N_MODES)
        model[key] = {
            "centroid_mean": centroids.mean(axis=0),
            "centroid_std": centroids.std(axis=0, ddof=1),
            **pca,
            "rays_missing_lung": int(np.sum(radii == 0)),
        }
        scores = (radii - pca["mean_radius"]) @ pca["modes"].T / pca["mode_std"]
        joint_names += [f"{key}.centroid_x", f"{key}.centroid_y"]
        joint_names += [f"{key}.z{mode}" for mode in range(N_MODES)]
        joint_columns += [centroids[:, 0], centroids[:, 1], *scores.T]
    joint = np.stack(joint_columns, axis=1)
    correlation = np.corrcoef(joint, rowvar=False)
    left_z0, right_z0 = joint_names.index("image_left.z0"), joint_names.index("image_right.z0")
    aspect_z0 = (correlation[0, left_z0] + correlation[0, right_z0]) / 2
    model["joint"] = {
        "variables": joint_names,
        "mean": joint.mean(axis=0),
        "covariance": np.cov(joint, rowvar=False),
        "note": (
            "Gaussian over box aspect, both centroids and both lungs' standardized mode scores (z = score "
            "/ mode_std). Sample these together: mode 0 of each lung tracks the box aspect (r is in "
            f"box-width units, so a taller box means longer vertical rays; correlation {aspect_z0:.2f}) and "
            f"the two lungs' mode-0 scores correlate {correlation[left_z0, right_z0]:.2f}, so independent "
            "draws give lungs that overrun their box or do not match each other"
        ),
    }
    return model


# ---------------------------------------------------------------------------------------------- main


def _summary(cohort: Mapping[str, Any], noise: Mapping[str, Any], shape: Mapping[str, Any]) -> str:
    per_patient = cohort["images_per_patient"]
    mean_images = np.dot(per_patient["values"], per_patient["counts"]) / sum(per_patient["counts"])
    lines = [
        f"ChestX-ray14: {cohort['n_images']} images, {cohort['n_patients']} patients, "
        f"{mean_images:.2f} images/patient (max {max(per_patient['values'])}), "
        f"{len(cohort['label_combinations']['values'])} label combinations, "
        f"P(same labels as previous) = {cohort['p_same_labels_as_previous']:.3f}",
        f"label noise from {noise['n']} re-read images:",
    ]
    for name, entry in noise["per_finding"].items():
        lines.append(
            f"  {name:<18} sens {entry['sensitivity']:.3f}  fpr {entry['false_positive_rate']:.4f}  "
            f"({entry['source']})"
        )
    lines.append(
        f"lung shapes: {shape['n_masks_used']} masks used, {shape['n_masks_skipped']} skipped "
        f"{shape['skipped_reasons']}"
    )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--real-dir",
        type=Path,
        default=Path("../shared/data/real"),
        help="folder holding the public reference tables (default: ../shared/data/real)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("src/cxrpriv/synth/data"),
        help="folder to write the JSON files into (default: src/cxrpriv/synth/data)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    real_dir: Path = args.real_dir
    try:
        data_entry = _require(real_dir / DATA_ENTRY_FILE, "NIH ChestX-ray14 metadata")
        google = _require(real_dir / GOOGLE_FILE, "Google 2019 radiologist re-read labels")
        masks = _require(real_dir / MASKS_FILE, "V7 Labs lung masks")
        table = read_data_entry(data_entry)
        cohort = derive_cohort_stats(table)
        noise = derive_label_noise(read_google(google), cohort)
        shape = derive_lung_shape_model(masks)
    except InputError as error:
        print(f"derive_synth_stats: error: {error}", file=sys.stderr)
        return 2

    args.out.mkdir(parents=True, exist_ok=True)
    for name, data in (
        (stats.COHORT_STATS_FILE, cohort),
        (stats.LABEL_NOISE_FILE, noise),
        (stats.LUNG_SHAPE_FILE, shape),
    ):
        size = write_json(args.out / name, data)
        print(f"wrote {args.out / name} ({size / 1024:.1f} KiB)")
    print(_summary(cohort, noise, shape))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
