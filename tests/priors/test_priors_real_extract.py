"""The three layouts on the vendored extract of the real tables (tests/data/real_extract, see its README).

Expected values are computed here with plain pandas from the same files, independently of the stage's code.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from cxrpriv.config import load_stage_config
from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.config import PriorsConfig
from cxrpriv.priors.stage import compute_priors
from cxrpriv.priors.tables import read_mined_labels, read_reread_table
from cxrpriv.priors.vocabulary import DEFAULT_VOCABULARY
from tests.conftest import PARAMS, REPO

REAL_EXTRACT = REPO / "tests" / "data" / "real_extract"

GOOGLE = REAL_EXTRACT / "google2019_extract.csv.gz"
NIH = REAL_EXTRACT / "chestxray14_labels_extract.csv.gz"
VINDR = REAL_EXTRACT / "vindr_extract.csv.gz"


def test_the_extract_is_small():
    assert sum(p.stat().st_size for p in (GOOGLE, NIH, VINDR)) < 200_000


def test_google_layout_and_its_two_by_two_tables():
    table = read_reread_table(GOOGLE, DEFAULT_VOCABULARY, "google")
    raw = pd.read_csv(GOOGLE)
    assert table.layout == "adjudicated" and table.n_images == len(raw) == 360
    assert [t.name for t in table.targets] == ["Airspace opacity", "Nodule or mass", "Pneumothorax"]
    assert table.unmapped_labels == ("Fracture",)  # outside the 14 findings: reported, not an error
    mined = read_mined_labels(NIH)
    doc = compute_priors_document(mined, [table])
    info = doc["tables"][0]
    assert info["text_mined"]["source"] == "labels_table"
    assert info["text_mined"]["embedded_disagreements"] == 0
    labels = raw["Finding Labels"].str.split("|").map(set)
    for target, members in (("Pneumothorax", {"Pneumothorax"}), ("Nodule or mass", {"Nodule", "Mass"})):
        mined_any = labels.map(lambda found, m=members: bool(found & m))
        truth = raw[target] == "YES"
        expected = {
            "tp": int((mined_any & truth).sum()),
            "fp": int((mined_any & ~truth).sum()),
            "fn": int((~mined_any & truth).sum()),
            "tn": int((~mined_any & ~truth).sum()),
            "n": 360,
        }
        assert info["noise_rates"][target]["counts"] == expected, target


def compute_priors_document(mined, tables):
    config = load_stage_config(PriorsConfig, "priors", PARAMS, "default")
    return compute_priors(config, mined, tables, DEFAULT_VOCABULARY).document


def test_vindr_layout_collapses_to_one_reading_per_reader_and_image():
    table = read_reread_table(VINDR, DEFAULT_VOCABULARY, "vindr")
    raw = pd.read_csv(VINDR)
    assert table.layout == "reader_long" and table.n_images == raw["image_id"].nunique() == 150
    assert (table.readings_per_image() == 3).all()  # three radiologists per image
    assert set(table.reader_ids) <= {f"R{i}" for i in range(1, 18)}
    assert {"Aortic enlargement", "Other lesion"} <= set(table.unmapped_labels)
    names = [t.name for t in table.targets]
    assert "Nodule or mass" in names and "Effusion" in names
    # one image, computed from the raw rows: which reader called a pleural effusion
    image = raw.loc[raw["class_name"] == "Pleural effusion", "image_id"].iloc[0]
    callers = set(raw.loc[(raw["image_id"] == image) & (raw["class_name"] == "Pleural effusion"), "rad_id"])
    row = table.image_ids.get_loc(image)
    effusion = names.index("Effusion")
    readers = {
        r for r, value in zip(table.reader_ids, table.readings[row, :, effusion], strict=True) if value == 1
    }
    assert readers == callers
    # every reading: positive iff the reader drew at least one box of a class mapped to the target
    positives = int((table.readings[:, :, effusion] == 1).sum())
    pairs = raw[raw["class_name"] == "Pleural effusion"][["image_id", "rad_id"]].drop_duplicates()
    assert positives == len(pairs)


def test_all_three_real_layouts_together():
    mined = read_mined_labels(NIH)
    tables = [
        read_reread_table(p, DEFAULT_VOCABULARY, f"reread_{i}")
        for i, p in enumerate((GOOGLE, VINDR), start=1)
    ]
    doc = compute_priors_document(mined, tables)
    google, vindr = doc["tables"]
    assert google["truth"] == "adjudicated" and google["kappa"] == {}
    # VinDr has no text-mined labels: reader models, kappa and comorbidity, no 2x2 tables
    assert "no_text_mined_labels" in vindr["flags"] and vindr["noise_rates"] == {}
    assert vindr["truth"] == "dawid_skene"
    for target, model in vindr["reader_models"].items():
        assert model["converged"], target
        for reader in model["readers"].values():
            assert 0 < reader["sensitivity"] < 1 and 0.5 < reader["specificity"] < 1
    kappas = [k["fleiss_kappa"] for k in vindr["kappa"].values() if k["fleiss_kappa"] is not None]
    assert kappas and all(-1 <= k <= 1 for k in kappas)
    assert doc["comorbidity"]["source"]["table"] == "reread_2"
    assert doc["findings"]["Pneumothorax"]["measured_on"]["table"] == "reread_1"
    statuses = {f: e["status"] for f, e in doc["findings"].items()}
    assert statuses["Nodule"] == statuses["Mass"] == "measured_as_group"
    # nothing in the document is a NaN, and the inputs appear only as content hashes
    text = json.dumps(doc, allow_nan=False)
    assert "real_extract" not in text and "csv" not in text
    assert np.isfinite(
        [
            e["p_true_given_mined_neg"]
            for e in doc["findings"].values()
            if e["p_true_given_mined_neg"] is not None
        ]
    ).all()


@pytest.mark.parametrize(
    ("layout", "missing"),
    [("reader_long", "'image_id', 'rad_id', 'class_name'"), ("reader_wide", "'Reader'")],
)
def test_a_wrong_explicit_layout_is_a_clear_error(layout, missing):
    message = rf"google \(google2019_extract.csv.gz, {layout}\): missing column\(s\) \[{missing}\]"
    with pytest.raises(PriorsInputError, match=message):
        read_reread_table(GOOGLE, DEFAULT_VOCABULARY, "google", layout=layout)
