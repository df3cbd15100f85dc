"""The evaluate stage's results: the one metrics dict that ``cxrpriv evaluate`` writes as
``metrics/evaluate.json`` and that the release gate (:mod:`.gate`), the plots (:mod:`.report`) and the HTML
report (:mod:`.html`) read. This module owns the format: the key names, how the derived per-seed numbers are
computed (:func:`summarize_seeds`), :func:`validate_results`, and the accessors everything else goes through.

::

    {
      "reference": "none",          # the no-anonymization variant; utility drops are measured against it
      "chosen": "learned",          # the variant the release decision is about
      "test": {"images": int, "patients": int, "pairs": int, "positive_pairs": int},
      "variants": [
        {"name": "learned", "method": "learned" | "dp_pix" | "random_warp" | "none",
         "settings": {"mu": 0.1, "mu_pixels": 3.2, ...},          # the method's settings, any scalars
         "privacy": {
           "frozen_verifier": {"attacker": "<description>",
                               "auc": f, "auc_low": f, "auc_high": f, "p_at_1": f, "map_at_r": f},
           "retrained": {               # one entry per attacker family retrained on anonymized films
             "metric": {"attacker": "<description>", "train_images": int, "train_pairs": int,
                        "seeds": [1, 2, 3],
                        "runs": [{"seed": 1, "auc": f, "auc_low": f, "auc_high": f,
                                  "p_at_1": f, "map_at_r": f}, ...],
                        "auc_mean": f, "auc_sd": f, "auc_worst": f, "worst_seed": int,
                        "p_at_1_mean": f, "p_at_1_worst": f, "map_at_r_mean": f},
             "siamese": {...the same...}
           }
         },
         "utility": {
           "frozen_classifier": {"labels": "clean (answer key)" | "text-mined",
                                 "mean_auc": f, "mean_auc_low": f, "mean_auc_high": f,
                                 "per_finding": {"Atelectasis": {"auc": f, "low": f, "high": f}, ...}},
           "retrained_classifier": {...the same...}              # optional
         }
        },
        ...
      ]
    }

``auc`` is the verification ROC AUC of (anonymized test film, original test film of the same or another
patient) pairs, ``auc_low``/``auc_high`` its patient-bootstrap 95% interval; ``p_at_1`` and ``map_at_r`` are
the retrieval linkage attack (anonymized queries against a gallery of the original films). "Worst" means best
for the attacker: the highest AUC or P@1 over seeds. A number that could not be measured (no positive pair,
no positive film of a finding) is ``null``; every reader turns it into NaN, and the gate fails on it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

REFERENCE, CHOSEN, TEST, VARIANTS = "reference", "chosen", "test", "variants"
NAME, METHOD, SETTINGS, PRIVACY, UTILITY = "name", "method", "settings", "privacy", "utility"
FROZEN_VERIFIER, RETRAINED = "frozen_verifier", "retrained"
FROZEN_CLASSIFIER, RETRAINED_CLASSIFIER = "frozen_classifier", "retrained_classifier"
METHODS: tuple[str, ...] = ("learned", "dp_pix", "random_warp", "none")

TEST_KEYS: tuple[str, ...] = ("images", "patients", "pairs", "positive_pairs")
ATTACK_KEYS: tuple[str, ...] = ("auc", "auc_low", "auc_high", "p_at_1", "map_at_r")
SEED_SUMMARY_KEYS: tuple[str, ...] = (
    "auc_mean",
    "auc_sd",
    "auc_worst",
    "worst_seed",
    "p_at_1_mean",
    "p_at_1_worst",
    "map_at_r_mean",
)
RETRAINED_KEYS: tuple[str, ...] = (
    "attacker",
    "train_images",
    "train_pairs",
    "seeds",
    "runs",
    *SEED_SUMMARY_KEYS,
)
UTILITY_KEYS: tuple[str, ...] = ("labels", "mean_auc", "mean_auc_low", "mean_auc_high", "per_finding")
FINDING_KEYS: tuple[str, ...] = ("auc", "low", "high")


class AttackerRecord(NamedTuple):
    """One retrained attacker family of a variant: unpacks as ``(family, record)``."""

    family: str
    record: Mapping[str, Any]

    @property
    def auc_mean(self) -> float:
        return number(self.record.get("auc_mean"))

    @property
    def auc_sd(self) -> float:
        return number(self.record.get("auc_sd"))

    @property
    def auc_worst(self) -> float:
        return number(self.record.get("auc_worst"))

    @property
    def worst_seed(self) -> int | None:
        seed = self.record.get("worst_seed")
        return None if seed is None else int(seed)

    @property
    def p_at_1_worst(self) -> float:
        return number(self.record.get("p_at_1_worst"))


def number(value: Any) -> float:
    """A measurement as a float; ``None`` (not measured) and anything non-numeric become NaN."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


# --- computing the derived numbers (the stage calls this, so every run summarizes seeds the same way) ---


def summarize_seeds(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The per-seed summary of one retrained family from its runs: mean, sample s.d. (0 for a single seed)
    and worst (highest) AUC with its seed, mean and worst P@1, mean mAP@R. A run whose AUC was not measured
    makes the mean and the worst unmeasured too (``None``): an unknown seed could be the worst one."""
    aucs = [number(r.get("auc")) for r in runs]
    p_at_1 = [number(r.get("p_at_1")) for r in runs]
    maps = [number(r.get("map_at_r")) for r in runs]
    measured = bool(runs) and all(math.isfinite(a) for a in aucs)
    worst_index = max(range(len(aucs)), key=aucs.__getitem__) if measured else None
    return {
        "auc_mean": _mean(aucs),
        "auc_sd": _sd(aucs),
        "auc_worst": aucs[worst_index] if worst_index is not None else None,
        "worst_seed": int(runs[worst_index]["seed"]) if worst_index is not None else None,
        "p_at_1_mean": _mean(p_at_1),
        "p_at_1_worst": max(p_at_1) if p_at_1 and all(map(math.isfinite, p_at_1)) else None,
        "map_at_r_mean": _mean(maps),
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values and all(map(math.isfinite, values)) else None


def _sd(values: Sequence[float]) -> float | None:
    mean = _mean(values)
    if mean is None:
        return None
    if len(values) == 1:
        return 0.0
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


# --- validation ---


def validate_results(results: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first missing key (as a dotted path) or impossible value; measured
    numbers may be ``null`` (not measured), everything else must be there."""
    _require(results, (REFERENCE, CHOSEN, TEST, VARIANTS), "results")
    _require(results[TEST], TEST_KEYS, TEST)
    variants = results[VARIANTS]
    if not isinstance(variants, list) or not variants:
        raise ValueError("results.variants: must be a non-empty list")
    names = [_validate_variant(v, f"variants[{i}]") for i, v in enumerate(variants)]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"results.variants: duplicated variant names {duplicated}")
    for key in (REFERENCE, CHOSEN):
        if results[key] not in names:
            raise ValueError(f"results.{key}: {results[key]!r} is not a variant (variants: {names})")


def _validate_variant(variant: Mapping[str, Any], where: str) -> str:
    _require(variant, (NAME, METHOD, SETTINGS, PRIVACY, UTILITY), where)
    if variant[METHOD] not in METHODS:
        raise ValueError(f"{where}.method: {variant[METHOD]!r} is not one of {list(METHODS)}")
    where = f"variants[{variant[NAME]!r}]"
    privacy, utility = variant[PRIVACY], variant[UTILITY]
    _require(privacy, (FROZEN_VERIFIER, RETRAINED), f"{where}.privacy")
    _require(privacy[FROZEN_VERIFIER], ("attacker", *ATTACK_KEYS), f"{where}.privacy.frozen_verifier")
    _require(privacy[RETRAINED], (), f"{where}.privacy.retrained")
    for family, record in privacy[RETRAINED].items():
        at = f"{where}.privacy.retrained.{family}"
        _require(record, RETRAINED_KEYS, at)
        if not isinstance(record["runs"], list):
            raise ValueError(f"{at}.runs: expected a list of runs, got {type(record['runs']).__name__}")
        for i, run in enumerate(record["runs"]):
            _require(run, ("seed", *ATTACK_KEYS), f"{at}.runs[{i}]")
    _require(utility, (FROZEN_CLASSIFIER,), f"{where}.utility")
    for source in (FROZEN_CLASSIFIER, RETRAINED_CLASSIFIER):
        if source in utility:
            _require(utility[source], UTILITY_KEYS, f"{where}.utility.{source}")
            _require(utility[source]["per_finding"], (), f"{where}.utility.{source}.per_finding")
            for finding, entry in utility[source]["per_finding"].items():
                _require(entry, FINDING_KEYS, f"{where}.utility.{source}.per_finding.{finding}")
    return str(variant[NAME])


def _require(mapping: Any, keys: Sequence[str], where: str) -> None:
    if not isinstance(mapping, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(mapping).__name__}")
    for key in keys:
        if key not in mapping:
            raise ValueError(f"{where}: missing key '{key}'")


# --- reading and writing ---


def write_results(results: Mapping[str, Any], path: Path) -> Path:
    """Validate and write ``results`` as JSON; NaN and infinities become ``null`` (strict JSON)."""
    validate_results(results)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(results), indent=1) + "\n")
    return path


def read_results(path: Path) -> dict[str, Any]:
    """The results in ``path``, validated (``ValueError`` naming the file and the missing key)."""
    try:
        results = json.loads(Path(path).read_text())
        validate_results(results)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not evaluate results ({exc})") from exc
    return results


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# --- accessors ---


def variant_names(results: Mapping[str, Any]) -> list[str]:
    return [str(v[NAME]) for v in results.get(VARIANTS, [])]


def find_variant(results: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The variant called ``name``, or ``None`` when the results have none."""
    return next((v for v in results.get(VARIANTS, []) if v.get(NAME) == name), None)


def get_variant(results: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    variant = find_variant(results, name)
    if variant is None:
        raise ValueError(f"results have no variant {name!r} (variants: {variant_names(results)})")
    return variant


def retrained_attackers(variant: Mapping[str, Any]) -> list[AttackerRecord]:
    """The variant's retrained attacker families, in the order the stage wrote them."""
    retrained = variant.get(PRIVACY, {}).get(RETRAINED) or {}
    return [AttackerRecord(str(family), record) for family, record in retrained.items()]


def frozen_verifier(variant: Mapping[str, Any]) -> Mapping[str, Any]:
    """The frozen verifier's record (empty when not measured)."""
    return variant.get(PRIVACY, {}).get(FROZEN_VERIFIER) or {}


def utility_record(variant: Mapping[str, Any] | None, source: str = FROZEN_CLASSIFIER) -> Mapping[str, Any]:
    """The variant's utility record from ``source`` (empty when absent)."""
    if variant is None:
        return {}
    return variant.get(UTILITY, {}).get(source) or {}


def worst_attacker(variant: Mapping[str, Any]) -> AttackerRecord | None:
    """The retrained family with the highest mean AUC (``None`` when no family was retrained). A family
    whose mean was not measured ranks above every measured one: what was not measured cannot be ruled out
    as the strongest attacker."""
    attackers = retrained_attackers(variant)
    if not attackers:
        return None
    return max(attackers, key=lambda a: math.inf if math.isnan(a.auc_mean) else a.auc_mean)


def worst_seed_auc(variant: Mapping[str, Any]) -> tuple[float, AttackerRecord | None]:
    """The highest AUC of any seed of any retrained family and the family it came from (NaN if any family's
    worst seed was not measured, or none was retrained)."""
    return _worst_over_families(variant, lambda a: a.auc_worst)


def worst_linkage_p_at_1(variant: Mapping[str, Any]) -> tuple[float, AttackerRecord | None]:
    """The highest linkage P@1 of any seed of any retrained family, and that family (NaN as above)."""
    return _worst_over_families(variant, lambda a: a.p_at_1_worst)


def _worst_over_families(variant: Mapping[str, Any], value: Any) -> tuple[float, AttackerRecord | None]:
    attackers = retrained_attackers(variant)
    if not attackers:
        return math.nan, None
    worst = max(attackers, key=lambda a: math.inf if math.isnan(value(a)) else value(a))
    return value(worst), worst


def utility_drop(results: Mapping[str, Any], variant_name: str, source: str = FROZEN_CLASSIFIER) -> float:
    """The reference variant's mean AUC minus ``variant_name``'s, both from ``source`` (NaN if either is
    not measured)."""
    reference = utility_record(find_variant(results, str(results.get(REFERENCE))), source)
    anonymized = utility_record(find_variant(results, variant_name), source)
    return number(reference.get("mean_auc")) - number(anonymized.get("mean_auc"))


def settings_text(settings: Mapping[str, Any]) -> str:
    """``mu=0.1, mu_pixels=3.2``: a variant's settings on one line (``-`` when it has none)."""
    return ", ".join(f"{k}={_short(v)}" for k, v in settings.items()) or "-"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# --- flat views: report tables and metric logging ---

SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("name", "variant"),
    ("role", "role"),
    ("method", "method"),
    ("settings", "settings"),
    ("frozen_verifier_auc", "frozen verifier AUC"),
    ("attacker", "strongest retrained attacker"),
    ("attacker_auc_mean", "its mean AUC"),
    ("attacker_auc_sd", "its AUC s.d."),
    ("attacker_auc_worst", "its worst-seed AUC"),
    ("attacker_worst_seed", "worst seed"),
    ("linkage_p_at_1_worst", "linkage P@1 (worst seed)"),
    ("utility_mean_auc", "classifier mean AUC"),
    ("utility_drop", "utility drop"),
)
"""The keys of a :func:`summary_rows` row and their column headers, in table order."""


def summary_rows(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per variant (keys: :data:`SUMMARY_COLUMNS`); numbers are floats, NaN when not measured."""
    return [_summary_row(results, variant) for variant in results.get(VARIANTS, [])]


def _summary_row(results: Mapping[str, Any], variant: Mapping[str, Any]) -> dict[str, Any]:
    name = str(variant[NAME])
    worst = worst_attacker(variant)
    roles = [role for role, key in (("chosen", CHOSEN), ("reference", REFERENCE)) if results.get(key) == name]
    return {
        "name": name,
        "role": ", ".join(roles),
        "method": str(variant.get(METHOD, "")),
        "settings": settings_text(variant.get(SETTINGS) or {}),
        "frozen_verifier_auc": number(frozen_verifier(variant).get("auc")),
        "attacker": worst.family if worst else "none retrained",
        "attacker_auc_mean": worst.auc_mean if worst else math.nan,
        "attacker_auc_sd": worst.auc_sd if worst else math.nan,
        "attacker_auc_worst": worst.auc_worst if worst else math.nan,
        "attacker_worst_seed": worst.worst_seed if worst else None,
        "linkage_p_at_1_worst": worst_linkage_p_at_1(variant)[0],
        "utility_mean_auc": number(utility_record(variant).get("mean_auc")),
        "utility_drop": utility_drop(results, name),
    }


# The short headline file beside the stage's metrics file (metrics/headline.json), so `dvc metrics show`
# reads at a glance; metrics/evaluate.json keeps everything.
HEADLINE_FILE = "headline.json"


def headline_metrics(results: Mapping[str, Any], gate_passed: bool) -> dict[str, Any]:
    """The chosen variant's headline numbers (``null`` where not measured) and the release gate's verdict."""
    chosen = get_variant(results, str(results[CHOSEN]))
    row = _summary_row(results, chosen)
    reference = find_variant(results, str(results.get(REFERENCE)))
    numbers = {
        "attacker_auc_worst": row["attacker_auc_worst"],
        "attacker_auc_mean": row["attacker_auc_mean"],
        "frozen_verifier_auc": row["frozen_verifier_auc"],
        "linkage_p_at_1_worst": row["linkage_p_at_1_worst"],
        "classifier_auc_original": number(utility_record(reference).get("mean_auc")),
        "classifier_auc_anonymized": row["utility_mean_auc"],
        "utility_drop": row["utility_drop"],
    }
    return {
        "variant": row["name"],
        **{k: (float(v) if math.isfinite(v) else None) for k, v in numbers.items()},
        "gate_passed": bool(gate_passed),
    }


def flat_metrics(results: Mapping[str, Any]) -> dict[str, float]:
    """Every finite number of the results under a dotted name (``learned.retrained.metric.auc_mean``,
    ``learned.retrained.metric.seed_2.auc``, ``learned.frozen_classifier.mean_auc``,
    ``learned.utility_drop``, ``test.pairs``), for MLflow and KFP metrics; characters those reject become
    ``_``."""
    flat: dict[str, Any] = {f"test.{k}": v for k, v in (results.get(TEST) or {}).items()}
    for variant in results.get(VARIANTS, []):
        prefix = _metric_name(str(variant[NAME]))
        flat.update(_prefixed(f"{prefix}.frozen_verifier", frozen_verifier(variant)))
        for family, record in retrained_attackers(variant):
            at = f"{prefix}.retrained.{_metric_name(family)}"
            flat.update(_prefixed(at, record))
            for run in record.get("runs", []):
                flat.update(_prefixed(f"{at}.seed_{run.get('seed')}", run, skip=("seed",)))
        for source in (FROZEN_CLASSIFIER, RETRAINED_CLASSIFIER):
            record = utility_record(variant, source)
            flat.update(_prefixed(f"{prefix}.{source}", record))
            for finding, entry in (record.get("per_finding") or {}).items():
                flat.update(_prefixed(f"{prefix}.{source}.{_metric_name(finding)}", entry))
        flat[f"{prefix}.utility_drop"] = utility_drop(results, str(variant[NAME]))
    return {k: float(v) for k, v in flat.items() if math.isfinite(number(v))}


def _prefixed(prefix: str, record: Mapping[str, Any], skip: Sequence[str] = ()) -> dict[str, Any]:
    # Only the record's own scalars: nested runs and findings get their own names above.
    return {
        f"{prefix}.{k}": v for k, v in record.items() if k not in skip and not isinstance(v, Mapping | list)
    }


def _metric_name(part: str) -> str:
    # MLflow accepts letters, digits, '_', '-', '.', ' ', ':' and '/' in metric names; a '.' inside a part
    # would read as a level, so it is replaced too.
    return re.sub(r"[^A-Za-z0-9_\- ]", "_", part)
