"""The evaluate plots are written from crafted results, also when measurements are missing."""

from __future__ import annotations

import numpy as np
import pytest

from cxrpriv.evaluate.gate import GateConfig
from cxrpriv.evaluate.report import (
    EXAMPLES_PLOT,
    PER_FINDING_PLOT,
    TRADEOFF_PLOT,
    TRADEOFF_SERIES,
    ExampleFilms,
    write_plots,
)
from tests.evaluate.conftest import build_results, chosen_variant, example_films

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_pngs(paths, names) -> None:
    assert [p.name for p in paths] == names
    for path in paths:
        assert path.stat().st_size > 1000
        assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_every_plot_is_written(tmp_path) -> None:
    originals, anonymized = example_films()
    paths = write_plots(
        build_results(), ExampleFilms(originals, anonymized), tmp_path / "plots", GateConfig()
    )
    assert_pngs(paths, [TRADEOFF_PLOT, PER_FINDING_PLOT, EXAMPLES_PLOT])


def test_no_examples_no_grid(tmp_path) -> None:
    paths = write_plots(build_results(), None, tmp_path)
    assert_pngs(paths, [TRADEOFF_PLOT, PER_FINDING_PLOT])
    paths = write_plots(build_results(), ExampleFilms(np.zeros((0, 8, 8))), tmp_path)
    assert len(paths) == 2


def test_plots_survive_unmeasured_numbers(tmp_path) -> None:
    results = build_results()
    chosen_variant(results)["privacy"]["retrained"].clear()
    results["variants"][0]["utility"]["frozen_classifier"]["mean_auc"] = None  # the reference's
    results["variants"][2]["utility"]["frozen_classifier"]["per_finding"]["Mass"]["auc"] = None
    results["variants"][3]["utility"]["frozen_classifier"]["mean_auc_low"] = None
    assert_pngs(write_plots(results, None, tmp_path), [TRADEOFF_PLOT, PER_FINDING_PLOT])


def test_examples_of_another_size_are_refused(tmp_path) -> None:
    originals, anonymized = example_films(size=32)
    anonymized["learned"] = anonymized["learned"][:, :16, :16]
    with pytest.raises(ValueError, match="example films of 'learned'"):
        write_plots(build_results(), ExampleFilms(originals, anonymized), tmp_path)


def test_names_are_drawn_as_written(tmp_path) -> None:
    results = build_results()
    results["variants"][1]["name"] = "a $x^$ <script>"  # unescaped, matplotlib fails to parse it as mathtext
    results["chosen"] = results["variants"][1]["name"]
    originals, anonymized = example_films()
    anonymized[results["chosen"]] = anonymized.pop("learned")
    paths = write_plots(results, ExampleFilms(originals, anonymized), tmp_path)
    assert_pngs(paths, [TRADEOFF_PLOT, PER_FINDING_PLOT, EXAMPLES_PLOT])


def test_the_trade_off_points_are_written_as_a_data_series(tmp_path) -> None:
    import json

    results = build_results()
    chosen_variant(results)["privacy"]["frozen_verifier"]["auc"] = None
    write_plots(results, None, tmp_path)
    points = json.loads((tmp_path / TRADEOFF_SERIES).read_text())
    assert [p["name"] for p in points] == ["none", "learned", "dp_pix", "random_warp"]
    learned = points[1]
    assert learned["attacker_auc_worst"] == 0.60
    assert "frozen_verifier_auc" not in learned  # unmeasured: no point, not NaN (which JSON lacks)
