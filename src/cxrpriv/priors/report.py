"""Heatmaps of the priors stage, drawn from the priors document (so they show exactly what was written)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: stages run in containers and CI
import matplotlib.pyplot as plt
import numpy as np

from cxrpriv.figures import save_figure


def write_plots(document: dict[str, Any], plots_dir: Path) -> list[Path]:
    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = [_findings(document, plots_dir / "noise_rates.png"), _kappa(document, plots_dir / "kappa.png")]
    if document["comorbidity"] is not None:
        source = document["comorbidity"]["source"]
        title = f"P(column | row), {source['table']} ({source['labels']} labels)"
        paths.append(_comorbidity(document["comorbidity"], title, plots_dir / "comorbidity.png"))
    if document["comorbidity_text_mined"] is not None:
        paths.append(
            _comorbidity(
                document["comorbidity_text_mined"],
                "P(column | row), text-mined labels",
                plots_dir / "comorbidity_text_mined.png",
            )
        )
    for table in document["tables"]:
        if table["reader_models"]:
            paths.append(_readers(table, plots_dir / f"readers_{table['name']}.png"))
    return [p for p in paths if p is not None]


def _heatmap(
    ax: Any,
    values: np.ndarray,
    rows: Sequence[str],
    cols: Sequence[str],
    *,
    fmt: str = "{:.2f}",
    marks: np.ndarray | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
) -> Any:
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(cols)), [c.replace("_", " ") for c in cols], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(len(rows)), [r.replace("_", " ") for r in rows], fontsize=7)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                text = fmt.format(values[i, j]) + ("*" if marks is not None and marks[i, j] else "")
                shade = (values[i, j] - vmin) / (vmax - vmin) if vmax > vmin else 0
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if shade > 0.6 else "white",
                )
    return image


def _findings(document: dict[str, Any], path: Path) -> Path:
    findings = document["findings_order"]
    keys = ("p_true_given_mined_pos", "p_true_given_mined_neg")
    values = np.array([[_num(document["findings"][f][k]) for k in keys] for f in findings])
    marks = np.array(
        [[document["findings"][f]["value_source"][k] not in ("subset", None) for k in keys] for f in findings]
    )
    fig, ax = plt.subplots(figsize=(4.2, 6))
    image = _heatmap(ax, values, findings, ["P(true | mined=1)", "P(true | mined=0)"], marks=marks)
    fig.colorbar(image, ax=ax, fraction=0.05)
    ax.set_title(f"Label priors ({document['config']['prior_basis']}); * transferred or fallback", fontsize=8)
    return save_figure(fig, path)


def _kappa(document: dict[str, Any], path: Path) -> Path | None:
    tables = [t for t in document["tables"] if t["kappa"]]
    if not tables:
        return None
    targets = list(dict.fromkeys(name for t in tables for name in t["kappa"]))
    values = np.array(
        [[_num(t["kappa"].get(name, {}).get("fleiss_kappa")) for name in targets] for t in tables]
    )
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * len(targets), 1.2 + 0.4 * len(tables)))
    image = _heatmap(ax, values, [t["name"] for t in tables], targets, vmin=-0.2, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.05)
    ax.set_title("Inter-reader agreement (Fleiss' kappa)", fontsize=8)
    return save_figure(fig, path)


def _comorbidity(block: dict[str, Any], title: str, path: Path) -> Path:
    names = block["findings"]
    values = np.array([[_num(v) for v in row] for row in block["matrix"]])
    np.fill_diagonal(values, np.nan)  # 1 by definition; masking it keeps the colour scale for the rest
    size = 1.5 + 0.42 * len(names)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = _heatmap(ax, values, names, names, vmax=max(0.05, float(np.nanmax(values, initial=0.05))))
    fig.colorbar(image, ax=ax, fraction=0.05)
    ax.set_title(f"{title}, n={block['n_images']}", fontsize=8)
    return save_figure(fig, path)


def _readers(table: dict[str, Any], path: Path) -> Path:
    targets = list(table["reader_models"])
    readers = sorted(table["readers"], key=lambda r: (len(r), r))  # R2 before R10
    size = (2.5 + 0.9 * len(targets), 1.5 + 0.28 * len(readers))
    fig, axes = plt.subplots(1, 2, figsize=size, squeeze=False)
    for ax, key, low in zip(axes[0], ("sensitivity", "specificity"), (0.0, 0.8), strict=True):
        # A rate the data do not identify is left blank rather than drawn as if it were measured.
        blank = f"{key}_not_identified"
        values = np.array(
            [
                [
                    np.nan
                    if blank in table["reader_models"][t]["readers"][r]["flags"]
                    else _num(table["reader_models"][t]["readers"][r][key])
                    for t in targets
                ]
                for r in readers
            ]
        )
        image = _heatmap(ax, values, readers, targets, vmin=low, vmax=1.0)
        fig.colorbar(image, ax=ax, fraction=0.05)
        ax.set_title(f"Dawid-Skene {key}, {table['name']} (blank: not identified)", fontsize=8)
    return save_figure(fig, path)


def _num(value: float | None) -> float:
    return float("nan") if value is None else float(value)
