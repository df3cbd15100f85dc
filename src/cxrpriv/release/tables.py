"""The release's tables: labels in the ChestX-ray14 ``Data_Entry_2017`` layout under the pseudonyms, and one
list of file names per split (as ChestX-ray14's ``train_val_list.txt`` / ``test_list.txt``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from cxrpriv.chestxray14 import DATA_ENTRY_COLUMNS, FINDINGS, NO_FINDING
from cxrpriv.dataset import SPLITS


def finding_labels(manifest: pd.DataFrame) -> list[str]:
    """'Atelectasis|Effusion' per row, or 'No Finding'; empty for an unlabeled row (``labeled`` False: its
    findings are unknown, which 'No Finding' would misstate)."""
    labeled = (
        manifest["labeled"].to_numpy(dtype=bool) if "labeled" in manifest else np.ones(len(manifest), bool)
    )
    flags = manifest[list(FINDINGS)].fillna(0).to_numpy(dtype=np.int64)
    return [
        ("|".join(f for f, on in zip(FINDINGS, row, strict=True) if on) or NO_FINDING) if known else ""
        for row, known in zip(flags, labeled, strict=True)
    ]


def follow_up_numbers(manifest: pd.DataFrame) -> np.ndarray:
    """Each image's rank among its patient's images by (shifted) study date, then pseudonym: 0, 1, ..."""
    order = manifest.assign(_date=manifest["study_date"].fillna("")).sort_values(
        ["patient_id", "_date", "image_id"]
    )
    ranks = order.groupby("patient_id", sort=False).cumcount()
    return ranks.reindex(manifest.index).to_numpy(dtype=np.int64)


def labels_table(
    manifest: pd.DataFrame, file_names: Sequence[str], sizes: Sequence[tuple[int, int]], spacings: Sequence
) -> pd.DataFrame:
    """The Data_Entry_2017 table of the released images (manifest order). ``sizes``: (width, height) of
    each released image; ``spacings``: its (x, y) pixel spacing in mm, or None where unknown."""
    width, height, spacing_x, spacing_y = DATA_ENTRY_COLUMNS[7:11]
    ages = manifest["age"].astype("Int64")
    return pd.DataFrame(
        {
            "Image Index": list(file_names),
            "Finding Labels": finding_labels(manifest),
            "Follow-up #": follow_up_numbers(manifest),
            "Patient ID": manifest["patient_id"].astype(str).to_numpy(),
            "Patient Age": ages.to_numpy(),
            "Patient Gender": manifest["sex"].astype("string").fillna("").to_numpy(),
            "View Position": manifest["view"].astype("string").fillna("").to_numpy(),
            width: [w for w, _ in sizes],
            height: [h for _, h in sizes],
            spacing_x: [s[0] if s else None for s in spacings],
            spacing_y: [s[1] if s else None for s in spacings],
        },
        columns=list(DATA_ENTRY_COLUMNS),
    )


def write_splits(folder: Path, manifest: pd.DataFrame, file_names: Sequence[str]) -> list[Path]:
    """``<split>_list.txt`` for every split: the released file names of its images, one a line."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = np.asarray(file_names, dtype=object)
    split = manifest["split"].astype(str).to_numpy()
    written = []
    for name in SPLITS:
        path = folder / f"{name}_list.txt"
        path.write_text("".join(f"{n}\n" for n in sorted(names[split == name])))
        written.append(path)
    return written
