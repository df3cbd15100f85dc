"""The HTML report: self-contained, says the decision and why, embeds the plots, escapes every string."""

from __future__ import annotations

import base64
import re

import pytest

from cxrpriv.evaluate.gate import GateConfig, decide
from cxrpriv.evaluate.html import write_html_report
from cxrpriv.evaluate.report import ExampleFilms, write_plots
from tests.evaluate.conftest import build_results, chosen_variant, example_films


@pytest.fixture(scope="module")
def plots(tmp_path_factory):
    originals, anonymized = example_films()
    return write_plots(build_results(), ExampleFilms(originals, anonymized), tmp_path_factory.mktemp("plots"))


def render(results, plots, tmp_path) -> str:
    decision = decide(results, GateConfig())
    path = write_html_report(results, decision, plots, tmp_path / "report" / "evaluate.html")
    return path.read_text(encoding="utf-8")


def test_a_passing_report(plots, tmp_path) -> None:
    page = render(build_results(), plots, tmp_path)
    assert "PASS: the release may go ahead" in page
    assert "Every check is within its limit." in page
    for text in ("How to read this report", "0.5 is chance", "CosFace embedding", "4,200 training pairs"):
        assert text in page
    assert "Atelectasis" in page and "Pleural_Thickening" in page


def test_a_failing_report_lists_the_reasons(plots, tmp_path) -> None:
    results = build_results()
    chosen_variant(results)["privacy"]["retrained"]["siamese"]["auc_mean"] = 0.62
    chosen_variant(results)["utility"]["frozen_classifier"]["mean_auc"] = None
    page = render(results, plots, tmp_path)
    assert "FAIL: do not release" in page
    assert "retrained attacker mean AUC: 0.6200 exceeds the limit 0.6000" in page
    assert "utility drop (classifier mean AUC): not measured" in page


def test_plots_are_embedded_and_nothing_is_fetched(plots, tmp_path) -> None:
    page = render(build_results(), plots, tmp_path)
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(embedded) == len(plots) == 3
    assert base64.b64decode(embedded[0]) == plots[0].read_bytes()
    assert "http" not in page.lower()
    assert not re.search(r"""(src|href)\s*=\s*["'](?!data:)""", page)
    assert "<link" not in page and "<script" not in page


def test_every_string_is_escaped(plots, tmp_path) -> None:
    results = build_results()
    hostile = '<script>alert("x")</script>'
    results["variants"][1]["name"] = hostile
    results["chosen"] = hostile
    results["variants"][2]["settings"] = {"note": "<b>bold</b> & more"}
    chosen_variant(results)["privacy"]["retrained"]["metric"]["attacker"] = "<img src=x onerror=alert(1)>"
    page = render(results, plots, tmp_path)
    assert "<script" not in page and "<img src=x" not in page and "<b>bold" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; more" in page
