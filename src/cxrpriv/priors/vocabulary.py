"""Finding vocabularies: how the labels of a re-read table map onto the 14 ChestX-ray14 findings.

A re-read table names its findings in its own words ("Pleural effusion", "Nodule/Mass", "Airspace opacity").
Each such *source label* maps to a :class:`Target`: one ChestX-ray14 finding, or a named *group* of them
("Nodule or mass" covers Nodule and Mass), or to nothing (``None``: known, but with no ChestX-ray14
counterpart, e.g. Fracture). A label that the vocabulary does not know at all is an error, so that a typo or
a new class cannot silently drop out of the numbers.

Semantics, used by every computation downstream:

* the re-read label of a target is positive when the reader called *any* source label mapped to it;
* the text-mined label of a target is positive when *any* of its member findings was mined.

A vocabulary file (YAML or JSON) extends or overrides :data:`DEFAULT_VOCABULARY`::

    groups:                       # group name -> member ChestX-ray14 findings
      Airspace opacity: [Consolidation, Pneumonia, Infiltration, Edema, Atelectasis]
    labels:                       # source label -> a finding, a group, or null (known, not mapped)
      Nodule/Mass: Nodule or mass
      Fracture: null

The 14 ChestX-ray14 names map to themselves unless the file says otherwise (mapping "Nodule" and "Mass" to
"Nodule or mass" measures a synthetic table at the granularity of the Google re-read, for comparison).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from cxrpriv.priors import PriorsInputError
from cxrpriv.synth.stats import FINDINGS

FINDING_INDEX = {name: i for i, name in enumerate(FINDINGS)}

DEFAULT_GROUPS: dict[str, tuple[str, ...]] = {
    "Nodule or mass": ("Nodule", "Mass"),
    # The five ChestX-ray14 findings whose radiographic sign is increased parenchymal density; the same
    # grouping calibrated the synthetic cohort's noise (scripts/derive_synth_stats.py): numbers compare.
    "Airspace opacity": ("Consolidation", "Pneumonia", "Infiltration", "Edema", "Atelectasis"),
}

DEFAULT_LABELS: dict[str, str | None] = {
    # Google 2019 re-read of ChestX-ray14 (Majkowska et al.)
    "Nodule or mass": "Nodule or mass",
    "Airspace opacity": "Airspace opacity",
    "Fracture": None,
    # VinDr-CXR
    "Pleural effusion": "Effusion",
    "Pleural thickening": "Pleural_Thickening",
    "Nodule/Mass": "Nodule or mass",
    "Pulmonary fibrosis": "Fibrosis",
    # ILD is an interstitial pattern that also covers non-fibrotic disease; VinDr labels fibrosis apart.
    "ILD": None,
    # VinDr labels consolidation, infiltration and atelectasis separately; its residual "Lung Opacity" class
    # is what none of them covers, so it maps to no ChestX-ray14 finding.
    "Lung Opacity": None,
    "Aortic enlargement": None,
    "Calcification": None,
    "Other lesion": None,
}


@dataclass(frozen=True, order=True)
class Target:
    """What a re-read label measures: one ChestX-ray14 finding or a named group of them."""

    name: str
    members: tuple[str, ...]  # ChestX-ray14 findings, in canonical order

    @property
    def is_group(self) -> bool:
        return len(self.members) > 1 or self.members[0] != self.name

    @property
    def member_columns(self) -> list[int]:
        return [FINDING_INDEX[m] for m in self.members]

    def sort_key(self) -> tuple[int, int, str]:
        # Canonical order: by first member finding, single findings before the groups that contain them.
        return (FINDING_INDEX[self.members[0]], int(self.is_group), self.name)


@dataclass(frozen=True)
class Vocabulary:
    groups: Mapping[str, tuple[str, ...]]
    labels: Mapping[str, str | None]
    source: str = "built-in"

    def __post_init__(self) -> None:
        for name, members in self.groups.items():
            if name in FINDING_INDEX:
                raise PriorsInputError(f"vocabulary ({self.source}): group {name!r} has a ChestX-ray14 name")
            unknown = [m for m in members if m not in FINDING_INDEX]
            if unknown or not members:
                raise PriorsInputError(
                    f"vocabulary ({self.source}): group {name!r} needs ChestX-ray14 findings as members, "
                    f"got {list(members)}"
                )
        for label, target in self.labels.items():
            if target is not None and target not in FINDING_INDEX and target not in self.groups:
                raise PriorsInputError(
                    f"vocabulary ({self.source}): label {label!r} maps to {target!r}, which is neither a "
                    f"ChestX-ray14 finding nor a group ({sorted(self.groups)})"
                )

    def target(self, name: str) -> Target:
        members = self.groups.get(name, (name,))
        return Target(name, tuple(sorted(members, key=FINDING_INDEX.__getitem__)))

    def resolve(self, source_labels: Iterable[str], where: str) -> tuple[dict[str, Target], tuple[str, ...]]:
        """Map a table's labels to targets: ``({label: target}, unmapped labels)``; unknown ones raise."""
        mapped: dict[str, Target] = {}
        unmapped: list[str] = []
        unknown: list[str] = []
        for label in source_labels:
            if label in self.labels:
                target = self.labels[label]
            elif label in FINDING_INDEX:
                target = label
            else:
                unknown.append(label)
                continue
            if target is None:
                unmapped.append(label)
            else:
                mapped[label] = self.target(target)
        if unknown:
            raise PriorsInputError(
                f"{where}: unknown finding(s) {unknown}: add them to the vocabulary file (map to a "
                "ChestX-ray14 finding or group, or to null to leave them out knowingly)"
            )
        return mapped, tuple(unmapped)

    def as_json(self) -> dict[str, Any]:
        return {
            "groups": {k: list(v) for k, v in sorted(self.groups.items())},
            "labels": dict(sorted(self.labels.items())),
        }


DEFAULT_VOCABULARY = Vocabulary(MappingProxyType(DEFAULT_GROUPS), MappingProxyType(DEFAULT_LABELS))


def load_vocabulary(path: Path | None) -> Vocabulary:
    """The default vocabulary, extended and overridden by a YAML or JSON file when one is given."""
    if path is None:
        return DEFAULT_VOCABULARY
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise PriorsInputError(f"vocabulary file {path.name}: cannot read it: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"groups", "labels"}:
        raise PriorsInputError(
            f"vocabulary file {path.name}: expected a mapping with 'groups' and/or 'labels'"
        )
    groups = {**DEFAULT_GROUPS, **{str(k): tuple(v) for k, v in (data.get("groups") or {}).items()}}
    labels = {
        **DEFAULT_LABELS,
        **{str(k): (None if v is None else str(v)) for k, v in (data.get("labels") or {}).items()},
    }
    return Vocabulary(groups, labels, source=path.name)
