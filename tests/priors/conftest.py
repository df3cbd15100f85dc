"""Fixtures of the priors tests: the stage config from params.yaml, and writers of small hand-made tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cxrpriv.config import load_stage_config
from cxrpriv.priors.config import PriorsConfig
from cxrpriv.synth.stats import FINDINGS
from tests.conftest import PARAMS


@pytest.fixture
def make_config() -> Callable[..., PriorsConfig]:
    """The default profile's priors config with some values replaced."""
    base = load_stage_config(PriorsConfig, "priors", PARAMS, "default")

    def make(**overrides: Any) -> PriorsConfig:
        return dataclasses.replace(base, **overrides)

    return make


@pytest.fixture
def write_labels(tmp_path: Path) -> Callable[..., Path]:
    """A ChestX-ray14-format labels CSV from (image, 'A|B' or 'No Finding') pairs."""

    def write(rows: Sequence[tuple[str, str]], name: str = "labels.csv") -> Path:
        path = tmp_path / name
        frame = pd.DataFrame(rows, columns=["Image Index", "Finding Labels"])
        frame["Patient ID"] = 99999123  # a sentinel that must never reach any output or message
        frame.to_csv(path, index=False)
        return path

    return write


@pytest.fixture
def write_wide(tmp_path: Path) -> Callable[..., Path]:
    """A reader_wide re-read table from (image, reader, {finding: 0/1}) rows; unnamed findings are 0."""

    def write(rows: Sequence[tuple[str, str, dict[str, int]]], name: str = "reread.csv") -> Path:
        path = tmp_path / name
        records = [
            {"Image Index": image, "Reader": reader, **{f: values.get(f, 0) for f in FINDINGS}}
            for image, reader, values in rows
        ]
        pd.DataFrame(records, columns=["Image Index", "Reader", *FINDINGS]).to_csv(path, index=False)
        return path

    return write


@pytest.fixture
def write_adjudicated(tmp_path: Path) -> Callable[..., Path]:
    """A Google-layout table: image, text-mined labels, YES/NO per class, plus a Patient ID column."""

    def write(
        rows: Sequence[tuple[str, str, dict[str, str]]], classes: Sequence[str], name: str = "adjudicated.csv"
    ) -> Path:
        path = tmp_path / name
        records = [
            {
                "Image Index": image,
                "Finding Labels": mined,
                "Patient ID": 99999123,
                **{c: values.get(c, "NO") for c in classes},
            }
            for image, mined, values in rows
        ]
        pd.DataFrame(records).to_csv(path, index=False)
        return path

    return write
