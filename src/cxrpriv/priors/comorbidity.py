"""Which findings occur together: the conditional co-occurrence matrix P(finding j | finding i).

With n_i images positive for i, n_ij positive for both and the marginal share q_j = n_j / N, the smoothed
estimate is

    P(j | i) = (n_ij + alpha * q_j) / (n_i + alpha)

i.e. alpha pseudo-images drawn from the marginal of j. A finding seen on few images is pulled toward
independence (P(j | i) = P(j)) instead of toward an extreme 0/n or n/n; alpha = 0 is the raw ratio. The
diagonal is 1 by definition.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Comorbidity:
    names: tuple[str, ...]
    conditional: np.ndarray  # (k, k): row i, column j = P(j | i); NaN where n_i = 0 and alpha = 0
    counts: np.ndarray  # (k,) n_i
    pair_counts: np.ndarray  # (k, k) n_ij
    n_images: int
    alpha: float

    def as_json(self) -> dict[str, Any]:
        def clean(matrix: np.ndarray) -> list[list[float | None]]:
            return [[None if np.isnan(v) else float(f"{v:.6g}") for v in row] for row in matrix]

        return {
            "findings": list(self.names),
            "n_images": self.n_images,
            "alpha": self.alpha,
            "matrix": clean(self.conditional),
            "counts": self.counts.tolist(),
            "pair_counts": self.pair_counts.tolist(),
        }


def conditional_cooccurrence(labels: np.ndarray, names: tuple[str, ...], alpha: float) -> Comorbidity:
    """P(column j | column i) of a 0/1 label matrix ``(n_images, k)``, smoothed toward the marginal."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[1] != len(names):
        raise ValueError(f"labels of shape {labels.shape} do not match {len(names)} names")
    if len(labels) == 0:
        raise ValueError("co-occurrence of no images")
    if alpha < 0:
        raise ValueError("alpha must be >= 0")
    x = labels.astype(np.int64)
    pair = x.T @ x
    counts = np.diag(pair).copy()
    marginal = counts / len(x)
    with np.errstate(invalid="ignore", divide="ignore"):
        conditional = (pair + alpha * marginal[None, :]) / (counts[:, None] + alpha)
    np.fill_diagonal(conditional, np.where(counts + alpha > 0, 1.0, np.nan))
    return Comorbidity(tuple(names), conditional, counts, pair, len(x), float(alpha))
