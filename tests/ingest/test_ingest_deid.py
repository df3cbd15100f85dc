"""Header de-identification: Annex E actions, keyed pseudonyms, date shifts, UID remapping, nesting."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from cxrpriv.ingest.deid import (
    PSEUDONYM,
    Deidentifier,
    DeidError,
    annex_e_table,
    patient_age_years,
    resolve_actions,
)
from cxrpriv.synth.dicom_writer import PatientStudyHeader, PixelEncoding, build_radiograph_dataset
from tests.ingest.conftest import OTHER_KEY, TEST_KEY

OPTIONS = ("retain_long_modified_dates", "retain_patient_characteristics")


def header(
    patient_id: str = "40338283", study_date: dt.date = dt.date(2014, 2, 14), sop: str = "3"
) -> Dataset:
    person = PatientStudyHeader(
        patient_name="OKAFOR^JOSEPH^K",
        patient_id=patient_id,
        birth_date=dt.date(1951, 6, 30),
        sex="M",
        age_years=62,
        accession_number="A4455667788",
        institution_name="ST ELSEWHERE GENERAL HOSPITAL",
        institution_address="1 HOSPITAL ROAD, SPRINGFIELD",
        referring_physician="HOUSE^GREGORY^^DR",
        performing_physician="GREY^MEREDITH^^DR",
        operator_name="TECH^ALEX",
        station_name="CR_ROOM2",
        study_date=study_date,
        study_time=dt.time(9, 30, 5),
        study_description="XR CHEST PA",
        study_instance_uid=f"1.2.826.0.1.3680043.8.498.{sop}1",
        series_instance_uid=f"1.2.826.0.1.3680043.8.498.{sop}2",
        sop_instance_uid=f"1.2.826.0.1.3680043.8.498.{sop}3",
        series_number=1,
        instance_number=1,
        view_position="PA",
        modality="CR",
        manufacturer="FUJIFILM Corporation",
        model_name="FCR CAPSULA XLII",
        device_serial_number="FCR48213",
        pixel_spacing_mm=0.15,
    )
    encoding = PixelEncoding("MONOCHROME2", 12, 1.0, 0.0, "window", "explicit_le", "NO")
    ds = build_radiograph_dataset(np.zeros((16, 16), dtype=np.float32), person, encoding)
    del ds.PixelData
    return ds


IDENTIFYING = (
    "OKAFOR",
    "JOSEPH",
    "40338283",
    "19510630",
    "A4455667788",
    "ST ELSEWHERE",
    "HOSPITAL ROAD",
    "HOUSE",
    "GREY",
    "TECH^ALEX",
    "CR_ROOM2",
    "FCR48213",
    "1.2.826.0.1.3680043.8.498",
    "20140214",
)


def deid(
    options: tuple[str, ...] = OPTIONS, key: object = TEST_KEY, policy: str = "allowlist"
) -> Deidentifier:
    return Deidentifier(key, options, 3650, policy)  # type: ignore[arg-type]


def as_text(ds: Dataset) -> str:
    return json.dumps(ds.to_json_dict())


def test_the_annex_e_table_is_loaded_with_its_option_columns():
    table = {row.tag: row for row in annex_e_table()}
    assert len(table) > 400
    assert table["00100010"].basic == "Z"  # Patient's Name
    assert table["00080020"].options["retain_long_modified_dates"] == "C"  # Study Date
    assert table["00101010"].options["retain_patient_characteristics"] == "K"  # Patient's Age
    assert table["0020000D"].basic == "U"  # Study Instance UID
    exact, masked = resolve_actions(OPTIONS)
    assert exact[0x00080020] == "C" and exact[0x00100040] == "K"
    assert any(mask == 0xFF00FFFF and value == 0x60003000 for mask, value, _ in masked)  # Overlay Data


@pytest.mark.parametrize("policy", ["allowlist", "annex_e"])
def test_no_identifying_value_survives_at_any_depth(policy: str):
    ds = header()
    # a private element and a person name buried two sequences deep
    inner = Dataset()
    inner.PersonName = "OKAFOR^JOSEPH"
    inner.add_new(0x00091010, "LO", "OKAFOR 40338283")
    middle = Dataset()
    middle.add_new(0x0040A730, "SQ", Sequence([inner]))  # Content Sequence (D in the Basic Profile)
    middle.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.33"
    middle.AnatomicRegionSequence = Sequence([inner.copy()])
    ds.add_new(0x00081115, "SQ", Sequence([middle]))  # Referenced Series Sequence (not in the table)
    out = deid(policy=policy).apply(ds).dataset
    text = as_text(out)
    assert not [v for v in IDENTIFYING if v in text]
    assert not [e for e in out.iterall() if e.tag.is_private]
    if policy == "annex_e":
        # kept (not in the table); the references it holds are remapped consistently with their instance
        referenced = out.ReferencedSeriesSequence[0].ReferencedSOPInstanceUID
        assert referenced == deid().uid("1.2.826.0.1.3680043.8.498.33")
    else:
        assert "ReferencedSeriesSequence" not in out  # not allowlisted: gone with everything it holds


def test_pseudonyms_are_keyed_stable_and_recorded():
    first = deid().apply(header()).dataset
    second = deid().apply(header(sop="4")).dataset
    other = deid(key=OTHER_KEY).apply(header()).dataset
    assert PSEUDONYM.match(first.PatientID) and str(first.PatientName) == first.PatientID
    assert first.PatientID == second.PatientID != other.PatientID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in first.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107", "113108"}
    assert first.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "Basic Profile" in str(first.DeidentificationMethod[0])


def test_uids_are_valid_2_25_uids_consistent_across_runs():
    a = deid().apply(header()).dataset
    b = deid().apply(header()).dataset
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        uid = UID(str(a[keyword].value))
        assert uid.is_valid and uid.startswith("2.25.") and len(uid) <= 64
        assert uid == b[keyword].value
    assert a.file_meta.MediaStorageSOPInstanceUID == a.SOPInstanceUID
    assert a.SOPClassUID == "1.2.840.10008.5.1.4.1.1.1"  # a well-known class UID is kept


def test_one_date_shift_per_patient_keeps_intervals():
    d = deid()
    early = d.apply(header(study_date=dt.date(2014, 2, 14))).dataset
    late = d.apply(header(study_date=dt.date(2015, 3, 1), sop="5")).dataset
    as_date = lambda ds: dt.datetime.strptime(ds.StudyDate, "%Y%m%d").date()  # noqa: E731
    assert (as_date(late) - as_date(early)).days == (dt.date(2015, 3, 1) - dt.date(2014, 2, 14)).days
    shift = (dt.date(2014, 2, 14) - as_date(early)).days
    assert 1 <= shift <= 3650 and shift == d.date_shift_days("40338283")
    assert early.StudyTime == "093005"  # whole-day shifts keep the time of day
    assert early.AcquisitionDateTime.startswith(as_date(early).strftime("%Y%m%d"))
    shifts = {d.date_shift_days(str(i)) for i in range(50)}
    assert len(shifts) > 40, "patients get their own shifts"


def test_patient_characteristics_are_kept_and_birth_date_is_not():
    out = deid().apply(header()).dataset
    assert out.PatientSex == "M" and out.PatientAge == "062Y"
    assert not out.get("PatientBirthDate")
    assert patient_age_years(header()) == 62


def test_without_options_dates_and_characteristics_go():
    out = deid(options=()).apply(header()).dataset
    assert not out.get("StudyDate") and not out.get("AcquisitionDateTime") and not out.get("PatientSex")
    assert "PatientAge" not in out
    assert out.LongitudinalTemporalInformationModified == "REMOVED"
    assert {item.CodeValue for item in out.DeidentificationMethodCodeSequence} == {"113100"}


def test_retain_device_and_institution_options():
    out = (
        deid(options=(*OPTIONS, "retain_device_identity", "retain_institution_identity"))
        .apply(header())
        .dataset
    )
    assert out.DeviceSerialNumber == "FCR48213" and out.StationName == "CR_ROOM2"
    assert out.InstitutionName == "ST ELSEWHERE GENERAL HOSPITAL"


def test_clean_descriptors_removes_the_patients_own_words():
    ds = header()
    ds.StudyDescription = "XR CHEST PA okafor follow-up 40338283"
    out = deid(options=(*OPTIONS, "clean_descriptors")).apply(ds).dataset
    assert "CHEST" in out.StudyDescription and "okafor" not in out.StudyDescription.lower()
    assert "40338283" not in out.StudyDescription


def test_a_dataset_without_patient_id_is_refused():
    ds = header()
    del ds.PatientID
    with pytest.raises(DeidError, match="no Patient ID"):
        deid().apply(ds)
