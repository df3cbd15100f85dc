"""The evaluate stage's plots: the privacy-utility trade-off (one point per variant against the gate's
limits), per-finding utility bars, and a grid of example test films (original | each variant | difference).
Everything is read from the results dict (:mod:`.results`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrpriv.evaluate.gate import GateConfig
from cxrpriv.evaluate.results import (
    FROZEN_CLASSIFIER,
    NAME,
    REFERENCE,
    VARIANTS,
    find_variant,
    number,
    summary_rows,
    utility_record,
    worst_attacker,
)
from cxrpriv.figures import difference_grid, plain_text, save_figure, save_series

TRADEOFF_PLOT = "privacy_utility.png"
TRADEOFF_SERIES = "privacy_utility.json"  # its points, for DVC
PER_FINDING_PLOT = "utility_per_finding.png"
EXAMPLES_PLOT = "examples.png"


@dataclass(frozen=True)
class ExampleFilms:
    """A few test films: ``originals`` [k, H, W] and, per variant name, the same films anonymized
    [k, H, W]; every value in [0, 1]."""

    originals: np.ndarray
    anonymized: Mapping[str, np.ndarray] = field(default_factory=dict)


def write_plots(
    results: Mapping[str, Any],
    examples: ExampleFilms | None,
    plots_dir: Path,
    gate: GateConfig | None = None,
) -> list[Path]:
    """Write the plots under ``plots_dir`` and return their paths (no example grid without examples);
    ``gate`` (default: the default limits) draws the limits on the trade-off plot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    save_series(tradeoff_rows(results), plots_dir / TRADEOFF_SERIES)
    paths = [
        tradeoff_plot(plt, results, gate or GateConfig(), plots_dir / TRADEOFF_PLOT),
        per_finding_plot(plt, results, plots_dir / PER_FINDING_PLOT),
    ]
    if examples is not None and len(examples.originals):
        grid = difference_grid(
            examples.originals, examples.anonymized, "Example test films", plots_dir / EXAMPLES_PLOT
        )
        paths.append(grid)
    return paths


def tradeoff_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The trade-off plot's points as data: per variant, the strongest retrained attacker's worst-seed AUC,
    the frozen verifier's AUC and the classifier's mean AUC."""
    columns = ("name", "attacker_auc_worst", "attacker_auc_mean", "frozen_verifier_auc", "utility_mean_auc")
    return [{c: row[c] for c in columns} for row in summary_rows(results)]


def tradeoff_plot(plt: Any, results: Mapping[str, Any], gate: GateConfig, path: Path) -> Path:
    """x: the strongest retrained attacker's mean AUC (error bar: s.d. over seeds; x: its worst seed);
    y: the frozen classifier's mean AUC (error bar: its bootstrap interval)."""
    fig, ax = plt.subplots(figsize=(7.5, 5.2))
    reference_auc = number(utility_record(find_variant(results, str(results.get(REFERENCE)))).get("mean_auc"))
    utility_floor = reference_auc - gate.max_utility_drop
    _shade_pass_region(ax, gate, utility_floor)
    for i, variant in enumerate(results.get(VARIANTS, [])):
        _variant_point(ax, variant, f"C{i % 10}")
    ax.axvline(0.5, color="black", lw=0.8, label="chance (AUC 0.5)")
    ax.axvline(gate.max_attacker_auc_mean, color="tab:red", ls="--", lw=1, label="limit: attacker mean AUC")
    ax.axvline(gate.max_attacker_auc_worst, color="tab:red", ls=":", lw=1, label="limit: any seed's AUC")
    if math.isfinite(utility_floor):
        ax.axhline(utility_floor, color="tab:blue", ls="--", lw=1, label="limit: utility drop")
    ax.set_xlim(0.45, 1.01)
    ax.set_xlabel("strongest retrained attacker: verification AUC (mean ± s.d. over seeds; x: worst seed)")
    ax.set_ylabel("frozen classifier mean AUC (95% bootstrap interval)")
    ax.set_title("Privacy-utility trade-off (left and high is better)")
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


def _shade_pass_region(ax: Any, gate: GateConfig, utility_floor: float) -> None:
    if not math.isfinite(utility_floor):
        return
    ax.fill_between(
        [0.0, gate.max_attacker_auc_mean],
        utility_floor,
        1.0,
        color="tab:green",
        alpha=0.12,
        label="passes the gate (mean AUC and utility)",
    )


def _variant_point(ax: Any, variant: Mapping[str, Any], color: str) -> None:
    attacker = worst_attacker(variant)
    utility = utility_record(variant)
    y = number(utility.get("mean_auc"))
    if attacker is None or not (math.isfinite(attacker.auc_mean) and math.isfinite(y)):
        return  # not measured: no point to draw (the tables say so)
    x = attacker.auc_mean
    low, high = number(utility.get("mean_auc_low")), number(utility.get("mean_auc_high"))
    # A percentile interval can miss its own estimate on few positives: clip, don't crash.
    yerr = np.clip(np.nan_to_num([[y - low], [high - y]]), 0, None)
    xerr = np.nan_to_num([attacker.auc_sd])
    ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", color=color, capsize=3, ms=6)
    if math.isfinite(attacker.auc_worst):
        ax.plot([attacker.auc_worst], [y], "x", color=color, ms=8)
    ax.annotate(
        plain_text(variant[NAME]), (x, y), textcoords="offset points", xytext=(6, 6), fontsize=8, color=color
    )


def per_finding_plot(plt: Any, results: Mapping[str, Any], path: Path) -> Path:
    """Horizontal bars per finding: the frozen classifier's AUC on each variant's films, with intervals."""
    variants = list(results.get(VARIANTS, []))
    findings = _findings(variants)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(findings), 1) * max(1, len(variants) / 3)))
    y = np.arange(len(findings))
    height = 0.8 / max(len(variants), 1)
    for i, variant in enumerate(variants):
        record = utility_record(variant, FROZEN_CLASSIFIER)
        entries = [record.get("per_finding", {}).get(f, {}) for f in findings]
        auc = np.array([number(e.get("auc")) for e in entries])
        low = np.array([number(e.get("low")) for e in entries])
        high = np.array([number(e.get("high")) for e in entries])
        err = np.clip(np.nan_to_num(np.vstack([auc - low, high - auc])), 0, None)
        label = plain_text(
            f"{variant[NAME]} (mean {number(record.get('mean_auc')):.3f}, {record.get('labels', '?')})"
        )
        ax.barh(y + (i - (len(variants) - 1) / 2) * height, auc, height, xerr=err, capsize=1.5, label=label)
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_yticks(y, findings)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("frozen classifier test ROC AUC per finding (95% patient-bootstrap interval)")
    ax.set_title("Utility per finding: original and anonymized test films")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8)
    return save_figure(fig, path)


def _findings(variants: Sequence[Mapping[str, Any]]) -> list[str]:
    # In the order the first variant lists them (the stage writes the canonical order), then any others.
    seen: dict[str, None] = {}
    for variant in variants:
        seen.update(dict.fromkeys(utility_record(variant).get("per_finding", {})))
    return list(seen)
