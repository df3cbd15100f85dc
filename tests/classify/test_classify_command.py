"""``cxrpriv train_classifier``'s ``--priors``: the priors output folder or file, and what the classifier
trains with when the priors stage was skipped (the training itself: test_classify_stage.py)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cxrpriv.classify.command import _with_priors_output
from cxrpriv.classify.config import ClassifierConfig
from cxrpriv.config import load_stage_config
from cxrpriv.priors.output import PRIORS_FILE, write_priors_skipped
from cxrpriv.stages.contract import StageContext
from tests.conftest import PARAMS


def _config(**changes: object) -> ClassifierConfig:
    base = load_stage_config(ClassifierConfig, "train_classifier", PARAMS, "default")
    return dataclasses.replace(base, **changes)


def _context(tmp_path: Path) -> StageContext:
    paths = {"out": tmp_path / "out", "metrics": tmp_path / "m.json", "plots": tmp_path / "plots"}
    return StageContext(**paths, profile="default")


def test_a_skipped_priors_output_trains_without_priors_tagged_so(tmp_path: Path):
    write_priors_skipped(tmp_path / "priors", "no re-read table")
    config = _config(prior_correction="forward", comorbidity_weight=0.5)
    context = dataclasses.replace(_context(tmp_path), tags={"bench": "1"})
    adjusted, tagged, priors = _with_priors_output(config, context, tmp_path / "priors")
    assert priors is None
    assert (adjusted.prior_correction, adjusted.comorbidity_weight) == ("none", 0.0)
    assert dataclasses.replace(adjusted, prior_correction="forward", comorbidity_weight=0.5) == config
    assert tagged.tags == {"bench": "1", "cxrpriv.priors": "skipped"}


def test_a_measured_priors_output_is_read_from_the_folder_or_the_file(tmp_path: Path):
    (tmp_path / "priors").mkdir()
    (tmp_path / "priors" / PRIORS_FILE).write_text("{}")
    config, context = _config(prior_correction="forward"), _context(tmp_path)
    expected = (config, context, tmp_path / "priors" / PRIORS_FILE)
    for given in (tmp_path / "priors", tmp_path / "priors" / PRIORS_FILE):
        assert _with_priors_output(config, context, given) == expected


def test_a_missing_priors_file_is_no_input_unless_the_config_needs_it(tmp_path: Path):
    context = _context(tmp_path)
    plain = _config(prior_correction="none")
    assert _with_priors_output(plain, context, tmp_path / "nowhere") == (plain, context, None)
    forward = _config(prior_correction="forward")
    # the reader reports it missing (test_classify_stage.py)
    assert _with_priors_output(forward, context, tmp_path) == (forward, context, tmp_path / PRIORS_FILE)
