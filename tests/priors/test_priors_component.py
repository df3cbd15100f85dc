"""The priors KFP component's defaults (its run under kfp.local is in tests/test_pipeline.py)."""

from __future__ import annotations

import json

from pipelines.cxr_privacy import stage_defaults
from tests.conftest import PARAMS


def test_pipeline_defaults_carry_the_priors_section():
    defaults = stage_defaults(PARAMS, "default")
    assert json.loads(defaults["priors_config"])["min_cases"] == 20
