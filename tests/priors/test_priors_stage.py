"""The pure stage on hand-made tables with known answers, its fallbacks, flags and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.noise_rates import at_mined_prevalence, wilson_interval
from cxrpriv.priors.stage import SCHEMA, compute_priors
from cxrpriv.priors.tables import MinedLabels, RereadTable
from cxrpriv.priors.vocabulary import DEFAULT_VOCABULARY
from cxrpriv.synth.stats import FINDINGS

COL = {f: i for i, f in enumerate(FINDINGS)}


def _mined(ids: list[str], positives: dict[str, list[str]]) -> MinedLabels:
    values = np.zeros((len(ids), len(FINDINGS)), dtype=np.uint8)
    index = pd.Index(ids)
    for finding, images in positives.items():
        values[index.get_indexer(images), COL[finding]] = 1
    return MinedLabels(index, values, sha256="labels-hash")


def _table(
    name: str,
    ids: list[str],
    targets: list[str],
    readings: np.ndarray,
    layout: str = "adjudicated",
    *, embedded: MinedLabels | None = None,
) -> RereadTable:
    readings = np.asarray(readings, dtype=np.int8)
    if readings.ndim == 2:  # one reading per image
        readings = readings[:, None, :]
    readers = tuple(f"R{i + 1}" for i in range(readings.shape[1]))
    if layout == "adjudicated":
        readers = ("adjudicated",)
    return RereadTable(
        name=name,
        layout=layout,
        sha256=f"{name}-hash",
        image_ids=pd.Index(ids),
        reader_ids=readers,
        targets=tuple(DEFAULT_VOCABULARY.target(t) for t in targets),
        readings=readings,
        unmapped_labels=(),
        embedded_mined=embedded,
        duplicates_dropped=0,
    )


@pytest.fixture
def known():
    """100 re-read images out of 200 with known 2x2 tables for Pneumothorax and Effusion.

    Pneumothorax: tp 10, fp 5, fn 3, tn 82.  Effusion: tp 30, fp 10, fn 10, tn 50.
    The 100 other images add 5 mined Pneumothorax and 20 mined Effusion: text-mined prevalence 0.1 and 0.3.
    """
    reread = [f"r{i:03d}" for i in range(100)]
    other = [f"o{i:03d}" for i in range(100)]
    ptx_mined, ptx_true = reread[:15], reread[:10] + reread[15:18]
    eff_mined, eff_true = reread[:40], reread[:30] + reread[40:50]
    mined = _mined(
        reread + other, {"Pneumothorax": ptx_mined + other[:5], "Effusion": eff_mined + other[:20]}
    )
    truth = np.zeros((100, 2), dtype=np.int8)
    truth[[reread.index(i) for i in eff_true], 0] = 1  # targets sort as Effusion, Pneumothorax
    truth[[reread.index(i) for i in ptx_true], 1] = 1
    return mined, _table("g", reread, ["Effusion", "Pneumothorax"], truth)


def test_known_two_by_two_tables_give_measured_priors(make_config, known):
    mined, table = known
    result = compute_priors(make_config(min_cases=5), mined, [table], DEFAULT_VOCABULARY)
    doc = result.document
    assert doc["schema"] == SCHEMA and doc["findings_order"] == list(FINDINGS)
    ptx = doc["findings"]["Pneumothorax"]
    assert ptx["status"] == "measured" and ptx["flags"] == []
    assert ptx["subset"]["counts"] == {"tp": 10, "fp": 5, "fn": 3, "tn": 82, "n": 100}
    assert ptx["p_true_given_mined_pos"] == pytest.approx(10 / 15, abs=1e-6)
    assert ptx["p_true_given_mined_neg"] == pytest.approx(3 / 85, abs=1e-6)
    assert ptx["subset"]["p_true_given_mined_pos"]["ci"] == pytest.approx(wilson_interval(10, 15), abs=1e-6)
    assert ptx["value_source"] == {"p_true_given_mined_pos": "subset", "p_true_given_mined_neg": "subset"}
    assert ptx["measured_on"] == {
        "table": "g",
        "target": "Pneumothorax",
        "members": ["Pneumothorax"],
        "truth": "adjudicated",
    }
    # the transfer to the labels table's prevalence, from the measured s = 10/13 and f = 5/87 at m = 0.1
    moved = at_mined_prevalence(10 / 13, 5 / 87, 0.1)
    assert ptx["transfer"]["reference"] == "labels_table"
    assert ptx["transfer"]["p_true_given_mined_pos"] == pytest.approx(moved.p_true_given_mined_pos, abs=1e-5)
    eff = doc["findings"]["Effusion"]
    assert eff["subset"]["counts"] == {"tp": 30, "fp": 10, "fn": 10, "tn": 50, "n": 100}
    assert eff["p_true_given_mined_pos"] == 0.75
    assert eff["p_true_given_mined_neg"] == pytest.approx(1 / 6, abs=1e-6)  # JSON keeps 6 significant digits
    assert doc["tables"][0]["noise_rates"]["Effusion"]["counts"]["tp"] == 30
    assert result.metrics["findings"]["Effusion"]["p_true_given_mined_pos"] == pytest.approx(0.75)
    json.dumps(doc, allow_nan=False)  # plain JSON: no NaN anywhere


def test_unmeasured_findings_get_the_pooled_fallback(make_config, known):
    mined, table = known
    doc = compute_priors(make_config(min_cases=5), mined, [table], DEFAULT_VOCABULARY).document
    # pooled sensitivity over both targets: (10 + 30) / (13 + 40); ratio of fp rate to text-mined prevalence
    # over both findings: (5 + 10) / (87 * 0.1 + 60 * 0.3)
    sens, ratio = 40 / 53, 15 / (87 * 0.1 + 60 * 0.3)
    assert doc["pooled"]["mined_sensitivity"]["value"] == pytest.approx(sens, abs=1e-6)
    assert doc["pooled"]["fpr_to_mined_prevalence_ratio"] == pytest.approx(ratio, abs=1e-6)
    hernia = doc["findings"]["Hernia"]  # never mined: nothing to soften, P(true | mined=0) = 0
    assert hernia["status"] == "fallback" and "no_measurement" in hernia["flags"]
    assert hernia["p_true_given_mined_pos"] is None and hernia["p_true_given_mined_neg"] == 0
    assert hernia["measured_on"] is None and hernia["subset"] is None


def test_too_few_cases_are_flagged_and_replaced_by_the_fallback(make_config, known):
    mined, table = known
    doc = compute_priors(make_config(min_cases=20), mined, [table], DEFAULT_VOCABULARY).document
    ptx = doc["findings"]["Pneumothorax"]
    # 15 text-mined positives and 13 true positives are under 20; 85 text-mined negatives are not
    assert {"too_few_mined_positive", "too_few_true_positive"} <= set(ptx["flags"])
    assert ptx["status"] == "partial_fallback"
    assert ptx["value_source"] == {"p_true_given_mined_pos": "transfer", "p_true_given_mined_neg": "subset"}
    assert ptx["p_true_given_mined_neg"] == pytest.approx(3 / 85, abs=1e-6)
    # own rates too thin: sensitivity pooled from Effusion (30/40); fp rate = Effusion's ratio 10/(60*0.3)
    # times Pneumothorax's prevalence 0.1, because 15 text-mined positives are too few to measure it
    assert ptx["mined_sensitivity"] == {"value": 0.75, "source": "pooled"}
    fpr = 10 / (60 * 0.3) * 0.1
    assert ptx["mined_false_positive_rate"]["value"] == pytest.approx(fpr, abs=1e-6)
    moved = at_mined_prevalence(0.75, fpr, 0.1)
    assert ptx["p_true_given_mined_pos"] == pytest.approx(moved.p_true_given_mined_pos, abs=1e-5)
    assert doc["findings"]["Effusion"]["status"] == "measured"
    assert doc["tables"][0]["noise_rates"]["Pneumothorax"]["flags"] == [
        "too_few_mined_positive",
        "too_few_true_positive",
    ]


def test_prior_basis_labels_prevalence_gives_transferred_values(make_config, known):
    mined, table = known
    doc = compute_priors(
        make_config(min_cases=5, prior_basis="labels_prevalence"), mined, [table], DEFAULT_VOCABULARY
    ).document
    ptx = doc["findings"]["Pneumothorax"]
    assert ptx["status"] == "measured"
    assert ptx["value_source"]["p_true_given_mined_pos"] == "transfer"
    assert ptx["p_true_given_mined_pos"] == ptx["transfer"]["p_true_given_mined_pos"]


def test_members_of_a_group_are_measured_as_the_group(make_config):
    ids = [f"i{i}" for i in range(60)]
    # Nodule or mass re-read positive on i0..i19; Nodule mined on i0..i9 and i40..i44; Mass on i10..i14
    mined = _mined(ids, {"Nodule": ids[:10] + ids[40:45], "Mass": ids[10:15]})
    truth = np.zeros((60, 1), dtype=np.int8)
    truth[:20, 0] = 1
    doc = compute_priors(
        make_config(min_cases=5), mined, [_table("g", ids, ["Nodule or mass"], truth)], DEFAULT_VOCABULARY
    ).document
    nodule, mass = doc["findings"]["Nodule"], doc["findings"]["Mass"]
    assert nodule["status"] == mass["status"] == "measured_as_group"
    assert nodule["measured_on"]["members"] == ["Mass", "Nodule"]
    # member 2x2: text-mined Nodule against the group's re-read label
    assert nodule["subset"]["counts"] == {"tp": 10, "fp": 5, "fn": 10, "tn": 35, "n": 60}
    # the group's sensitivity (15 of 20 group positives have a member mined); the member's own fp rate (5/40)
    assert nodule["mined_sensitivity"] == {"value": 0.75, "source": "measured_group"}
    assert nodule["mined_false_positive_rate"]["value"] == pytest.approx(5 / 40)
    assert set(nodule["value_source"].values()) == {"transfer"}
    group = doc["tables"][0]["noise_rates"]["Nodule or mass"]["counts"]
    assert group == {"tp": 15, "fp": 5, "fn": 5, "tn": 35, "n": 60}


def test_images_missing_from_the_labels_table_are_an_error_or_dropped_when_allowed(make_config):
    mined = _mined(["a", "b", "c"], {"Effusion": ["a"]})
    table = _table("g", ["a", "b", "zz"], ["Effusion"], np.array([[1], [0], [1]]))
    with pytest.raises(
        PriorsInputError,
        match=r"re-read table g: 1 of 3 images are not in the labels table "
        r"\(image IDs: zz\)",
    ):
        compute_priors(make_config(), mined, [table], DEFAULT_VOCABULARY)
    doc = compute_priors(
        make_config(max_unmatched_fraction=0.5, min_cases=1), mined, [table], DEFAULT_VOCABULARY
    ).document
    info = doc["tables"][0]
    assert "images_missing_from_labels_table_dropped" in info["flags"]
    assert info["text_mined"] == {
        "source": "labels_table",
        "n_matched": 2,
        "n_unmatched_dropped": 1,
        "embedded_disagreements": None,
    }
    assert doc["findings"]["Effusion"]["subset"]["counts"]["n"] == 2


def test_a_table_sharing_no_image_with_the_labels_gives_readers_but_no_noise_rates(make_config):
    mined = _mined(["a", "b"], {})
    readings = np.array([[[1], [1], [0]], [[0], [0], [0]], [[1], [1], [1]], [[0], [1], [0]]])
    table = _table("v", ["x1", "x2", "x3", "x4"], ["Cardiomegaly"], readings, layout="reader_long")
    doc = compute_priors(make_config(min_cases=1), mined, [table], DEFAULT_VOCABULARY).document
    info = doc["tables"][0]
    assert {"no_image_in_labels_table", "no_text_mined_labels"} <= set(info["flags"])
    assert info["noise_rates"] == {} and info["truth"] == "dawid_skene"
    assert set(info["reader_models"]["Cardiomegaly"]["readers"]) == {"R1", "R2", "R3"}
    assert info["kappa"]["Cardiomegaly"]["n_images"] == 4
    assert info["majority_vote"]["Cardiomegaly"] == {"positive": 2, "ties": 0}
    assert doc["findings"]["Cardiomegaly"]["measured_on"] is None
    assert doc["comorbidity"]["source"] == {"table": "v", "labels": "dawid_skene"}


def test_embedded_text_mined_labels_are_used_and_checked_against_the_labels_table(make_config):
    ids = ["a", "b", "c", "d"]
    embedded = _mined(ids, {"Pneumothorax": ["a", "b"]})
    table = _table("g", ids, ["Pneumothorax"], np.array([[1], [0], [0], [0]]), embedded=embedded)
    alone = compute_priors(make_config(min_cases=1), None, [table], DEFAULT_VOCABULARY).document
    assert alone["tables"][0]["text_mined"]["source"] == "embedded"
    counts = alone["findings"]["Pneumothorax"]["subset"]["counts"]
    assert counts == {"tp": 1, "fp": 1, "fn": 0, "tn": 2, "n": 4}
    assert alone["findings"]["Pneumothorax"]["transfer"]["reference"] == "subset"
    assert alone["findings"]["Effusion"]["status"] == "unavailable"
    assert "no_labels_table" in alone["findings"]["Effusion"]["flags"]
    other = _mined(ids, {"Pneumothorax": ["a"]})
    both = compute_priors(make_config(min_cases=1), other, [table], DEFAULT_VOCABULARY).document
    assert both["tables"][0]["text_mined"]["embedded_disagreements"] == 1
    assert "embedded_text_mined_labels_disagree_with_labels_table" in both["tables"][0]["flags"]


def test_an_empty_table_is_a_flagged_result_not_a_number(make_config):
    mined = _mined(["a"], {})
    table = _table("t", [], ["Effusion"], np.zeros((0, 1, 1)), layout="reader_wide")
    result = compute_priors(make_config(), mined, [table], DEFAULT_VOCABULARY)
    doc = result.document
    assert doc["tables"][0]["flags"] == ["no_readings"] and doc["tables"][0]["readings_per_image"] is None
    assert all(e["status"] == "unavailable" for e in doc["findings"].values())
    assert doc["comorbidity"] is None and doc["comorbidity_text_mined"] is not None
    json.dumps(doc, allow_nan=False)


def test_a_tiny_subset_is_flagged_everywhere(make_config):
    ids = ["a", "b", "c"]
    mined = _mined(ids, {"Effusion": ["a"]})
    readings = np.array([[[1], [1], [1]], [[0], [0], [0]], [[0], [1], [0]]])
    doc = compute_priors(
        make_config(), mined, [_table("t", ids, ["Effusion"], readings, "reader_wide")], DEFAULT_VOCABULARY
    ).document
    eff = doc["findings"]["Effusion"]
    assert {"too_few_mined_positive", "too_few_mined_negative"} <= set(eff["flags"])
    assert eff["status"] == "unavailable" and eff["p_true_given_mined_pos"] is None
    table = doc["tables"][0]
    assert table["kappa"]["Effusion"]["flags"] == ["too_few_images"]
    assert "sensitivity_not_identified" in table["reader_models"]["Effusion"]["readers"]["R1"]["flags"]


def test_two_readers_fall_back_to_majority_vote(make_config):
    ids = ["a", "b", "c"]
    readings = np.array([[[1], [1]], [[1], [0]], [[0], [0]]])
    doc = compute_priors(
        make_config(majority_tie="negative"),
        _mined(ids, {}),
        [_table("t", ids, ["Edema"], readings, "reader_wide")],
        DEFAULT_VOCABULARY,
    ).document
    table = doc["tables"][0]
    assert table["truth"] == "majority" and table["reader_models"] == {}
    assert "majority_vote_used_fewer_than_3_readers" in table["flags"]
    assert table["majority_vote"]["Edema"] == {"positive": 1, "ties": 1}


def test_comorbidity_comes_from_the_table_covering_most_findings(make_config):
    ids = [f"i{i}" for i in range(6)]
    small = _table("small", ids, ["Effusion"], np.array([[1], [0], [1], [0], [0], [0]]))
    readings = np.array([[1, 1], [0, 0], [1, 0], [0, 0], [0, 1], [0, 0]])
    wide = _table("wide", ids, ["Effusion", "Edema"], readings)
    doc = compute_priors(
        make_config(comorbidity_alpha=0.0), _mined(ids, {}), [small, wide], DEFAULT_VOCABULARY
    ).document
    comorbidity = doc["comorbidity"]
    assert comorbidity["source"]["table"] == "wide"
    assert comorbidity["findings"] == ["Effusion", "Edema"]
    assert comorbidity["matrix"] == [[1.0, 0.5], [0.5, 1.0]]
    assert doc["comorbidity_text_mined"]["findings"] == list(FINDINGS)


def test_tables_are_required_and_named_uniquely(make_config):
    with pytest.raises(PriorsInputError, match="at least one"):
        compute_priors(make_config(), None, [], DEFAULT_VOCABULARY)
    table = _table("t", ["a"], ["Edema"], np.array([[1]]))
    with pytest.raises(PriorsInputError, match="unique"):
        compute_priors(make_config(), None, [table, table], DEFAULT_VOCABULARY)


def test_document_frames_flatten_the_tables(make_config, known):
    mined, table = known
    frames = compute_priors(make_config(min_cases=5), mined, [table], DEFAULT_VOCABULARY).frames()
    assert set(frames) == {"findings", "noise_rates", "reader_models", "kappa", "comorbidity"}
    assert list(frames["findings"]["finding"]) == list(FINDINGS)
    row = frames["noise_rates"].set_index("target").loc["Pneumothorax"]
    assert (row["tp"], row["fp"], row["fn"], row["tn"]) == (10, 5, 3, 82)
    assert row["p_true_given_mined_pos_low"] == pytest.approx(wilson_interval(10, 15)[0], abs=1e-6)


def test_readers_who_only_saw_images_nobody_called_positive_are_flagged(make_config):
    """VinDr-CXR routed mostly normal images to some radiologists: their sensitivity is not identified."""
    rng = np.random.default_rng(5)
    n = 300
    truth = rng.random(n) < 0.3
    panel_a = np.where(truth[:, None], rng.random((n, 3)) < 0.85, rng.random((n, 3)) < 0.03)
    readings = np.full((2 * n, 6, 1), -1, dtype=np.int8)
    readings[:n, :3, 0] = panel_a
    readings[n:, 3:, 0] = 0  # the second panel reads normal images only
    readings[0, 3, 0] = readings[0, 0, 0]  # one image read across panels keeps the readers connected
    ids = [f"i{i}" for i in range(2 * n)]
    doc = compute_priors(
        make_config(), None, [_table("v", ids, ["Effusion"], readings, "reader_long")], DEFAULT_VOCABULARY
    ).document
    model = doc["tables"][0]["reader_models"]["Effusion"]
    assert "readers_with_unidentified_sensitivity" in model["flags"]
    flagged = {r for r, v in model["readers"].items() if "sensitivity_not_identified" in v["flags"]}
    assert flagged == {"R4", "R5", "R6"}
    for reader in ("R1", "R2", "R3"):
        assert model["readers"][reader]["sensitivity"] == pytest.approx(0.85, abs=0.08)
    assert model["map_positive_fraction"] == pytest.approx(truth.mean() / 2, abs=0.03)
    # the summary metric averages identified rates only
    metrics = compute_priors(
        make_config(), None, [_table("v", ids, ["Effusion"], readings, "reader_long")], DEFAULT_VOCABULARY
    ).metrics
    assert metrics["tables"]["v"]["reader_sensitivity_mean"] == pytest.approx(
        np.mean([model["readers"][r]["sensitivity"] for r in ("R1", "R2", "R3")]), abs=1e-5
    )


def test_own_rates_that_contradict_the_prevalence_give_way_to_pooled_ones(make_config, known):
    mined, table = known
    # add Mass on the same 100 re-read images: tp 1, fp 5, fn 22, tn 72, so the measured sensitivity
    # 1/23 is below the measured false-positive rate 5/77: no true prevalence fits
    ids = list(table.image_ids)
    positives = {"Pneumothorax": [], "Effusion": [], "Mass": ids[:6]}
    for finding in ("Pneumothorax", "Effusion"):
        rows = np.flatnonzero(mined.values[:, FINDINGS.index(finding)])
        positives[finding] = [mined.image_ids[r] for r in rows]
    everyone = list(mined.image_ids)
    mined = _mined(everyone, positives)
    truth = np.concatenate([table.readings[:, 0, :], np.zeros((100, 1), dtype=np.int8)], axis=1)
    truth[[0, *range(6, 28)], 2] = 1
    table = _table("g", ids, ["Effusion", "Pneumothorax", "Mass"], truth)
    doc = compute_priors(make_config(min_cases=5), mined, [table], DEFAULT_VOCABULARY).document
    mass = doc["findings"]["Mass"]
    assert mass["subset"]["counts"] == {"tp": 1, "fp": 5, "fn": 22, "tn": 72, "n": 100}
    assert "own_rates_inconsistent_with_prevalence" in mass["flags"]
    assert mass["mined_sensitivity"]["source"] == mass["mined_false_positive_rate"]["source"] == "pooled"
    assert mass["transfer"]["in_range"]
    assert mass["value_source"]["p_true_given_mined_pos"] == "subset"  # 6 mined positives >= min_cases
