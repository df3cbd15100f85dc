"""The allowlist policy (only what the image needs stays) and the PHI tripwire on every kept text value."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from cxrpriv.ingest import allowlist
from cxrpriv.ingest.deid import Deidentifier, tripwire_values
from tests.ingest.conftest import TEST_KEY
from tests.ingest.test_ingest_deid import OPTIONS, header

# Someone else's name: the tripwire only knows the file's own values, so only the allowlist stops these.
STRANGER = "WINTERBOTTOM"


def deid(policy: str = "allowlist", options: tuple[str, ...] = OPTIONS) -> Deidentifier:
    return Deidentifier(TEST_KEY, options, 3650, policy)


def code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def planted() -> Dataset:
    """A header with a stranger's name wherever the Annex E table does not look."""
    ds = header()
    ds.SoftwareVersions = f"{STRANGER} BUILD 4"  # device string, not in the table
    ds.Manufacturer = f"{STRANGER} MEDICAL"
    ds.ImageType = ["ORIGINAL", "PRIMARY", STRANGER]  # image-type string
    ds.WindowCenterWidthExplanation = f"WINDOW BY {STRANGER}"  # explanation of kept values
    ds.add_new(0x00189999, "LO", f"{STRANGER} UNASSIGNED")  # an unassigned standard tag
    region = code("43799004", "SCT", f"Chest of {STRANGER}")  # a free-text code meaning in a kept sequence
    nested = Dataset()
    nested.PersonName = f"{STRANGER}^MARY"
    nested.TextValue = f"seen by {STRANGER}"
    region.add_new(0x0040A730, "SQ", Sequence([nested]))  # a sequence nested in a kept item
    ds.AnatomicRegionSequence = Sequence([region])
    ds.ViewCodeSequence = Sequence([code("399348003", "SCT", "antero-posterior")])  # the registered meaning
    lut = Dataset()
    lut.add_new(0x00283002, "US", [4, 0, 12])  # LUT Descriptor
    lut.LUTExplanation = f"{STRANGER} CURVE"
    lut.add_new(0x00283006, "OW", np.arange(4, dtype="<u2").tobytes())  # LUT Data
    ds.VOILUTSequence = Sequence([lut])
    comment = Dataset()
    comment.ImageComments = f"for {STRANGER}"
    ds.add_new(0x00081115, "SQ", Sequence([comment]))  # a sequence the allowlist does not name
    return ds


def as_text(ds: Dataset) -> str:
    return json.dumps(ds.to_json_dict())


def test_annex_e_policy_releases_what_the_table_does_not_list():
    text = as_text(deid("annex_e").apply(planted()).dataset)
    assert text.count(STRANGER) >= 5, "the risk the allowlist closes (documented in deidentification.md)"


def test_allowlist_keeps_only_what_the_image_needs():
    out = deid().apply(planted()).dataset
    assert STRANGER not in as_text(out)
    for keyword in ("SoftwareVersions", "Manufacturer", "ImageType", "WindowCenterWidthExplanation"):
        assert keyword not in out
    assert 0x00189999 not in out and "ReferencedSeriesSequence" not in out
    # what the image needs to be read stays
    for keyword in ("Rows", "Columns", "BitsStored", "PhotometricInterpretation", "WindowCenter", "KVP"):
        assert keyword in out, keyword
    assert out.ViewPosition == "PA" and out.BodyPartExamined == "CHEST" and out.Modality == "CR"
    # allowlisted sequences keep only their allowlisted item attributes
    region = out.AnatomicRegionSequence[0]
    assert set(region.keys()) == {0x00080100, 0x00080102}  # code value and scheme; free-text meaning gone
    assert out.ViewCodeSequence[0].CodeMeaning == "antero-posterior"  # registered meaning stays
    lut = out.VOILUTSequence[0]
    assert "LUTExplanation" not in lut and len(lut.LUTData) == 8 and list(lut.LUTDescriptor) == [4, 0, 12]
    # pseudonyms, UIDs and shifted dates as under the table
    annex = deid("annex_e").apply(planted()).dataset
    same = ("PatientID", "PatientName", "SOPInstanceUID", "StudyInstanceUID", "StudyDate", "StudyTime")
    for keyword in same:
        assert out[keyword].value == annex[keyword].value, keyword
    assert out.PatientSex == "M" and out.PatientAge == "062Y"  # Retain Patient Characteristics
    assert out.PatientIdentityRemoved == "YES" and out.DeidentificationMethodCodeSequence


def test_allowlisted_attributes_still_obey_the_table():
    ds = planted()
    assert {0x00100010, 0x00100020, 0x0020000D} <= allowlist.TOP_LEVEL
    out = deid(options=()).apply(ds).dataset  # no options: dates and characteristics go
    assert "StudyDate" not in out and "PatientSex" not in out and "PatientAge" not in out
    assert out.StudyInstanceUID.startswith("2.25.")


def test_options_retain_their_attributes_under_the_allowlist():
    options = (*OPTIONS, "retain_device_identity", "retain_institution_identity", "clean_descriptors")
    ds = planted()
    ds.StudyDescription = "XR CHEST PA okafor"
    out = deid(options=options).apply(ds).dataset
    assert out.DeviceSerialNumber == "FCR48213" and out.StationName == "CR_ROOM2"
    assert out.InstitutionName == "ST ELSEWHERE GENERAL HOSPITAL"  # not a tripwire when retained
    assert out.StudyDescription.strip() == "XR CHEST PA"
    assert "Manufacturer" not in out  # no option retains it


def test_unknown_policy_is_refused():
    with pytest.raises(ValueError, match="policy"):
        deid("keep_everything")


# --------------------------------------------------------------------------- the tripwire


def test_tripwire_values_are_normalized_components_and_whole_identifiers():
    values = set(tripwire_values(header()))
    assert {"okafor", "joseph", "house", "gregory", "grey", "meredith", "tech", "alex"} <= values
    assert {"40338283", "19510630", "a4455667788", "stelsewheregeneralhospital"} <= values
    assert "k" not in values and "dr" not in values, "1-2 letter components are ignored"


@pytest.mark.parametrize("policy", ["allowlist", "annex_e"])
def test_tripwire_blanks_the_files_own_values_wherever_they_remain(policy: str):
    ds = header()
    ds.BodyPartExamined = "OKAFOR"  # a coded value that is a name
    ds.RescaleType = "okafor-joseph"  # other case and separators
    ds.PatientOrientation = ["L", "F"]  # 'K' (the middle initial) is too short to count: this stays
    region = code("A4455667788", "SCT", "x")  # the accession number in a kept sequence item
    ds.AnatomicRegionSequence = Sequence([region])
    ds.add_new(0x00180060, "DS", "40338283")  # KVP holding the MRN (never validated on read)
    ds.ViewPosition = "PA"
    result = deid(policy).apply(ds)
    out = result.dataset
    assert result.phi_blanked == 4
    assert not out.BodyPartExamined and not out.RescaleType and not out.KVP
    assert not out.AnatomicRegionSequence[0].CodeValue
    assert list(out.PatientOrientation) == ["L", "F"] and out.ViewPosition == "PA"
    text = as_text(out).lower()
    assert "okafor" not in text and "40338283" not in text and "a4455667788" not in text


def test_tripwire_catches_values_the_annex_e_policy_keeps():
    ds = header()
    ds.SoftwareVersions = "O.K.A.F.O.R 1951-06-30"  # birth date in another format, name spaced out
    ds.Manufacturer = "Dr House Imaging"  # the referring physician
    ds.add_new(0x00189999, "LO", "MRN 403-382-83")  # the patient ID with separators, unassigned tag
    result = deid("annex_e").apply(ds)
    assert result.phi_blanked == 3
    assert not result.dataset.SoftwareVersions and not result.dataset.Manufacturer
    assert deid().apply(header()).phi_blanked == 0, "a clean header trips nothing"


def test_short_names_match_whole_words_only_and_numbers_their_own_values():
    ds = header()
    ds.PatientName = "LIN^MARY"
    ds.PatientID = "18000"
    ds.VOILUTFunction = "LINEAR"  # 'LIN' inside a word: kept
    ds.ImageType = ["ORIGINAL", "PRIMARY"]  # 'MARY' inside a word: kept (under annex_e)
    ds.DistanceSourceToDetector = "1800.0"  # not the patient ID 18000
    ds.Manufacturer = "Lin Medical"  # the family name as a word: blanked
    ds.SoftwareVersions = "build-18000-x"  # the patient ID inside text: blanked
    result = deid("annex_e").apply(ds)
    out = result.dataset
    assert out.VOILUTFunction == "LINEAR" and list(out.ImageType) == ["ORIGINAL", "PRIMARY"]
    assert float(out.DistanceSourceToDetector) == 1800.0
    assert not out.Manufacturer and not out.SoftwareVersions and result.phi_blanked == 2
