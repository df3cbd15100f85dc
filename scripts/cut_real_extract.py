"""Cut the small extract of the real re-read tables that the priors tests use (tests/data/real_extract).

The full tables are not part of the repository; this keeps a few hundred rows of each, chosen with a fixed
seed, and only the columns the priors stage reads (no Patient ID, age or sex). The output is byte-identical
on every run (fixed seed, gzip without a timestamp), so a diff shows any real change.

Usage, from the repository root::

    python scripts/cut_real_extract.py --real-dir ../shared/data/real --out tests/data/real_extract
"""

from __future__ import annotations

import argparse
import gzip
import io
from pathlib import Path

import numpy as np
import pandas as pd

GOOGLE_FILE = "google2019_nih-chest-xray-labels.csv.gz"
NIH_FILE = "Data_Entry_2017_v2020.csv.gz"
VINDR_FILE = "vinbigdata-train.csv.gz"

GOOGLE_COLUMNS = [
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "View Position",
    "Fracture",
    "Pneumothorax",
    "Airspace opacity",
    "Nodule or mass",
    "Set Id",
]
VINDR_COLUMNS = ["image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"]
SEED = 20261126
# Per Google class, images with an adjudicated YES; the rest drawn from all images. Enough positives for the
# 2x2 tables to have cases in every cell.
GOOGLE_POSITIVES_PER_CLASS = 60
GOOGLE_OTHERS = 120
NIH_EXTRA = 200  # ChestX-ray14 rows beyond the Google images, so the labels table is larger than the re-read
VINDR_IMAGES = 150


def _write_csv_gz(frame: pd.DataFrame, path: Path) -> None:
    text = frame.to_csv(index=False)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as gz:
        gz.write(text.encode())
    path.write_bytes(buffer.getvalue())


def cut(real_dir: Path, out: Path) -> list[Path]:
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)

    google = pd.read_csv(real_dir / GOOGLE_FILE)[GOOGLE_COLUMNS]
    chosen: list[int] = []
    for name in ("Pneumothorax", "Nodule or mass", "Airspace opacity", "Fracture"):
        pool = np.setdiff1d(np.flatnonzero(google[name].to_numpy() == "YES"), chosen)
        chosen += rng.choice(pool, min(GOOGLE_POSITIVES_PER_CLASS, len(pool)), replace=False).tolist()
    rest = np.setdiff1d(np.arange(len(google)), chosen)
    chosen += rng.choice(rest, GOOGLE_OTHERS, replace=False).tolist()
    google = google.iloc[sorted(chosen)]

    nih = pd.read_csv(real_dir / NIH_FILE, usecols=["Image Index", "Finding Labels"])
    in_google = nih["Image Index"].isin(google["Image Index"])
    extra = rng.choice(np.flatnonzero(~in_google.to_numpy()), NIH_EXTRA, replace=False)
    nih = nih.iloc[sorted(np.flatnonzero(in_google.to_numpy()).tolist() + extra.tolist())]

    vindr = pd.read_csv(real_dir / VINDR_FILE)[VINDR_COLUMNS]
    images = np.sort(rng.choice(vindr["image_id"].unique(), VINDR_IMAGES, replace=False))
    vindr = vindr[vindr["image_id"].isin(images)].sort_values(["image_id", "rad_id", "class_id", "x_min"])

    paths = [
        out / "google2019_extract.csv.gz",
        out / "chestxray14_labels_extract.csv.gz",
        out / "vindr_extract.csv.gz",
    ]
    for frame, path in zip((google, nih, vindr), paths, strict=True):
        _write_csv_gz(frame, path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real-dir", type=Path, default=Path("../shared/data/real"))
    parser.add_argument("--out", type=Path, default=Path("tests/data/real_extract"))
    args = parser.parse_args(argv)
    for path in cut(args.real_dir, args.out):
        print(f"{path} {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
