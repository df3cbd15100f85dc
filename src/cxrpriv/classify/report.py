"""Plots of the classifier stage: per-finding AUC (clean vs text-mined labels, with intervals) and the
training curves; the curves and the per-finding AUCs also as data series (``history.json``,
``auc_per_finding.json``) for DVC."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrpriv.figures import save_figure, save_series


def write_plots(
    evaluation: dict[str, Any], history: Sequence[dict[str, float]], plots_dir: Path
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []

    noisy = evaluation["noisy"]
    if noisy is None:  # no test images
        return paths + _curves(plt, history, plots_dir)
    findings = list(noisy["findings"])
    save_series(_auc_rows(evaluation, findings), plots_dir / "auc_per_finding.json")
    fig, ax = plt.subplots(figsize=(9, 4.8))
    y = np.arange(len(findings))
    kinds = [("clean", "clean labels (answer key)", -0.18), ("noisy", "text-mined labels", 0.18)]
    for kind, label, offset in kinds:
        report = evaluation.get(kind)
        if report is None:
            continue
        values = np.array([np.nan if e["auc"] is None else e["auc"] for e in report["findings"].values()])
        ci = [e["ci"] or [None, None] for e in report["findings"].values()]
        low = np.array([np.nan if c[0] is None else c[0] for c in ci])
        high = np.array([np.nan if c[1] is None else c[1] for c in ci])
        err = np.vstack([values - low, high - values])
        mean = report["mean_auc"]
        ax.errorbar(
            values,
            y + offset,
            # A percentile interval from few positives can miss its own point estimate: clip, don't crash.
            xerr=np.clip(np.nan_to_num(err), 0, None),
            fmt="o",
            ms=4,
            capsize=2,
            label=f"{label}: mean {mean:.3f}" if mean is not None else label,
        )
    ax.axvline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_yticks(y, [f"{f} ({noisy['findings'][f]['n_positive']})" for f in findings])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("test ROC AUC (95% patient-bootstrap interval); text-mined positives in brackets")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    ax.set_title("Per-finding AUC: clean vs text-mined labels")
    paths.append(save_figure(fig, plots_dir / "auc_per_finding.png"))

    return paths + _curves(plt, history, plots_dir)


def _auc_rows(evaluation: dict[str, Any], findings: Sequence[str]) -> list[dict[str, Any]]:
    """One record per finding: its test AUC against the clean and the text-mined labels."""
    rows = []
    for finding in findings:
        row: dict[str, Any] = {"finding": finding}
        for kind in ("clean", "noisy"):
            entry = ((evaluation.get(kind) or {}).get("findings") or {}).get(finding) or {}
            row[f"auc_{kind}"] = entry.get("auc")
        rows.append(row)
    return rows


def _curves(plt: Any, history: Sequence[dict[str, float]], plots_dir: Path) -> list[Path]:
    save_series(history, plots_dir / "history.json")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = [r["epoch"] for r in history]
    ax1.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    ax1.plot(epochs, [r.get("val_loss", np.nan) for r in history], "o-", label="validation")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend(fontsize=8)
    ax2.plot(epochs, [r.get("val_auc_mined", np.nan) for r in history], "o-")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("validation mean AUC (text-mined)")
    fig.suptitle("Training curves")
    return [save_figure(fig, plots_dir / "training_curves.png")]
