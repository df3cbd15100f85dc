"""Plots of the preprocess stage: where the files went, and whether standardization made images alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from cxrpriv.dataset import manifest_path
from cxrpriv.figures import save_figure
from cxrpriv.ingest.process import reason_category
from cxrpriv.ingest.shards import ShardReader

# Images read back for the intensity plot: enough for smooth histograms, few enough to stay fast.
MAX_HISTOGRAM_IMAGES = 400


def write_plots(out_dir: Path, files: pd.DataFrame, plots_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    written = []

    counts = (
        files.assign(category=files["reason"].fillna("").map(reason_category))
        .groupby(["outcome", "category"])
        .size()
        .sort_values()
    )
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(counts) + 1.5))
    labels = [f"{o}: {c}" if c else o for o, c in counts.index]
    colors = {"ingested": "tab:green", "quarantined": "tab:orange", "rejected": "tab:red"}
    ax.barh(labels, counts.to_numpy(), color=[colors.get(o, "gray") for o, _ in counts.index])
    ax.set_xscale("log")
    ax.set_xlabel("files")
    ax.set_title("Outcome of every input file")
    written.append(save_figure(fig, plots_dir / "outcomes.png", dpi=100))

    if manifest_path(out_dir).is_file():
        reader = ShardReader(out_dir)
        manifest = reader.manifest
        if len(manifest):
            groups = (
                manifest["modality"].fillna("PNG") + " " + manifest["photometric"].fillna("")
            ).str.strip()
            rng = np.random.default_rng(0)
            picked = rng.permutation(len(manifest))[:MAX_HISTOGRAM_IMAGES]
            bins = np.linspace(0, 1, 65)
            fig, ax = plt.subplots(figsize=(7, 4))
            for group in sorted(groups.iloc[picked].unique()):
                rows = [i for i in picked if groups.iloc[i] == group]
                hist = np.mean(
                    [np.histogram(reader.as_float(i), bins=bins, density=True)[0] for i in rows], axis=0
                )
                ax.plot(0.5 * (bins[1:] + bins[:-1]), hist, label=f"{group} ({len(rows)} images)")
            ax.set_xlabel("standardized intensity")
            ax.set_ylabel("mean density")
            ax.set_yscale("log")
            ax.set_title("Intensity histograms after standardization, by source encoding")
            ax.legend(fontsize=8)
            written.append(save_figure(fig, plots_dir / "intensity.png", dpi=100))
    return written
