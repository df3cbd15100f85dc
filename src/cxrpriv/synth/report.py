"""Plots of the synthesize stage: example images, prevalence against the real table, the naive attacker."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: stages run in containers and CI
import matplotlib.pyplot as plt
import numpy as np

from cxrpriv.figures import save_figure
from cxrpriv.synth.cohort import CohortSummary
from cxrpriv.synth.stats import FINDINGS, CohortStats


def write_plots(summary: CohortSummary, stats: CohortStats, plots_dir: Path) -> list[Path]:
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = [
        _examples(summary, plots_dir / "examples.png"),
        _prevalence(summary, plots_dir / "prevalence.png"),
        _images_per_patient(summary, stats, plots_dir / "images_per_patient.png"),
        _naive_attack(summary, plots_dir / "naive_attack.png"),
    ]
    return [p for p in paths if p is not None]


def _examples(summary: CohortSummary, path: Path) -> Path | None:
    previews = summary.previews
    if not previews:
        return None
    patients = sorted({p.patient for p in previews})
    cols = max(p.follow_up for p in previews) + 1
    fig, axes = plt.subplots(len(patients), cols, figsize=(2.2 * cols, 2.4 * len(patients)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for p in previews:
        ax = axes[patients.index(p.patient), p.follow_up]
        ax.imshow(p.image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(p.labels.replace("|", "\n"), fontsize=6)
    fig.suptitle("Synthetic cohort: one row per patient, follow-ups left to right (true labels)", fontsize=9)
    return save_figure(fig, path)


def _prevalence(summary: CohortSummary, path: Path) -> Path:
    prev = summary.metrics["prevalence"]
    x = np.arange(len(FINDINGS))
    fig, ax = plt.subplots(figsize=(9, 3.6))
    for offset, key, label in (
        (-0.27, "real", "ChestX-ray14 (text-mined)"),
        (0.0, "mined", "synthetic, mined"),
        (0.27, "true", "synthetic, true"),
    ):
        ax.bar(x + offset, [prev[f][key] for f in FINDINGS], width=0.27, label=label)
    ax.set_xticks(x, [f.replace("_", " ") for f in FINDINGS], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("fraction of images")
    ax.legend(fontsize=8)
    ax.set_title("Finding prevalence", fontsize=9)
    return save_figure(fig, path)


def _images_per_patient(summary: CohortSummary, stats: CohortStats, path: Path) -> Path:
    values = np.asarray(stats.images_per_patient.values, dtype=int)
    real = np.asarray(stats.images_per_patient.probabilities)
    cap = int(summary.images_per_patient.max())
    synth = np.bincount(summary.images_per_patient, minlength=cap + 1)[1:] / len(summary.images_per_patient)
    fig, ax = plt.subplots(figsize=(6, 3.4))
    shown = values <= cap
    ax.bar(values[shown] - 0.2, real[shown], width=0.4, label="ChestX-ray14")
    ax.bar(np.arange(1, cap + 1) + 0.2, synth, width=0.4, label=f"synthetic (cap {cap})")
    ax.set_xlabel("images per patient")
    ax.set_ylabel("fraction of patients")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _naive_attack(summary: CohortSummary, path: Path) -> Path | None:
    attack = summary.attack
    if attack is None:
        return None
    fig, ax = plt.subplots(figsize=(6, 3.4))
    bins = np.linspace(float(attack.scores.min()), float(attack.scores.max()), 40).tolist()
    ax.hist(attack.scores[attack.labels == 1], bins=bins, alpha=0.6, density=True, label="same patient")
    ax.hist(attack.scores[attack.labels == 0], bins=bins, alpha=0.6, density=True, label="different patients")
    ax.set_xlabel("thumbnail correlation (32x32)")
    ax.set_title(f"Naive attacker: AUC {attack.auc:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    return save_figure(fig, path)
