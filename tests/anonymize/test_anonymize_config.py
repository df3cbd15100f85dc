"""The stage's config: impossible values are refused with the key named; the params profiles resolve."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from cxrpriv.anonymize.config import TrainAnonymizerConfig
from cxrpriv.config import ConfigError, load_stage_config
from tests.anonymize.conftest import tiny_anonymizer_config
from tests.conftest import PARAMS


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"widths": (8,)}, "widths"),
        ({"mu": float("inf")}, "mu"),
        ({"smoothing_kernel": 4}, "smoothing_kernel"),
        ({"image_size": 8}, "image_size"),
        ({"films_per_patient": 1}, "films_per_patient"),
        ({"batch_size": 6, "films_per_patient": 4}, "batch_size"),
        ({"privacy_weight": 0.0, "utility_weight": 0.0}, "loss weight"),
    ],
)
def test_impossible_values_are_refused(change: dict, message: str):
    config = dataclasses.replace(tiny_anonymizer_config(), **change)
    with pytest.raises(ConfigError, match=f"train_anonymizer: .*{message}"):
        config.validate()


def test_the_params_profiles_resolve():
    if "train_anonymizer" not in yaml.safe_load(PARAMS.read_text()):
        pytest.skip("params.yaml has no train_anonymizer section yet (tests/test_stages.py says so too)")
    default = load_stage_config(TrainAnonymizerConfig, "train_anonymizer", PARAMS, "default")
    assert default.image_size == 0 and default.privacy_loss == "rank"
    paper = load_stage_config(TrainAnonymizerConfig, "train_anonymizer", PARAMS, "paper")
    assert (paper.widths, paper.image_size, paper.mu) == ((32, 64, 128, 256, 512), 256, 0.01)
    assert (paper.privacy_loss, paper.helpers) == ("paper", "updated")
