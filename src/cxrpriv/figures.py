"""Saving stage plots: the one way every report writes a matplotlib figure to PNG and frees it, and the data
series beside it that DVC versions and draws (``dvc plots show`` / ``dvc plots diff``, declared in dvc.yaml's
top-level ``plots``)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


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
