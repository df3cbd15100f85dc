"""Great Expectations checks on the manifest: a failure stops the stage with the failing expectations named.

Two suites run in an ephemeral context: ``manifest`` on the manifest itself (schema, keys, value ranges,
labels in {0, 1} on labeled rows and missing on unlabeled ones, pseudonym formats, image statistics), and
``patients`` on one row per patient (each patient in exactly one split). The report keeps, per expectation,
its name, type, column, success and unexpected counts, never the unexpected values themselves: in a broken
manifest those could be the very identifiers that should not be there.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.dataset import MANIFEST_COLUMNS, SPLITS

# Normalized images: a mean outside this range or almost no spread means a failed standardization.
PIXEL_MEAN_RANGE = (0.05, 0.95)
PIXEL_STD_RANGE = (0.02, 0.5)


class ValidationFailed(RuntimeError):
    """The manifest failed expectations; ``report`` is the validation report (also written to disk)."""

    def __init__(self, failing: Sequence[str], report: dict[str, Any]) -> None:
        super().__init__("manifest validation failed: " + "; ".join(failing))
        self.failing = list(failing)
        self.report = report


@dataclass(frozen=True)
class Check:
    name: str
    expectation: Any


def manifest_checks(views: Sequence[str], shard_size: int) -> list[Check]:
    """The manifest suite as (name, expectation) pairs; names are what a failure report shows."""
    import great_expectations.expectations as gxe

    specs: list[tuple[str, str, dict[str, Any]]] = [
        (
            "schema: exactly the manifest columns",
            "TableColumnsToMatchSet",
            {"column_set": list(MANIFEST_COLUMNS), "exact_match": True},
        ),
        ("at least one image", "TableRowCountToBeBetween", {"min_value": 1}),
        ("image_id unique", "ColumnValuesToBeUnique", {"column": "image_id"}),
        ("shard and offset unique", "CompoundColumnsToBeUnique", {"column_list": ["shard", "offset"]}),
        (
            "image_id is a keyed pseudonym",
            "ColumnValuesToMatchRegex",
            {"column": "image_id", "regex": r"^I[0-9a-f]{16}$"},
        ),
        (
            "patient_id is a keyed pseudonym",
            "ColumnValuesToMatchRegex",
            {"column": "patient_id", "regex": r"^P[0-9a-f]{16}$"},
        ),
        (
            "source_checksum is an HMAC-SHA256",
            "ColumnValuesToMatchRegex",
            {"column": "source_checksum", "regex": r"^[0-9a-f]{64}$"},
        ),
        ("split is a known split", "ColumnValuesToBeInSet", {"column": "split", "value_set": list(SPLITS)}),
        ("view is an accepted view", "ColumnValuesToBeInSet", {"column": "view", "value_set": list(views)}),
        ("sex is M, F or O", "ColumnValuesToBeInSet", {"column": "sex", "value_set": ["M", "F", "O"]}),
        ("age within 0..120", "ColumnValuesToBeBetween", {"column": "age", "min_value": 0, "max_value": 120}),
        (
            "source_format known",
            "ColumnValuesToBeInSet",
            {"column": "source_format", "value_set": ["dicom", "png"]},
        ),
        (
            "study_date is an ISO date",
            "ColumnValuesToMatchRegex",
            {"column": "study_date", "regex": r"^\d{4}-\d{2}-\d{2}$"},
        ),
        (
            "offset within the shard",
            "ColumnValuesToBeBetween",
            {"column": "offset", "min_value": 0, "max_value": shard_size - 1},
        ),
        ("shard number non-negative", "ColumnValuesToBeBetween", {"column": "shard", "min_value": 0}),
        (
            f"pixel_mean within {PIXEL_MEAN_RANGE}",
            "ColumnValuesToBeBetween",
            {"column": "pixel_mean", "min_value": PIXEL_MEAN_RANGE[0], "max_value": PIXEL_MEAN_RANGE[1]},
        ),
        (
            f"pixel_std within {PIXEL_STD_RANGE}",
            "ColumnValuesToBeBetween",
            {"column": "pixel_std", "min_value": PIXEL_STD_RANGE[0], "max_value": PIXEL_STD_RANGE[1]},
        ),
    ]
    not_null = ("image_id", "patient_id", "split", "view", "source_checksum", "shard", "offset", "labeled")
    specs += [(f"{c} not null", "ColumnValuesToNotBeNull", {"column": c}) for c in (*not_null, "pixel_mean")]
    specs += _label_specs()
    return [Check(name, getattr(gxe, "Expect" + kind)(**kwargs)) for name, kind, kwargs in specs]


def _label_specs() -> list[tuple[str, str, dict[str, Any]]]:
    """Findings are 0/1 where ``labeled``, and missing where not (a missing label is never a negative)."""
    labeled = {"row_condition": "labeled == True", "condition_parser": "pandas"}
    unlabeled = {"row_condition": "labeled == False", "condition_parser": "pandas"}
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("labeled is a bool", "ColumnValuesToBeInSet", {"column": "labeled", "value_set": [True, False]})
    ]
    for finding in FINDINGS:
        specs += [
            (f"{finding} not null where labeled", "ColumnValuesToNotBeNull", {"column": finding, **labeled}),
            (f"{finding} null where unlabeled", "ColumnValuesToBeNull", {"column": finding, **unlabeled}),
            (f"{finding} in {{0, 1}}", "ColumnValuesToBeInSet", {"column": finding, "value_set": [0, 1]}),
        ]
    return specs


def patient_checks() -> list[Check]:
    import great_expectations.expectations as gxe

    return [
        Check(
            "splits are patient-disjoint (each patient in one split)",
            gxe.ExpectColumnValuesToBeBetween(column="n_splits", min_value=1, max_value=1),
        ),
        Check("one row per patient", gxe.ExpectColumnValuesToBeUnique(column="patient_id")),
    ]


def _run_suite(context: Any, name: str, frame: pd.DataFrame, checks: list[Check]) -> list[dict[str, Any]]:
    import great_expectations as gx

    batch = (
        context.data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(name=f"{name}_asset")
        .add_batch_definition_whole_dataframe(f"{name}_batch")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    by_id = {}
    for check in checks:
        added = suite.add_expectation(check.expectation)
        by_id[added.id] = check.name
    result = batch.validate(suite)
    rows = []
    for r in result.results:
        config = r.expectation_config
        stats = r.result or {}
        rows.append(
            {
                "suite": name,
                "name": by_id.get(config.id, config.type),
                "expectation": config.type,
                "column": config.kwargs.get("column") or config.kwargs.get("column_list"),
                "success": bool(r.success),
                "element_count": stats.get("element_count"),
                "unexpected_count": stats.get("unexpected_count"),
                "exception": bool(r.exception_info and r.exception_info.get("raised_exception")),
            }
        )
    return rows


def validate_manifest(manifest: pd.DataFrame, views: Sequence[str], shard_size: int) -> dict[str, Any]:
    """Run both suites; returns the report, or raises :class:`ValidationFailed` carrying it."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    patients = (
        manifest.groupby("patient_id", dropna=False)["split"]
        .nunique(dropna=False)
        .rename("n_splits")
        .reset_index()
        if {"patient_id", "split"} <= set(manifest.columns)
        else pd.DataFrame({"patient_id": [], "n_splits": []})
    )
    results = _run_suite(context, "manifest", manifest, manifest_checks(views, shard_size))
    results += _run_suite(context, "patients", patients, patient_checks())
    failing = [f"{r['suite']}: {r['name']}" for r in results if not r["success"]]
    report = {
        "success": not failing,
        "n_expectations": len(results),
        "n_failed": len(failing),
        "failing": failing,
        "rows": len(manifest),
        "results": results,
    }
    if failing:
        raise ValidationFailed(failing, report)
    return report
