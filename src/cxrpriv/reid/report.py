"""The stage's plots: ROC curve of the test pairs, training curves, and what retrieval finds; the first two
also as data series (``roc.json``, ``history.json``) for DVC."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrpriv.figures import save_figure, save_series


def write_plots(
    roc: tuple[np.ndarray, np.ndarray],
    auc: float,
    history: Sequence[dict[str, float]],
    retrieval: pd.DataFrame,
    plots_dir: Path,
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = []

    fpr, tpr = roc
    save_series([{"fpr": f, "tpr": t} for f, t in zip(fpr, tpr, strict=True)], plots_dir / "roc.json")
    save_series(history, plots_dir / "history.json")

    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot(fpr, tpr, label=f"attacker (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="Test pairs: same patient?")
    ax.legend(loc="lower right")
    paths.append(save_figure(fig, plots_dir / "roc.png"))

    fig, (loss_ax, auc_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    epochs = [r["epoch"] for r in history]
    loss_ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    if any("val_loss" in r for r in history):  # the siamese family's pair loss; the metric family has none
        loss_ax.plot(epochs, [r.get("val_loss", np.nan) for r in history], "o-", label="validation")
    loss_ax.set(xlabel="epoch", ylabel="training loss", title="Loss")
    loss_ax.legend()
    for key, label in (
        ("val_auc", "validation AUC"),
        ("val_accuracy", "validation accuracy"),
        ("val_map_at_r", "validation mAP@R"),
        ("val_precision_at_1", "validation P@1"),
    ):
        if any(key in r for r in history):
            auc_ax.plot(epochs, [r.get(key, np.nan) for r in history], "o-", label=label)
    auc_ax.set(xlabel="epoch", ylim=(0.4, 1.01), title="Validation split")
    auc_ax.legend(loc="lower right")
    paths.append(save_figure(fig, plots_dir / "training_curves.png"))

    fig, (hist_ax, r_ax) = plt.subplots(1, 2, figsize=(9, 3.5))
    scored = retrieval[retrieval["n_relevant"] > 0]
    hist_ax.hist(scored["ap_at_r"], bins=np.linspace(0, 1, 21))
    hist_ax.set(xlabel="AP@R of a query", ylabel="test queries", title=f"Retrieval ({len(scored)} queries)")
    by_r = scored.groupby("n_relevant")[["ap_at_r", "precision_at_1"]].mean()
    r_ax.plot(by_r.index, by_r["ap_at_r"], "o-", label="mAP@R")
    r_ax.plot(by_r.index, by_r["precision_at_1"], "o-", label="precision@1")
    r_ax.set(xlabel="R (other images of the patient)", ylim=(0, 1.01), title="By number of matches")
    r_ax.legend(loc="lower right")
    paths.append(save_figure(fig, plots_dir / "retrieval.png"))
    return paths
