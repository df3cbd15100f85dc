"""The results format: validation names what is missing, and every derived number matches a hand count."""

from __future__ import annotations

import copy
import json
import math

import pytest

from cxrpriv.evaluate.results import (
    SUMMARY_COLUMNS,
    flat_metrics,
    headline_metrics,
    read_results,
    summarize_seeds,
    summary_rows,
    utility_drop,
    validate_results,
    worst_attacker,
    worst_linkage_p_at_1,
    worst_seed_auc,
    write_results,
)
from tests.evaluate.conftest import build_results, chosen_variant


def test_the_crafted_results_are_valid() -> None:
    validate_results(build_results())


@pytest.mark.parametrize(
    ("path", "named"),
    [
        (("chosen",), "missing key 'chosen'"),
        (("test", "positive_pairs"), "test: missing key 'positive_pairs'"),
        (("variants", 1, "privacy", "frozen_verifier", "auc"), "variants['learned'].privacy.frozen_verifier"),
        (("variants", 1, "privacy", "retrained", "siamese", "auc_worst"), "retrained.siamese: missing key"),
        (("variants", 1, "privacy", "retrained", "metric", "runs", 0, "p_at_1"), "metric.runs[0]"),
        (("variants", 2, "utility", "frozen_classifier"), "variants['dp_pix'].utility: missing key"),
        (
            ("variants", 0, "utility", "retrained_classifier", "per_finding", "Hernia", "low"),
            "per_finding.Hernia: missing key 'low'",
        ),
    ],
)
def test_validate_names_the_missing_key(path: tuple, named: str) -> None:
    results = build_results()
    parent = results
    for key in path[:-1]:
        parent = parent[key]
    del parent[path[-1]]
    with pytest.raises(ValueError, match="missing key") as error:
        validate_results(results)
    assert named in str(error.value)
    assert repr(path[-1]).strip("'") in str(error.value)


def test_validate_rejects_an_unknown_chosen_variant_and_method_and_duplicates() -> None:
    results = build_results()
    results["chosen"] = "nope"
    with pytest.raises(ValueError, match=r"results\.chosen: 'nope' is not a variant"):
        validate_results(results)
    results = build_results()
    results["variants"][1]["method"] = "blur"
    with pytest.raises(ValueError, match="method: 'blur'"):
        validate_results(results)
    results = build_results()
    results["variants"][2]["name"] = "learned"
    with pytest.raises(ValueError, match="duplicated variant names"):
        validate_results(results)


def test_summarize_seeds_by_hand() -> None:
    runs = [
        {"seed": 4, "auc": 0.6, "p_at_1": 0.1, "map_at_r": 0.2},
        {"seed": 5, "auc": 0.7, "p_at_1": 0.3, "map_at_r": 0.4},
        {"seed": 6, "auc": 0.5, "p_at_1": 0.2, "map_at_r": 0.0},
    ]
    summary = summarize_seeds(runs)
    assert summary["auc_mean"] == pytest.approx(0.6)
    assert summary["auc_sd"] == pytest.approx(0.1)  # sample s.d. of 0.5, 0.6, 0.7
    assert (summary["auc_worst"], summary["worst_seed"]) == (0.7, 5)
    assert summary["p_at_1_mean"] == pytest.approx(0.2)
    assert summary["p_at_1_worst"] == 0.3
    assert summary["map_at_r_mean"] == pytest.approx(0.2)
    assert summarize_seeds(runs[:1])["auc_sd"] == 0.0


def test_an_unmeasured_seed_leaves_the_summary_unmeasured() -> None:
    summary = summarize_seeds(
        [{"seed": 1, "auc": 0.55, "p_at_1": 0.0}, {"seed": 2, "auc": None, "p_at_1": 0.0}]
    )
    assert summary["auc_mean"] is None and summary["auc_worst"] is None and summary["worst_seed"] is None


def test_worst_attacker_is_the_family_with_the_highest_mean() -> None:
    variant = chosen_variant(build_results())
    family, record = worst_attacker(variant)
    assert family == "metric"  # mean (0.55 + 0.58 + 0.60) / 3 = 0.5767 > siamese 0.53
    assert record is variant["privacy"]["retrained"]["metric"]
    strongest = worst_attacker(variant)
    assert strongest.auc_mean == pytest.approx(0.57666, abs=1e-4)
    assert (strongest.auc_worst, strongest.worst_seed) == (0.60, 3)


def test_worst_attacker_prefers_an_unmeasured_family_and_none_without_any() -> None:
    variant = chosen_variant(build_results())
    variant["privacy"]["retrained"]["siamese"]["auc_mean"] = None
    assert worst_attacker(variant).family == "siamese"
    assert math.isnan(worst_attacker(variant).auc_mean)
    variant["privacy"]["retrained"] = {}
    assert worst_attacker(variant) is None
    assert math.isnan(worst_seed_auc(variant)[0])


def test_worst_seed_and_linkage_over_all_families() -> None:
    variant = chosen_variant(build_results())
    variant["privacy"]["retrained"]["siamese"]["auc_worst"] = 0.64  # a lower mean, a higher seed
    value, family = worst_seed_auc(variant)
    assert (value, family.family) == (0.64, "siamese")
    value, family = worst_linkage_p_at_1(variant)
    assert (value, family.family) == (0.03, "metric")


def test_utility_drop_by_hand() -> None:
    results = build_results()
    assert utility_drop(results, "learned") == pytest.approx(0.86 - 0.845)
    assert utility_drop(results, "dp_pix") == pytest.approx(0.31)
    assert utility_drop(results, "none") == 0.0
    assert utility_drop(results, "learned", source="retrained_classifier") == pytest.approx(0.85 - 0.835)
    assert math.isnan(utility_drop(results, "no such variant"))


def test_summary_rows_one_per_variant() -> None:
    rows = summary_rows(build_results())
    assert [r["name"] for r in rows] == ["none", "learned", "dp_pix", "random_warp"]
    assert all(set(r) == {key for key, _ in SUMMARY_COLUMNS} for r in rows)
    learned = rows[1]
    assert learned["role"] == "chosen" and rows[0]["role"] == "reference"
    assert learned["settings"] == "mu=0.1, mu_pixels=3.2"
    assert learned["attacker"] == "metric"
    assert learned["attacker_auc_worst"] == 0.60 and learned["attacker_worst_seed"] == 3
    assert learned["linkage_p_at_1_worst"] == 0.03
    assert learned["utility_drop"] == pytest.approx(0.015)
    assert learned["frozen_verifier_auc"] == 0.51


def test_flat_metrics_are_dotted_finite_floats() -> None:
    results = build_results()
    chosen_variant(results)["privacy"]["frozen_verifier"]["map_at_r"] = None
    results["variants"][1]["name"] = "learned mu.0.1"
    results["chosen"] = "learned mu.0.1"
    flat = flat_metrics(results)
    assert flat["learned mu_0_1.retrained.metric.auc_mean"] == pytest.approx(0.57666, abs=1e-4)
    assert flat["learned mu_0_1.retrained.siamese.seed_2.auc"] == 0.54
    assert flat["learned mu_0_1.frozen_classifier.Hernia.auc"] == pytest.approx(0.895)
    assert flat["learned mu_0_1.utility_drop"] == pytest.approx(0.015)
    assert flat["test.pairs"] == 9000.0
    assert "learned mu_0_1.frozen_verifier.map_at_r" not in flat
    assert all(isinstance(v, float) and math.isfinite(v) for v in flat.values())


def test_write_and_read_round_trip_with_nan_as_null(tmp_path) -> None:
    results = build_results()
    chosen_variant(results)["privacy"]["frozen_verifier"]["auc"] = math.nan
    path = write_results(results, tmp_path / "metrics" / "evaluate.json")
    assert "NaN" not in path.read_text()
    assert json.loads(path.read_text())["variants"][1]["privacy"]["frozen_verifier"]["auc"] is None
    expected = copy.deepcopy(results)
    expected["variants"][1]["privacy"]["frozen_verifier"]["auc"] = None
    assert read_results(path) == json.loads(json.dumps(expected))
    path.write_text("{}")
    with pytest.raises(ValueError, match=r"evaluate\.json: not evaluate results .*missing key 'reference'"):
        read_results(path)


def test_headline_is_the_chosen_variant_by_hand_with_null_where_unmeasured() -> None:
    results = build_results()
    headline = headline_metrics(results, gate_passed=False)
    assert headline["variant"] == "learned" and headline["gate_passed"] is False
    assert headline["attacker_auc_worst"] == 0.60 and headline["frozen_verifier_auc"] == 0.51
    assert headline["linkage_p_at_1_worst"] == 0.03
    assert headline["classifier_auc_original"] == pytest.approx(0.86)
    assert headline["classifier_auc_anonymized"] == pytest.approx(0.845)
    assert headline["utility_drop"] == pytest.approx(0.015)
    assert len(headline) == 9
    chosen_variant(results)["privacy"]["frozen_verifier"]["auc"] = None
    unmeasured = headline_metrics(results, gate_passed=True)
    assert unmeasured["frozen_verifier_auc"] is None and unmeasured["gate_passed"] is True
    json.dumps(unmeasured, allow_nan=False)  # strict JSON: DVC reads it
