"""Identifying header content of the synthetic cohort: names, record numbers, sites, dates.

All of it is invented (names from short lists of common given and family names), but it is shaped like a
real PACS export's, so a de-identifier has real work to do: names, IDs, dates, accession numbers, physicians,
institutions and UIDs all appear and must all disappear.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

GIVEN_F = (
    "MARY",
    "PATRICIA",
    "LINDA",
    "BARBARA",
    "ELIZABETH",
    "JENNIFER",
    "MARIA",
    "SUSAN",
    "MARGARET",
    "DOROTHY",
    "LISA",
    "NANCY",
    "KAREN",
    "BETTY",
    "HELEN",
    "SANDRA",
    "DONNA",
    "CAROL",
    "RUTH",
    "SHARON",
    "ANA",
    "FATIMA",
    "MEI",
    "PRIYA",
    "SOFIA",
    "AMINA",
    "YUKI",
    "INGRID",
    "CHIARA",
    "LEILA",
)
GIVEN_M = (
    "JAMES",
    "JOHN",
    "ROBERT",
    "MICHAEL",
    "WILLIAM",
    "DAVID",
    "RICHARD",
    "CHARLES",
    "JOSEPH",
    "THOMAS",
    "CHRISTOPHER",
    "DANIEL",
    "PAUL",
    "MARK",
    "DONALD",
    "GEORGE",
    "KENNETH",
    "STEVEN",
    "EDWARD",
    "BRIAN",
    "JOSE",
    "AHMED",
    "WEI",
    "RAJ",
    "LUCA",
    "KOFI",
    "HIROSHI",
    "LARS",
    "OMAR",
    "MATEO",
)
FAMILY = (
    "SMITH",
    "JOHNSON",
    "WILLIAMS",
    "BROWN",
    "JONES",
    "GARCIA",
    "MILLER",
    "DAVIS",
    "RODRIGUEZ",
    "MARTINEZ",
    "HERNANDEZ",
    "LOPEZ",
    "GONZALEZ",
    "WILSON",
    "ANDERSON",
    "THOMAS",
    "TAYLOR",
    "MOORE",
    "JACKSON",
    "MARTIN",
    "LEE",
    "PEREZ",
    "THOMPSON",
    "WHITE",
    "HARRIS",
    "SANCHEZ",
    "CLARK",
    "RAMIREZ",
    "LEWIS",
    "ROBINSON",
    "NGUYEN",
    "KIM",
    "PATEL",
    "MUELLER",
    "ROSSI",
    "KOWALSKI",
    "OKAFOR",
    "TANAKA",
    "SILVA",
    "HANSEN",
)
PHYSICIANS = (
    "HOUSE^GREGORY^^DR",
    "GREY^MEREDITH^^DR",
    "ROSS^DOUGLAS^^DR",
    "CARTER^JOHN^^DR",
    "BAILEY^MIRANDA^^DR",
    "KOVAC^LUKA^^DR",
    "YANG^CRISTINA^^DR",
    "WILSON^JAMES^^DR",
)
OPERATORS = ("TECH^ALEX", "TECH^SAM", "TECH^JORDAN", "TECH^RILEY", "TECH^CASEY")


@dataclass(frozen=True)
class Site:
    institution: str
    address: str
    station: str
    modality: str
    manufacturer: str
    model: str
    bits_stored: int
    voi: str
    pixel_spacing_mm: float
    serial_number: str


SITES = (
    Site(
        "ST ELSEWHERE GENERAL HOSPITAL",
        "1 HOSPITAL ROAD, SPRINGFIELD",
        "CR_ROOM2",
        "CR",
        "FUJIFILM Corporation",
        "FCR CAPSULA XLII",
        10,
        "lut",
        0.15,
        "FCR48213",
    ),
    Site(
        "RIVERSIDE MEDICAL CENTER",
        "200 RIVER STREET, LAKEVILLE",
        "DXR1",
        "DX",
        "Carestream Health",
        "DRX-Evolution",
        12,
        "window",
        0.139,
        "DRX30577",
    ),
    Site(
        "LAKESIDE UNIVERSITY HOSPITAL",
        "45 CAMPUS DRIVE, EASTON",
        "XR_ED",
        "DX",
        "Siemens Healthineers",
        "Ysio Max",
        16,
        "window",
        0.148,
        "YSX11902",
    ),
    Site(
        "NORTHGATE COMMUNITY CLINIC",
        "9 NORTHGATE AVE, HILLCREST",
        "CR01",
        "CR",
        "Agfa",
        "CR 30-X",
        12,
        "none",
        0.1,
        "AGF70246",
    ),
)


@dataclass(frozen=True)
class Person:
    name: str
    patient_id: str
    birth_date: dt.date
    first_study: dt.date
    home_site: int


def sample_person(rng: np.random.Generator, sex: str, age_first: float) -> Person:
    given = GIVEN_M if sex == "M" else GIVEN_F
    name = f"{FAMILY[rng.integers(len(FAMILY))]}^{given[rng.integers(len(given))]}"
    if rng.random() < 0.3:
        name += f"^{'ABCDEFGHJKLMNPRSTW'[rng.integers(18)]}"  # a middle initial
    first_study = dt.date(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 8 * 365)))
    birth = first_study - dt.timedelta(days=int(age_first * 365.25))
    return Person(
        name=name,
        patient_id=f"{rng.integers(10_000_000, 99_999_999)}",
        birth_date=birth,
        first_study=first_study,
        home_site=int(rng.integers(len(SITES))),
    )


def study_time(rng: np.random.Generator) -> dt.time:
    seconds = int(rng.integers(7 * 3600, 22 * 3600))
    return dt.time(seconds // 3600, (seconds // 60) % 60, seconds % 60)
