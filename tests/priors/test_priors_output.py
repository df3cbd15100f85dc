"""The priors output format (:mod:`cxrpriv.priors.output`): priors.json or the skipped marker, how a model
stage finds its priors file in either, and the classifier config without priors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.output import (
    PRIORS_FILE,
    PRIORS_SKIPPED_FILE,
    clear_priors_skipped,
    priors_file,
    skipped_reason,
    without_priors,
    write_priors_skipped,
)


def test_a_skipped_output_has_the_marker_with_its_reason_and_no_priors_file(tmp_path: Path):
    out = tmp_path / "priors"
    out.mkdir()
    (out / PRIORS_FILE).write_text("{}")  # an earlier run's: no reader may train on it now
    marker = write_priors_skipped(out, "no re-read table")
    assert marker == out / PRIORS_SKIPPED_FILE
    assert json.loads(marker.read_text()) == {"skipped": True, "reason": "no re-read table"}
    assert not (out / PRIORS_FILE).exists()
    # found from the folder or from the priors.json path a caller names out of habit
    for given in (out, out / PRIORS_FILE, str(out)):
        assert priors_file(given) is None, given
        assert skipped_reason(given) == "no re-read table", given


def test_a_measured_output_gives_its_priors_file_whether_the_folder_or_the_file_is_named(tmp_path: Path):
    out = tmp_path / "priors"
    write_priors_skipped(out, "no re-read table")
    clear_priors_skipped(out)  # what run_priors does before it writes priors.json
    (out / PRIORS_FILE).write_text("{}")
    assert not (out / PRIORS_SKIPPED_FILE).exists()
    assert priors_file(out) == out / PRIORS_FILE
    assert priors_file(out / PRIORS_FILE) == out / PRIORS_FILE
    assert skipped_reason(out) is None


def test_a_path_that_is_neither_is_left_for_the_reader_to_report(tmp_path: Path):
    assert priors_file(tmp_path) == tmp_path / PRIORS_FILE  # an empty folder: its priors.json is missing
    assert priors_file(tmp_path / "nowhere") == tmp_path / "nowhere"
    assert skipped_reason(tmp_path / "nowhere") is None
    other = tmp_path / "mine.json"  # a priors file of another name, beside a marker it has nothing to do with
    other.write_text("{}")
    write_priors_skipped(tmp_path, "no re-read table")
    assert priors_file(other) == other


def test_a_broken_marker_is_an_input_error_naming_the_file(tmp_path: Path):
    (tmp_path / PRIORS_SKIPPED_FILE).write_text("not json")
    with pytest.raises(PriorsInputError, match=PRIORS_SKIPPED_FILE):
        priors_file(tmp_path)


def test_without_priors_turns_off_what_needs_priors_json_and_says_so(caplog):
    values = {"prior_correction": "forward", "comorbidity_weight": 0.5, "width": 4}
    with caplog.at_level(logging.WARNING):
        adjusted = without_priors(values, "train_classifier", "no re-read table")
    assert adjusted == {"prior_correction": "none", "comorbidity_weight": 0.0, "width": 4}
    assert values["prior_correction"] == "forward"  # the caller's values are left alone
    assert "train_classifier: no label priors (no re-read table)" in caplog.text
    assert "prior_correction='none'" in caplog.text and "comorbidity_weight=0.0" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert without_priors(adjusted, "evaluate", "no re-read table") == adjusted
    assert not caplog.text, "nothing changed, nothing to say"
