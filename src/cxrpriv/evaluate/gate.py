"""The release gate: turns the evaluate results (:mod:`.results`) of the chosen variant into a release
decision (:mod:`.decision`) by comparing four measurements against configured limits.

What is gated is the attacker *retrained on the anonymized films*: an attacker that adapts to the release is
what a real adversary would use, and a frozen verifier (the one the anonymizer trained against) predicts it
poorly (see ``shared/notes/anonymization.md``). The frozen verifier is reported, never gated on. A check whose
measurement is missing fails with a NaN value: what was not measured is never a pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from cxrpriv.config import ConfigError
from cxrpriv.evaluate.decision import Check, ReleaseDecision
from cxrpriv.evaluate.results import (
    CHOSEN,
    REFERENCE,
    AttackerRecord,
    find_variant,
    retrained_attackers,
    utility_drop,
    utility_record,
    worst_attacker,
    worst_linkage_p_at_1,
    worst_seed_auc,
)

# AUCs, P@1 and an AUC difference: each limit is a fraction.
_FRACTION_LIMITS = (
    "max_attacker_auc_mean",
    "max_attacker_auc_worst",
    "max_linkage_p_at_1",
    "max_utility_drop",
)


@dataclass(frozen=True)
class GateConfig:
    max_attacker_auc_mean: float = field(
        default=0.60,
        metadata={
            "help": "Highest allowed mean verification AUC (over seeds) of the strongest attacker retrained "
            "on the anonymized films. 0.5 is chance; the project's goal is an adaptive attacker near chance, "
            "and 0.60 leaves room for the seed-to-seed spread (0.03-0.08 AUC) of a small test set."
        },
    )
    max_attacker_auc_worst: float = field(
        default=0.65,
        metadata={
            "help": "Highest allowed AUC of any single seed of any retrained attacker family: the project's "
            "goal is that no seed exceeds 0.65, because a data holder cannot choose which training run the "
            "adversary gets; a good mean must not hide one attacker that works."
        },
    )
    max_utility_drop: float = field(
        default=0.03,
        metadata={
            "help": "Largest allowed drop of the frozen classifier's mean ROC AUC over the findings "
            "(original test films minus anonymized ones): the project's clinical-usefulness goal. 0.03 is "
            "about the gap between published CXR classifiers of different quality."
        },
    )
    max_linkage_p_at_1: float = field(
        default=0.05,
        metadata={
            "help": "Highest allowed precision at 1 of the retrieval linkage attack (anonymized film as "
            "query against the original films; worst seed of any retrained family): the share of published "
            "films whose nearest original film belongs to the same patient. It is a per-record "
            "re-identification rate, which the AUC limits do not bound. 0.05 allows at most 1 film in 20 to "
            "be linked at the first try; chance is (films per patient - 1) / (gallery size - 1), about 0.005 "
            "for a test set of some 450 films, 3 per patient, so 0.05 is still ten times chance."
        },
    )
    require_retrained: bool = field(
        default=True,
        metadata={
            "help": "Fail when no attacker was retrained on the anonymized films. Off: the attacker checks "
            "are left out when none was retrained (only for quick development runs: the decision then says "
            "nothing about an adaptive attacker)."
        },
    )

    def validate(self) -> None:
        for name in _FRACTION_LIMITS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name}: must be in [0, 1], got {value}")

    @classmethod
    def from_settings(cls, settings: Any) -> GateConfig:
        """The gate of any object with attributes of these field names (the stage's config); a field it
        lacks keeps its default."""
        names = [f.name for f in fields(cls)]
        gate = cls(**{name: getattr(settings, name) for name in names if hasattr(settings, name)})
        gate.validate()
        return gate

    def limits(self) -> dict[str, float]:
        """The settings as they go into the decision file."""
        return dict(asdict(self))


def decide(results: Mapping[str, Any], gate: GateConfig) -> ReleaseDecision:
    """Pass only if the chosen variant's strongest retrained attacker (mean and worst seed), its linkage
    P@1 and its utility drop are all within ``gate``'s limits."""
    if CHOSEN not in results:
        raise ValueError(f"results: missing key '{CHOSEN}' (which variant the decision is about)")
    chosen = str(results[CHOSEN])
    variant = find_variant(results, chosen) or {}
    checks = []
    if retrained_attackers(variant) or gate.require_retrained:
        checks += _attacker_checks(variant, gate)
    checks.append(_utility_check(results, chosen, gate))
    return ReleaseDecision.from_checks(chosen, checks, gate.limits())


def _attacker_checks(variant: Mapping[str, Any], gate: GateConfig) -> list[Check]:
    strongest = worst_attacker(variant)
    worst_auc, worst_auc_family = worst_seed_auc(variant)
    worst_p_at_1, worst_p_at_1_family = worst_linkage_p_at_1(variant)
    return [
        _check(
            "retrained attacker mean AUC",
            strongest.auc_mean if strongest else math.nan,
            gate.max_attacker_auc_mean,
            "mean verification AUC over seeds of the strongest attacker retrained on the anonymized films"
            + _which(strongest, with_seed=False)
            + "; 0.5 is chance",
        ),
        _check(
            "retrained attacker worst-seed AUC",
            worst_auc,
            gate.max_attacker_auc_worst,
            "the highest verification AUC of any seed of any retrained attacker" + _which(worst_auc_family),
        ),
        _check(
            "linkage attack P@1 (worst seed)",
            worst_p_at_1,
            gate.max_linkage_p_at_1,
            "share of anonymized films whose nearest original film is the same patient's, highest over "
            "seeds and retrained attackers" + _which(worst_p_at_1_family, with_seed=False),
        ),
    ]


def _utility_check(results: Mapping[str, Any], chosen: str, gate: GateConfig) -> Check:
    reference = utility_record(find_variant(results, str(results.get(REFERENCE))))
    labels = reference.get("labels", "labels unknown")
    return _check(
        "utility drop (classifier mean AUC)",
        utility_drop(results, chosen),
        gate.max_utility_drop,
        f"frozen classifier's mean AUC on the original test films ({results.get(REFERENCE)!s}) minus on the "
        f"anonymized ones, {labels} labels",
    )


def _check(name: str, value: float, limit: float, means: str) -> Check:
    # NaN <= limit is False: an unmeasured value fails.
    return Check(name, float(value), float(limit), bool(value <= limit), means)


def _which(attacker: AttackerRecord | None, with_seed: bool = True) -> str:
    if attacker is None:
        return " (none was retrained)"
    seed = f", seed {attacker.worst_seed}" if with_seed and attacker.worst_seed is not None else ""
    return f" ({attacker.family}: {attacker.record.get('attacker', 'no description')}{seed})"
