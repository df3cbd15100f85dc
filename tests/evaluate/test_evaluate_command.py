"""``cxrpriv evaluate``'s inputs from its paths: the priors output folder or file, and the retrained
classifier's recipe when the priors stage was skipped (the stage itself: test_evaluate_stage.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from cxrpriv.config import load_stage_config
from cxrpriv.evaluate.command import resolve_inputs
from cxrpriv.evaluate.config import EvaluateConfig
from cxrpriv.priors.output import PRIORS_FILE, write_priors_skipped
from tests.conftest import PARAMS


def _args(priors: Path) -> argparse.Namespace:
    return argparse.Namespace(
        params=PARAMS,
        ingest=Path("data/ingest"),
        anonymized=[Path("data/anonymized")],
        verifier=Path("data/reid"),
        classifier=Path("data/classifier"),
        priors=priors,
        answer_key=None,
    )


def test_the_retrained_classifier_runs_without_priors_when_the_priors_stage_was_skipped(tmp_path: Path):
    config = load_stage_config(EvaluateConfig, "evaluate", PARAMS, "default")
    measured = resolve_inputs(config, _args(tmp_path / "nowhere"), "default")
    assert measured.classifier_config.prior_correction == "forward"  # params.yaml's default
    write_priors_skipped(tmp_path / "priors", "no re-read table")
    skipped = resolve_inputs(config, _args(tmp_path / "priors"), "default")
    assert skipped.priors is None and skipped.classifier_config.prior_correction == "none"


def test_the_priors_file_is_found_in_the_priors_output_folder(tmp_path: Path):
    config = load_stage_config(EvaluateConfig, "evaluate", PARAMS, "default")
    (tmp_path / PRIORS_FILE).write_text("{}")
    for given in (tmp_path, tmp_path / PRIORS_FILE):
        assert resolve_inputs(config, _args(given), "default").priors == tmp_path / PRIORS_FILE
