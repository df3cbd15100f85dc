"""The fast date parser of de-identification accepts and rejects exactly what strptime('%Y%m%d') does."""

from __future__ import annotations

import datetime as dt

import numpy as np

from cxrpriv.ingest.deid import parse_dicom_date


def strptime_date(text: str) -> dt.date | None:
    try:
        return dt.datetime.strptime(text.strip()[:8], "%Y%m%d").date()
    except ValueError:
        return None


def test_parse_dicom_date_equals_strptime():
    rng = np.random.default_rng(0)
    texts = [
        "20240229", "20230229", "20241301", "20240001", "20240100", "20240132", "00000101", "99991231",
        "2024011", "2024-01-01", " 20240115 ", "20240115123000.5", "２０２４０１０１", "2024 1 1", "",
        "20241 01", "202401", "1899123", "19000101",
    ]  # fmt: skip
    texts += ["".join(rng.choice(list("0123456789"), 8)) for _ in range(5000)]
    texts += [f"{y:04d}{m:02d}{d:02d}" for y in (1, 1900, 2000, 2024) for m in range(14) for d in range(33)]
    for text in texts:
        assert parse_dicom_date(text) == strptime_date(text), text
