"""Stage plots: the one way every report writes a matplotlib figure to PNG and frees it, the data series
beside it that DVC versions and draws (``dvc plots show`` / ``dvc plots diff``, declared in dvc.yaml's
top-level ``plots``), and the figures more than one stage draws."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def save_figure(fig: Any, path: Path, dpi: int = 110) -> Path:
    """Lay out, write and close ``fig`` (closing matters: stages draw many figures in one process)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def save_series(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Write a plot's data as a JSON list of records (DVC's plot format): numbers as floats and text; NaN,
    missing and other values are left out of their record (a plot draws no point there)."""

    def kept(v: Any) -> bool:
        return isinstance(v, str) or (isinstance(v, int | float) and math.isfinite(v))

    records = [{k: v if isinstance(v, str) else float(v) for k, v in row.items() if kept(v)} for row in rows]
    Path(path).write_text(json.dumps(records, indent=0) + "\n")
    return Path(path)


def plain_text(text: object) -> str:
    """``text`` as matplotlib should draw it: as written (it reads text between two '$' as mathtext, and
    fails on one)."""
    return str(text).replace("$", r"\$")


def difference_grid(
    originals: np.ndarray, anonymized: Mapping[str, np.ndarray], title: str, path: Path
) -> Path:
    """Rows: films. Columns: the original, then per name its anonymized film and |anonymized - original|
    (one colour scale for every difference, so names compare). Films [k, H, W] in [0, 1]; the anonymize
    stage draws one name, evaluate one per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    originals = np.asarray(originals, dtype=float)
    films = {name: np.asarray(f, dtype=float) for name, f in anonymized.items()}
    for name, f in films.items():
        if f.shape != originals.shape:
            raise ValueError(f"example films of {name!r}: shape {f.shape}, originals {originals.shape}")
    differences = {name: np.abs(f - originals) for name, f in films.items()}
    peak = max((float(d.max()) for d in differences.values()), default=0.0) or 1.0
    columns, rows = 1 + 2 * len(films), len(originals)
    fig, axes = plt.subplots(rows, columns, figsize=(1.7 * columns + 0.6, 1.8 * rows + 0.4), squeeze=False)
    for i in range(rows):
        axes[i, 0].imshow(originals[i], cmap="gray", vmin=0, vmax=1)
        for j, name in enumerate(films):
            axes[i, 1 + 2 * j].imshow(films[name][i], cmap="gray", vmin=0, vmax=1)
            axes[i, 2 + 2 * j].imshow(differences[name][i], cmap="magma", vmin=0, vmax=peak)
    titles = ["original"] + [plain_text(t) for name in films for t in (name, f"|{name} - original|")]
    for ax, column_title in zip(axes[0], titles, strict=True):
        ax.set_title(column_title, fontsize=8)
    for ax in axes.flat:
        ax.set_axis_off()
    fig.suptitle(f"{plain_text(title)}; differences on one scale: black 0, yellow {peak:.2f}", fontsize=9)
    return save_figure(fig, path)
