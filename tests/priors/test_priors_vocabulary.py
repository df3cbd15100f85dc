"""The finding vocabulary: defaults, groups, unmapped and unknown labels, vocabulary files."""

from __future__ import annotations

import json

import pytest

from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.vocabulary import DEFAULT_VOCABULARY, Target, Vocabulary, load_vocabulary
from cxrpriv.synth.stats import FINDINGS


def test_defaults_map_vindr_and_google_names_and_keep_chestxray14_names():
    mapped, unmapped = DEFAULT_VOCABULARY.resolve(
        ["Pleural effusion", "Nodule/Mass", "Nodule or mass", "Fracture", "Aortic enlargement", *FINDINGS],
        "test table",
    )
    assert mapped["Pleural effusion"] == Target("Effusion", ("Effusion",))
    assert mapped["Nodule/Mass"] == mapped["Nodule or mass"] == Target("Nodule or mass", ("Mass", "Nodule"))
    assert all(mapped[f] == Target(f, (f,)) for f in FINDINGS)
    assert unmapped == ("Fracture", "Aortic enlargement")
    assert mapped["Nodule/Mass"].is_group and not mapped["Effusion"].is_group


def test_an_unknown_label_is_an_error_that_names_it_and_the_table():
    with pytest.raises(PriorsInputError, match=r"table X: unknown finding\(s\) \['Covid-19'\]"):
        DEFAULT_VOCABULARY.resolve(["Effusion", "Covid-19"], "table X")


def test_targets_sort_in_canonical_finding_order():
    names = ("Pneumothorax", "Nodule or mass", "Airspace opacity", "Mass")
    targets = [DEFAULT_VOCABULARY.target(n) for n in names]
    ordered = sorted(targets, key=Target.sort_key)
    assert [t.name for t in ordered] == ["Airspace opacity", "Mass", "Nodule or mass", "Pneumothorax"]


def test_a_vocabulary_file_extends_and_overrides_the_defaults(tmp_path):
    path = tmp_path / "vocab.yaml"
    path.write_text(
        "groups:\n  Pleural: [Effusion, Pleural_Thickening]\n"
        "labels:\n  Nodule: Nodule or mass\n  Mass: Nodule or mass\n"
        "  Fluid: Pleural\n  ILD: Fibrosis\n"
    )
    vocabulary = load_vocabulary(path)
    mapped, unmapped = vocabulary.resolve(["Nodule", "Mass", "Fluid", "ILD", "Fracture"], "t")
    assert {mapped["Nodule"].name, mapped["Mass"].name} == {"Nodule or mass"}
    assert mapped["Fluid"].members == ("Effusion", "Pleural_Thickening")
    assert mapped["ILD"].name == "Fibrosis" and unmapped == ("Fracture",)
    as_json = tmp_path / "vocab.json"
    as_json.write_text(json.dumps({"labels": {"Fracture": "Hernia"}}))
    assert load_vocabulary(as_json).resolve(["Fracture"], "t")[0]["Fracture"].name == "Hernia"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("groups:\n  Bad: [Effusion, Covid]\n", "needs ChestX-ray14 findings"),
        ("groups:\n  Effusion: [Effusion]\n", "has a ChestX-ray14 name"),
        ("labels:\n  Fluid: Liquid\n", "neither a ChestX-ray14 finding nor a group"),
        ("mapping:\n  a: b\n", "expected a mapping with 'groups'"),
        ("labels: [unclosed\n", "cannot read it"),
    ],
)
def test_bad_vocabulary_files_are_rejected(tmp_path, text, message):
    path = tmp_path / "vocab.yaml"
    path.write_text(text)
    with pytest.raises(PriorsInputError, match=message):
        load_vocabulary(path)


def test_no_file_means_the_defaults():
    assert load_vocabulary(None) is DEFAULT_VOCABULARY
    with pytest.raises(PriorsInputError):
        Vocabulary({}, {"X": "Y"})
