"""The release gate on crafted results: it passes on good numbers and fails, with the right reason, on each
bad or missing one."""

from __future__ import annotations

import dataclasses
import math

import pytest

from cxrpriv.config import ConfigError
from cxrpriv.evaluate.decision import FAIL, PASS, read_decision
from cxrpriv.evaluate.gate import GateConfig, decide
from tests.evaluate.conftest import build_results, chosen_variant

MEAN, WORST, LINKAGE, UTILITY = (
    "retrained attacker mean AUC",
    "retrained attacker worst-seed AUC",
    "linkage attack P@1 (worst seed)",
    "utility drop (classifier mean AUC)",
)


def failed(decision) -> dict[str, float]:
    return {c.name: c.value for c in decision.checks if not c.ok}


def test_good_metrics_pass_with_every_check_recorded(tmp_path) -> None:
    decision = decide(build_results(), GateConfig())
    assert decision.decision == PASS and decision.variant == "learned"
    assert decision.reasons == []
    values = {c.name: c.value for c in decision.checks}
    assert values == pytest.approx({MEAN: 0.57667, WORST: 0.60, LINKAGE: 0.03, UTILITY: 0.015}, abs=1e-4)
    assert decision.limits["max_attacker_auc_mean"] == 0.60
    assert read_decision(decision.write(tmp_path / "release_decision.json")) == decision


def test_attacker_mean_too_high() -> None:
    results = build_results()
    chosen_variant(results)["privacy"]["retrained"]["siamese"]["auc_mean"] = 0.62
    decision = decide(results, GateConfig())
    assert decision.decision == FAIL
    assert failed(decision) == {MEAN: 0.62}
    assert decision.reasons[0].startswith(f"{MEAN}: 0.6200 exceeds the limit 0.6000")
    assert "siamese" in decision.reasons[0]


def test_one_seed_too_high() -> None:
    results = build_results()
    metric = chosen_variant(results)["privacy"]["retrained"]["metric"]
    metric["auc_worst"], metric["worst_seed"] = 0.70, 2  # the mean (0.5767) stays within its limit
    decision = decide(results, GateConfig())
    assert failed(decision) == {WORST: 0.70}
    assert "seed 2" in decision.reasons[0] and "0.7000 exceeds the limit 0.6500" in decision.reasons[0]


def test_linkage_too_high() -> None:
    results = build_results()
    chosen_variant(results)["privacy"]["retrained"]["siamese"]["p_at_1_worst"] = 0.2
    assert failed(decide(results, GateConfig())) == {LINKAGE: 0.2}


def test_utility_drop_too_big() -> None:
    results = build_results()
    chosen_variant(results)["utility"]["frozen_classifier"]["mean_auc"] = 0.80
    decision = decide(results, GateConfig())
    assert failed(decision) == pytest.approx({UTILITY: 0.06})
    assert "0.0600 exceeds the limit 0.0300" in decision.reasons[0]


def test_the_frozen_verifier_is_never_gated_on() -> None:
    results = build_results()
    chosen_variant(results)["privacy"]["frozen_verifier"]["auc"] = 0.99
    assert decide(results, GateConfig()).passed


def test_the_retrained_classifier_is_not_gated_on() -> None:
    results = build_results()
    chosen_variant(results)["utility"]["retrained_classifier"]["mean_auc"] = 0.5
    assert decide(results, GateConfig()).passed


@pytest.mark.parametrize(
    ("remove", "failing"),
    [
        (lambda r: chosen_variant(r)["privacy"]["retrained"].clear(), {MEAN, WORST, LINKAGE}),
        (lambda r: chosen_variant(r)["privacy"].pop("retrained"), {MEAN, WORST, LINKAGE}),
        (lambda r: chosen_variant(r)["privacy"]["retrained"]["metric"].update(auc_mean=None), {MEAN}),
        (lambda r: chosen_variant(r)["privacy"]["retrained"]["siamese"].update(auc_worst=math.nan), {WORST}),
        (lambda r: chosen_variant(r)["privacy"]["retrained"]["metric"].pop("p_at_1_worst"), {LINKAGE}),
        (lambda r: chosen_variant(r)["utility"]["frozen_classifier"].update(mean_auc=None), {UTILITY}),
        (lambda r: r["variants"][0]["utility"].pop("frozen_classifier"), {UTILITY}),  # the reference's
        (lambda r: r.update(reference="gone"), {UTILITY}),
        (lambda r: r.update(chosen="gone"), {MEAN, WORST, LINKAGE, UTILITY}),
    ],
)
def test_a_missing_measurement_fails_with_nan(remove, failing: set[str]) -> None:
    results = build_results()
    remove(results)
    decision = decide(results, GateConfig())
    assert decision.decision == FAIL
    assert set(failed(decision)) == failing
    assert all(math.isnan(v) for v in failed(decision).values())
    assert all("not measured" in reason for reason in decision.reasons)
    written = [c for c in decision.to_dict()["checks"] if not c["ok"]]
    assert all(c["value"] is None for c in written)  # strict JSON: null, not NaN


def test_without_required_retraining_only_utility_is_checked() -> None:
    results = build_results()
    chosen_variant(results)["privacy"]["retrained"].clear()
    decision = decide(results, GateConfig(require_retrained=False))
    assert [c.name for c in decision.checks] == [UTILITY]
    assert decision.passed


def test_limits_are_configurable() -> None:
    decision = decide(build_results(), GateConfig(max_attacker_auc_mean=0.55, max_utility_drop=0.01))
    assert set(failed(decision)) == {MEAN, UTILITY}
    assert decision.limits["max_attacker_auc_mean"] == 0.55


def test_gate_config_validation_and_help() -> None:
    with pytest.raises(ConfigError, match="max_utility_drop: must be in"):
        GateConfig(max_utility_drop=-0.1).validate()
    assert all(len(f.metadata["help"]) > 40 for f in dataclasses.fields(GateConfig))


def test_gate_from_the_stage_settings() -> None:
    class Settings:
        max_attacker_auc_mean = 0.58
        max_linkage_p_at_1 = 0.1
        attacker_seeds = (1, 2, 3)  # not a gate field: ignored

    gate = GateConfig.from_settings(Settings())
    assert (gate.max_attacker_auc_mean, gate.max_linkage_p_at_1, gate.max_attacker_auc_worst) == (
        0.58,
        0.1,
        0.65,
    )


def test_decide_needs_to_know_the_chosen_variant() -> None:
    results = build_results()
    del results["chosen"]
    with pytest.raises(ValueError, match="missing key 'chosen'"):
        decide(results, GateConfig())


def test_the_decision_is_printed_with_its_reasons(tmp_path, capsys):
    from cxrpriv.evaluate.decision import Check, ReleaseDecision, main

    failed = ReleaseDecision.from_checks("learned", [Check("attacker AUC", 0.9, 0.6, False, "mean")], {})
    failed.write(tmp_path / "release_decision.json")
    (tmp_path / "report.html").write_text("<html></html>")
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "learned: FAIL" in out and "attacker AUC: 0.9000 exceeds the limit 0.6000" in out
    assert f"Report: {tmp_path / 'report.html'}" in out
    assert main([str(tmp_path / "missing")]) == 2
