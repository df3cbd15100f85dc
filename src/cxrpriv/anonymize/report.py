"""The stage's plots: training curves (losses; validation re-ID and classifier AUC against the unanonymized
and identity-initialized references) and a grid of validation films: original | anonymized | displacement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrpriv.figures import save_figure


def write_plots(
    history: Sequence[Mapping[str, float]],
    metrics: Mapping[str, Any],
    examples: Mapping[str, np.ndarray],
    plots_dir: Path,
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, (loss_ax, reid_ax, cls_ax) = plt.subplots(1, 3, figsize=(13, 3.6))
    epochs = [r["epoch"] for r in history]
    for key, label in (
        ("train_loss", "generator total"),
        ("train_utility", "utility"),
        ("train_privacy", "privacy"),
        ("train_verifier_loss", "verifier (updated)"),
        ("train_classifier_loss", "classifier (updated)"),
    ):
        if any(key in r for r in history):
            loss_ax.plot(epochs, [r.get(key, np.nan) for r in history], "o-", label=label)
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Losses")
    loss_ax.legend(fontsize=8)
    for ax, key, title in (
        (reid_ax, "reid_auc", "Frozen verifier: anonymized vs original"),
        (cls_ax, "classifier_auc", "Frozen classifier on anonymized films"),
    ):
        ax.plot(epochs, [r.get(f"val_{key}", np.nan) for r in history], "o-", label="anonymized")
        for reference, style in (("original", "--"), ("initial", ":")):
            value = metrics.get(reference, {}).get(key)
            if value is not None and np.isfinite(value):
                ax.axhline(value, linestyle=style, color="grey", label=reference)
        ax.set(xlabel="epoch", ylabel="validation AUC", ylim=(0.0, 1.01), title=title)
        ax.legend(fontsize=8, loc="lower left")
    reid_ax.axhline(0.5, color="black", linewidth=0.5)
    paths.append(save_figure(fig, plots_dir / "training_curves.png"))

    originals = examples["original"]
    n = len(originals)
    if n:
        fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.5 * n), squeeze=False)
        peak = float(np.max(examples["displacement_px"])) or 1.0
        for i in range(n):
            row = axes[i]
            row[0].imshow(originals[i], cmap="gray", vmin=0, vmax=1)
            row[1].imshow(examples["anonymized"][i], cmap="gray", vmin=0, vmax=1)
            shown = row[2].imshow(examples["displacement_px"][i], cmap="magma", vmin=0, vmax=peak)
            fig.colorbar(shown, ax=row[2], fraction=0.046, label="px")
            for ax, title in zip(row, ("original", "anonymized", "|displacement|"), strict=True):
                ax.set_axis_off()
                if i == 0:
                    ax.set_title(title)
        paths.append(save_figure(fig, plots_dir / "examples.png"))
    return paths
