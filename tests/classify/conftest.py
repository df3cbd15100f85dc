"""Fixtures of the classifier tests: a tiny cohort synthesized and ingested once per session, hand-made
priors, tiny configs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from cxrpriv.chestxray14 import FINDINGS
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.config import load_stage_config
from tests.conftest import PARAMS, IngestedCohort


def tiny_classifier_config(**overrides: object) -> ClassifierConfig:
    """The default profile shrunk to seconds: 32 px, a narrow two-block trunk, two short epochs."""
    base = load_stage_config(ClassifierConfig, "train_classifier", PARAMS, "default")
    small = {
        "image_size": 32,
        "width": 4,
        "depth": 2,
        "stem": 1,
        "batch_size": 4,
        "max_epochs": 2,
        "max_steps_per_epoch": 3,
        "n_boot": 20,
        "min_eval_positives": 1,
    }
    small.update(overrides)
    return dataclasses.replace(base, **small)


@pytest.fixture(scope="session")
def tiny_data(
    tiny_ingested_cohort: IngestedCohort, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The shared tiny ingested cohort (twelve patients, 32 px) and hand-made priors: paths of ingest,
    answer key, priors."""
    priors = tmp_path_factory.mktemp("classify-priors") / "priors.json"
    priors.write_text(json.dumps(handmade_priors()))
    return {
        "ingest": tiny_ingested_cohort.ingest,
        "answer_key": tiny_ingested_cohort.cohort / "answer_key",
        "priors": priors,
    }


def handmade_priors(pos: float = 0.6, neg: float = 0.02) -> dict:
    """A minimal cxrpriv.priors/1 document: the same P(true | mined) for every finding, a flat comorbidity."""
    k = len(FINDINGS)
    matrix = np.full((k, k), 0.1)
    np.fill_diagonal(matrix, 1.0)
    return {
        "schema": "cxrpriv.priors/1",
        "findings_order": list(FINDINGS),
        "findings": {
            f: {"p_true_given_mined_pos": pos, "p_true_given_mined_neg": neg, "status": "measured"}
            for f in FINDINGS
        },
        "comorbidity": {"findings": list(FINDINGS), "matrix": matrix.tolist()},
    }
