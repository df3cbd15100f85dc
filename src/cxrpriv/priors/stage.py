"""The ``priors`` stage as a pure function: parsed tables and a config in, the priors document out.

:func:`compute_priors` reads no file and logs nothing to MLflow (:mod:`cxrpriv.priors.run` does). Its
:attr:`PriorsResult.document` is written as ``priors.json``, which the classifier stage reads.

``priors.json`` (schema ``cxrpriv.priors/1``; every probability is a float in [0, 1] or null, every
interval ``ci`` a ``[low, high]`` pair at ``config.confidence`` or null; no NaN)::

    schema: "cxrpriv.priors/1"
    findings_order: [14 ChestX-ray14 findings]           # the order of every per-finding list
    config: {PriorsConfig values}
    findings:                                            # what the classifier reads, one per finding
      <finding>:
        p_true_given_mined_pos: float | null             # P(true=1 | text-mined=1), the value to use
        p_true_given_mined_neg: float | null             # P(true=1 | text-mined=0), the value to use
        status: measured | measured_as_group | partial_fallback | fallback | unavailable
        value_source: {p_true_given_mined_pos: subset | transfer | null, p_true_given_mined_neg: ...}
        flags: [too_few_mined_positive, too_few_mined_negative, too_few_true_positive,
                too_few_true_negative, no_labels_table, no_measurement, no_pooled_rates, no_value,
                own_rates_inconsistent_with_prevalence, transfer_out_of_range]
        measured_on: {table, target, members, truth} | null   # the re-read table and target behind it
        subset:                                          # the finding's 2x2 on the re-read images, or null
          counts: {tp, fp, fn, tn, n}                    # mined finding vs re-read label of measured_on
          p_true_given_mined_pos: {value, k, n, ci}      # tp / (tp + fp)
          p_true_given_mined_neg: {value, k, n, ci}      # fn / (fn + tn)
          mined_sensitivity: {value, k, n, ci}           # tp / (tp + fn)
          mined_false_positive_rate: {value, k, n, ci}   # fp / (fp + tn)
          flags: [...]
        mined_sensitivity: {value, source: measured | measured_group | pooled} | null
        mined_false_positive_rate: {value, source: measured | pooled} | null
        transfer: {reference: labels_table | subset, mined_prevalence, implied_true_prevalence, in_range,
                   p_true_given_mined_pos, p_true_given_mined_neg} | null   # values null if not in_range
    pooled: {mined_sensitivity: {value, k, n, ci}, mined_sensitivity_targets: ["<table>/<target>", ...],
             fpr_to_mined_prevalence_ratio, fpr_ratio_findings: [...]}     # what the fallback uses
    tables:                                              # one per re-read table, in input order
      - name, layout, sha256, n_images, n_readers, readers, readings_per_image: {min, mean, max},
        duplicates_dropped, unmapped_labels, targets: [{name, members}], truth, flags,
        text_mined: {source: labels_table | embedded | null, n_matched, n_unmatched_dropped,
                     embedded_disagreements}
        noise_rates: {<target>: {members, counts, p_true_given_mined_pos, p_true_given_mined_neg,
                                 mined_sensitivity, mined_false_positive_rate, flags}}
        majority_vote: {<target>: {positive, ties}}                        # multi-reader tables
        reader_models: {<target>: {method: dawid_skene, prevalence, map_positive_fraction, iterations,
                                   converged, log_likelihood, flags,
                                   readers: {<reader>: {sensitivity, specificity, n_read,
                                                        positive_weight, corroborated_positive,
                                                        corroborated_negative, flags}}}}
          # reader flags: too_few_images, sensitivity_not_identified, specificity_not_identified: fewer
          # than min_cases posterior-weighted images where another reader made the same call, or less than
          # half of the reader's posterior weight on such images
        kappa: {<target>: {fleiss_kappa, n_images, flags}}
        comorbidity: {findings, n_images, alpha, matrix, counts, pair_counts}  # on the table's truth
    comorbidity: {... as above, source: {table, labels}}   # the table covering most findings, cleanest
    comorbidity_text_mined: {... as above} | null          # the full labels table, for reference
    provenance: {labels: {sha256, n_images, duplicates_dropped} | null,
                 rereads: [{name, layout, sha256}], vocabulary_sha256}

Which value the classifier gets (``findings.<f>.p_*``):

* **measured** (a re-read target is this finding): with ``prior_basis: subset``, the 2x2 conditional on
  the re-read images, when at least ``min_cases`` images are behind it (text-mined positives for ``pos``,
  negatives for ``neg``); with ``prior_basis: labels_prevalence``, the transfer (below).
* **measured_as_group** (the finding is a member of a re-read group, e.g. Nodule of "Nodule or mass"): the
  re-reader did not say which member, so the member's conditionals on the subset mix in the other members'
  positives. The value is the transfer with the group's sensitivity and the member's own false-positive
  rate (text-mined member on group-negative images), the same assumption that calibrated the synthetic
  cohort (``scripts/derive_synth_stats.py``).
* **fallback** / **partial_fallback** (too few cases for both / one of the two values, or no re-read
  target covers the finding): the transfer, using the finding's
  own sensitivity and false-positive rate where at least ``min_cases`` true positives (negatives) are behind
  them (for the false-positive rate, also ``min_cases`` text-mined positives: its events are rare), and the
  pooled ones otherwise: the pooled sensitivity of all measured targets, and a false-positive
  rate of ``ratio * m``, where the ratio of false-positive rate to text-mined prevalence is pooled over the
  measured findings (a constant rate would exceed the prevalence of rare findings).
  If the finding's own rates contradict its text-mined prevalence (no true prevalence in [0, 1] fits them,
  which a small subset can produce), the pooled rates are used instead (flag
  ``own_rates_inconsistent_with_prevalence``).
* **unavailable**: nothing to compute it from (no text-mined labels for any re-read image); null.

The *transfer* takes the text-mined prevalence m (of the labels table, or of the re-read subset when there
is none), inverts m = s p + f (1 - p) for the true prevalence p, and returns s p / m and (1 - s) p / (1 - m)
(:func:`cxrpriv.priors.noise_rates.at_mined_prevalence`). Transferred values carry no interval.

Truth of a table: ``adjudicated`` (one adjudicated reading), ``single_reader``, ``dawid_skene`` (posterior
>= 0.5, when ``truth: dawid_skene`` and at least 3 readers read most images), ``majority``, or ``none``
for a table without readings (flagged ``no_readings``: a small cohort may have no re-read image; the stage
then reports nothing from that table rather than stopping a pipeline).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cxrpriv.config import config_to_dict
from cxrpriv.priors import PriorsInputError
from cxrpriv.priors.comorbidity import Comorbidity, conditional_cooccurrence
from cxrpriv.priors.config import PriorsConfig
from cxrpriv.priors.noise_rates import TwoByTwo, at_mined_prevalence, noise_rate_entry, proportion
from cxrpriv.priors.readers import (
    MIN_READERS_FOR_DAWID_SKENE,
    binary_counts,
    dawid_skene,
    fleiss_kappa,
    majority_vote,
)
from cxrpriv.priors.tables import MinedLabels, RereadTable, format_examples
from cxrpriv.priors.vocabulary import Target, Vocabulary
from cxrpriv.synth.stats import FINDINGS

SCHEMA = "cxrpriv.priors/1"
# How trustworthy a table's truth is, for choosing the comorbidity matrix.
TRUTH_RANK = {"dawid_skene": 2, "adjudicated": 2, "majority": 1, "single_reader": 0, "none": -1}


@dataclass
class TableAnalysis:
    table: RereadTable
    truth_method: str
    truth: np.ndarray  # (n_images, n_targets) uint8
    flags: list[str] = field(default_factory=list)
    mined: MinedLabels | None = None
    mined_rows: np.ndarray | None = None  # row in `mined` of each re-read image, -1 if dropped
    text_mined: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, dict[str, Any]] = field(default_factory=dict)
    majority: dict[str, dict[str, Any]] = field(default_factory=dict)
    reader_models: dict[str, dict[str, Any]] = field(default_factory=dict)
    kappa: dict[str, dict[str, Any]] = field(default_factory=dict)
    comorbidity: Comorbidity | None = None


@dataclass(frozen=True)
class PriorsResult:
    document: dict[str, Any]  # priors.json
    metrics: dict[str, Any]  # a small summary for DVC and MLflow

    def frames(self) -> dict[str, pd.DataFrame]:
        """The document's tables as data frames (CSV artifacts)."""
        return document_frames(self.document)


def compute_priors(
    config: PriorsConfig, mined: MinedLabels | None, tables: Sequence[RereadTable], vocabulary: Vocabulary
) -> PriorsResult:
    """Noise rates, reader models, agreement and comorbidity from parsed inputs (see the module docstring)."""
    if not tables:
        raise PriorsInputError("no re-read table given: the priors need at least one")
    names = [t.name for t in tables]
    if len(set(names)) != len(names):
        raise PriorsInputError(f"re-read table names must be unique, got {names}")
    analyses = [_analyse_table(config, table, mined) for table in tables]
    findings, pooled = _findings_block(config, analyses, mined)
    chosen = _choose_comorbidity(analyses)
    document = {
        "schema": SCHEMA,
        "findings_order": list(FINDINGS),
        "config": config_to_dict(config),
        "findings": findings,
        "pooled": pooled,
        "tables": [_table_json(a) for a in analyses],
        "comorbidity": None
        if chosen is None
        else {
            **chosen.comorbidity.as_json(),  # type: ignore[union-attr]
            "source": {"table": chosen.table.name, "labels": chosen.truth_method},
        },
        "comorbidity_text_mined": None
        if mined is None
        else conditional_cooccurrence(mined.values, FINDINGS, config.comorbidity_alpha).as_json(),
        "provenance": {
            "labels": None
            if mined is None
            else {
                "sha256": mined.sha256,
                "n_images": len(mined.image_ids),
                "duplicates_dropped": mined.duplicates_dropped,
            },
            "rereads": [{"name": t.name, "layout": t.layout, "sha256": t.sha256} for t in tables],
            "vocabulary_sha256": hashlib.sha256(
                json.dumps(vocabulary.as_json(), sort_keys=True).encode()
            ).hexdigest()[:16],
        },
    }
    document = json_safe(document)
    return PriorsResult(document, _metrics(document))


# ------------------------------------------------------------------------------------------ per table


def _analyse_table(config: PriorsConfig, table: RereadTable, mined: MinedLabels | None) -> TableAnalysis:
    n_readers = len(table.reader_ids)
    per_image = table.readings_per_image()
    targets = table.targets
    if table.n_images == 0:
        empty = np.zeros((0, len(targets)), dtype=np.uint8)
        return TableAnalysis(
            table,
            "none",
            empty,
            flags=["no_readings"],
            text_mined={
                "source": None,
                "n_matched": 0,
                "n_unmatched_dropped": 0,
                "embedded_disagreements": None,
            },
        )
    if n_readers == 1:
        method = "adjudicated" if table.layout == "adjudicated" else "single_reader"
        analysis = TableAnalysis(table, method, table.readings[:, 0, :].astype(np.uint8))
    else:
        analysis = _multi_reader(config, table, per_image)
    _attach_mined(config, analysis, mined)
    if analysis.mined is not None:
        rows = analysis.mined_rows
        assert rows is not None
        keep = rows >= 0
        for t, target in enumerate(targets):
            counts = TwoByTwo.from_labels(
                analysis.mined.target_labels(target, rows[keep]), analysis.truth[keep, t]
            )
            entry = noise_rate_entry(counts, config.min_cases, config.confidence)
            analysis.noise[target.name] = {"members": list(target.members), **entry}
    analysis.comorbidity = conditional_cooccurrence(
        analysis.truth, tuple(t.name for t in targets), config.comorbidity_alpha
    )
    return analysis


def _multi_reader(config: PriorsConfig, table: RereadTable, per_image: np.ndarray) -> TableAnalysis:
    flags: list[str] = []
    n_readers = len(table.reader_ids)
    # Dawid-Skene needs three readings of an image to tell a reader's error from the truth.
    enough = MIN_READERS_FOR_DAWID_SKENE
    ds_ok = n_readers >= enough and np.mean(per_image >= enough) >= 0.5
    use_ds = ds_ok and config.truth == "dawid_skene"
    if config.truth == "dawid_skene" and not ds_ok:
        flags.append("majority_vote_used_fewer_than_3_readers")
    truth = np.zeros((table.n_images, len(table.targets)), dtype=np.uint8)
    majority: dict[str, dict[str, Any]] = {}
    models: dict[str, dict[str, Any]] = {}
    kappa: dict[str, dict[str, Any]] = {}
    for t, target in enumerate(table.targets):
        readings = table.readings[:, :, t]
        labels, ties = majority_vote(readings, config.majority_tie)
        majority[target.name] = {"positive": int(labels.sum()), "ties": ties}
        truth[:, t] = labels
        counts = binary_counts(readings)
        n_pairs = int((counts.sum(axis=1) >= 2).sum())
        value = fleiss_kappa(counts)
        kflags = (["too_few_images"] if n_pairs < config.min_cases else []) + (
            ["undefined_no_variation"] if math.isnan(value) else []
        )
        kappa[target.name] = {"fleiss_kappa": value, "n_images": n_pairs, "flags": kflags}
        if ds_ok:
            model = dawid_skene(readings, config.dawid_skene_max_iter, config.dawid_skene_tol)
            if use_ds:
                truth[:, t] = model.labels
            mflags = ([] if model.converged else ["not_converged"]) + (
                [] if model.better_than_chance else ["worse_than_chance_solution"]
            )
            readers: dict[str, dict[str, Any]] = {}
            for r, reader in enumerate(table.reader_ids):
                positive_weight = model.positive_weight[r]
                negative_weight = model.n_read[r] - positive_weight
                rflags = []
                if model.n_read[r] < config.min_cases:
                    rflags.append("too_few_images")
                if not _identified(model.corroborated_positive[r], positive_weight, config.min_cases):
                    rflags.append("sensitivity_not_identified")
                if not _identified(model.corroborated_negative[r], negative_weight, config.min_cases):
                    rflags.append("specificity_not_identified")
                readers[reader] = {
                    "sensitivity": float(model.sensitivity[r]),
                    "specificity": float(model.specificity[r]),
                    "n_read": int(model.n_read[r]),
                    "positive_weight": float(model.positive_weight[r]),
                    "corroborated_positive": float(model.corroborated_positive[r]),
                    "corroborated_negative": float(model.corroborated_negative[r]),
                    "flags": rflags,
                }
            if any("sensitivity_not_identified" in r["flags"] for r in readers.values()):
                # Those readers' images carry the prior prevalence as posterior weight, so the model's
                # prevalence overstates the share of positives; the labels (posterior >= 0.5) are unaffected.
                mflags.append("readers_with_unidentified_sensitivity")
            models[target.name] = {
                "method": "dawid_skene",
                "prevalence": model.prevalence,
                "map_positive_fraction": float(model.labels.mean()),
                "iterations": model.iterations,
                "converged": model.converged,
                "log_likelihood": model.log_likelihood,
                "flags": mflags,
                "readers": readers,
            }
    analysis = TableAnalysis(table, "dawid_skene" if use_ds else "majority", truth, flags)
    analysis.majority, analysis.reader_models, analysis.kappa = majority, models, kappa
    return analysis


def _identified(corroborated: float, weight: float, min_cases: int) -> bool:
    # A reader's rate is identified by images where someone else made the same call. If most of the weight
    # behind it sits on images nobody else called that way, it is carried by the model's prior prevalence,
    # not by evidence (VinDr-CXR: radiologists who were routed normal images and never call a finding).
    return corroborated >= min_cases and corroborated >= 0.5 * weight


def _attach_mined(config: PriorsConfig, analysis: TableAnalysis, mined: MinedLabels | None) -> None:
    """Find the text-mined labels of the table's images: the labels table, else the table's own column."""
    table = analysis.table
    info: dict[str, Any] = {
        "source": None,
        "n_matched": 0,
        "n_unmatched_dropped": 0,
        "embedded_disagreements": None,
    }
    analysis.text_mined = info
    if mined is not None:
        rows = mined.rows_of(table.image_ids)
        missing = rows < 0
        n_missing = int(missing.sum())
        if n_missing < table.n_images:  # some images in common (all missing: handled below)
            if n_missing / table.n_images > config.max_unmatched_fraction:
                examples = format_examples(table.image_ids[missing])
                raise PriorsInputError(
                    f"re-read table {table.name}: {n_missing} of {table.n_images} images are not in the "
                    f"labels table (image IDs: {examples}); check that both come from the same dataset, "
                    "or raise max_unmatched_fraction to drop them"
                )
            if n_missing:
                analysis.flags.append("images_missing_from_labels_table_dropped")
            analysis.mined, analysis.mined_rows = mined, rows
            info.update(
                source="labels_table", n_matched=table.n_images - n_missing, n_unmatched_dropped=n_missing
            )
            if table.embedded_mined is not None:
                own = table.embedded_mined.rows_of(table.image_ids)
                keep = ~missing
                differ = (mined.values[rows[keep]] != table.embedded_mined.values[own[keep]]).any(axis=1)
                info["embedded_disagreements"] = int(differ.sum())
                if differ.any():
                    analysis.flags.append("embedded_text_mined_labels_disagree_with_labels_table")
            return
        analysis.flags.append("no_image_in_labels_table")
    if table.embedded_mined is not None:
        analysis.mined = table.embedded_mined
        analysis.mined_rows = table.embedded_mined.rows_of(table.image_ids)
        info.update(source="embedded", n_matched=table.n_images)
        return
    analysis.flags.append("no_text_mined_labels")


# ------------------------------------------------------------------------------------- findings block


@dataclass
class _Measurement:
    analysis: TableAnalysis
    target: Target
    counts: TwoByTwo  # the finding's 2x2: its text-mined label vs the target's re-read label
    group_counts: TwoByTwo  # the target's 2x2 (the same as counts for a single-finding target)
    mined_prevalence: float
    reference: str


def _findings_block(
    config: PriorsConfig, analyses: Sequence[TableAnalysis], mined: MinedLabels | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    measured = {f: _measure(f, analyses, mined) for f in FINDINGS}
    pooled, sens_pooled, ratio = _pooled(config, measured)
    findings = {}
    for i, finding in enumerate(FINDINGS):
        m = measured[finding]
        if m is None:
            findings[finding] = _unmeasured(i, finding, mined, sens_pooled, ratio)
        else:
            findings[finding] = _measured(config, m, sens_pooled, ratio)
    return findings, pooled


def _measure(
    finding: str, analyses: Sequence[TableAnalysis], mined: MinedLabels | None
) -> _Measurement | None:
    candidates = []
    for order, analysis in enumerate(analyses):
        if analysis.mined is None:
            continue
        for t, target in enumerate(analysis.table.targets):
            if finding in target.members:
                candidates.append((target.is_group, -analysis.table.n_images, order, analysis, t, target))
    if not candidates:
        return None
    *_, analysis, t, target = min(candidates, key=lambda c: c[:3])
    rows = analysis.mined_rows
    assert rows is not None and analysis.mined is not None
    keep = rows >= 0
    column = FINDINGS.index(finding)
    truth = analysis.truth[keep, t]
    counts = TwoByTwo.from_labels(analysis.mined.values[rows[keep], column], truth)
    group = TwoByTwo.from_labels(analysis.mined.target_labels(target, rows[keep]), truth)
    if mined is not None:
        prevalence, reference = float(mined.values[:, column].mean()), "labels_table"
    else:
        prevalence, reference = float(analysis.mined.values[rows[keep], column].mean()), "subset"
    return _Measurement(analysis, target, counts, group, prevalence, reference)


def _pooled(
    config: PriorsConfig, measured: dict[str, _Measurement | None]
) -> tuple[dict[str, Any], float | None, float | None]:
    """Pooled mining sensitivity (per target) and fp-rate-to-prevalence ratio (per finding)."""
    seen: set[tuple[str, str]] = set()
    tp = positives = 0
    fp = 0
    expected = 0.0
    used = []
    for finding, m in measured.items():
        if m is None:
            continue
        key = (m.analysis.table.name, m.target.name)
        if key not in seen and m.group_counts.true_positive >= config.min_cases:
            seen.add(key)
            tp += m.group_counts.tp
            positives += m.group_counts.true_positive
        if _fpr_measurable(m.counts, config.min_cases) and m.mined_prevalence > 0:
            fp += m.counts.fp
            expected += m.counts.true_negative * m.mined_prevalence
            used.append(finding)
    sens = tp / positives if positives else None
    ratio = fp / expected if expected > 0 else None
    return (
        {
            "mined_sensitivity": proportion(tp, positives, config.confidence),
            "mined_sensitivity_targets": sorted(f"{t}/{g}" for t, g in seen),
            "fpr_to_mined_prevalence_ratio": ratio,
            "fpr_ratio_findings": used,
        },
        sens,
        ratio,
    )


def _fpr_measurable(counts: TwoByTwo, min_cases: int) -> bool:
    # False positives of a rare finding are rare events: many true negatives with no text-mined positive
    # among them say little about a rate of a few per thousand, so the mined positives must be there too.
    return counts.true_negative >= min_cases and counts.mined_positive >= min_cases


def _transfer(
    sens: float | None, fpr: float | None, prevalence: float | None, reference: str
) -> dict[str, Any] | None:
    if sens is None or fpr is None or prevalence is None:
        return None
    return _known_transfer(sens, fpr, prevalence, reference)


def _known_transfer(sens: float, fpr: float, prevalence: float, reference: str) -> dict[str, Any]:
    moved = at_mined_prevalence(sens, fpr, prevalence)
    usable = moved.in_range
    return {
        "reference": reference,
        "mined_prevalence": prevalence,
        "implied_true_prevalence": moved.implied_true_prevalence if usable else None,
        "in_range": usable,
        "p_true_given_mined_pos": moved.p_true_given_mined_pos if usable else None,
        "p_true_given_mined_neg": moved.p_true_given_mined_neg if usable else None,
    }


def _measured(
    config: PriorsConfig, m: _Measurement, sens_pooled: float | None, ratio: float | None
) -> dict[str, Any]:
    entry = noise_rate_entry(m.counts, config.min_cases, config.confidence)
    flags = list(entry["flags"])
    group = m.target.is_group
    sens, fpr, transfer = _rates_and_transfer(config, m, sens_pooled, ratio, flags)
    use_subset = config.prior_basis == "subset" and not group
    values, sources = _prior_values(entry, transfer, use_subset, flags)
    if all(v is None for v in values.values()):
        status = "unavailable"
    elif group:
        status = "measured_as_group"
    else:
        # Own evidence behind each value: the subset conditional, or the finding's own rates in a transfer.
        own = (
            [v == "subset" for v in sources.values()]
            if use_subset
            else [sens["source"] != "pooled", fpr["source"] != "pooled"]
        )
        status = "measured" if all(own) else "partial_fallback" if any(own) else "fallback"
    return {
        **values,
        "status": status,
        "value_source": sources,
        "flags": sorted(set(flags)),
        "measured_on": {
            "table": m.analysis.table.name,
            "target": m.target.name,
            "members": list(m.target.members),
            "truth": m.analysis.truth_method,
        },
        "subset": entry,
        "mined_sensitivity": sens,
        "mined_false_positive_rate": fpr,
        "transfer": transfer,
    }


def _rates_and_transfer(
    config: PriorsConfig, m: _Measurement, sens_pooled: float | None, ratio: float | None, flags: list[str]
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The mined labels' sensitivity and false-positive rate (own where measurable, else pooled) and their
    transfer to the mined prevalence; adds a flag for each way the transfer fails."""
    sens_counts = m.group_counts
    sens: dict[str, Any]
    fpr: dict[str, Any]
    if sens_counts.true_positive >= config.min_cases:
        sens = {
            "value": sens_counts.tp / sens_counts.true_positive,
            "source": "measured_group" if m.target.is_group else "measured",
        }
    else:
        sens = _pooled_sensitivity(sens_pooled)
    if _fpr_measurable(m.counts, config.min_cases):
        fpr = {"value": m.counts.fp / m.counts.true_negative, "source": "measured"}
    else:
        fpr = _pooled_false_positive_rate(ratio, m.mined_prevalence)
    transfer = _transfer(sens["value"], fpr["value"], m.mined_prevalence, m.reference)
    own_rates = sens["source"] != "pooled" or fpr["source"] != "pooled"
    if transfer is not None and not transfer["in_range"] and own_rates:
        # The finding's own rates contradict its text-mined prevalence (a small subset can measure a
        # sensitivity below what the prevalence allows): transfer with the pooled rates instead.
        flags.append("own_rates_inconsistent_with_prevalence")
        sens = _pooled_sensitivity(sens_pooled)
        fpr = _pooled_false_positive_rate(ratio, m.mined_prevalence)
        transfer = _transfer(sens["value"], fpr["value"], m.mined_prevalence, m.reference)
    if transfer is not None and not transfer["in_range"]:
        flags.append("transfer_out_of_range")
    return sens, fpr, transfer


def _pooled_sensitivity(sens_pooled: float | None) -> dict[str, Any]:
    return {"value": sens_pooled, "source": "pooled"}


def _pooled_false_positive_rate(ratio: float | None, mined_prevalence: float) -> dict[str, Any]:
    # The pooled ratio is false-positive rate per unit of mined prevalence.
    return {"value": None if ratio is None else ratio * mined_prevalence, "source": "pooled"}


def _prior_values(
    entry: dict[str, Any], transfer: dict[str, Any] | None, use_subset: bool, flags: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each conditional from the subset (where it is the basis and has enough cases), else from the
    transfer, else none (flagged ``no_value``); returns the values and where each came from."""
    values: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    for key, flag in (
        ("p_true_given_mined_pos", "too_few_mined_positive"),
        ("p_true_given_mined_neg", "too_few_mined_negative"),
    ):
        if use_subset and flag not in flags:
            values[key], sources[key] = entry[key]["value"], "subset"
        elif transfer is not None and transfer[key] is not None:
            values[key], sources[key] = transfer[key], "transfer"
        else:
            values[key], sources[key] = None, None
            flags.append("no_value")
    return values, sources


def _unmeasured(
    column: int, finding: str, mined: MinedLabels | None, sens_pooled: float | None, ratio: float | None
) -> dict[str, Any]:
    flags = ["no_measurement"]
    transfer = None
    sens = fpr = None
    if mined is None:
        flags.append("no_labels_table")
    elif sens_pooled is None or ratio is None:
        flags.append("no_pooled_rates")
    else:
        prevalence = float(mined.values[:, column].mean())
        sens = {"value": sens_pooled, "source": "pooled"}
        fpr = {"value": ratio * prevalence, "source": "pooled"}
        transfer = _known_transfer(sens_pooled, ratio * prevalence, prevalence, "labels_table")
        if not transfer["in_range"]:
            flags.append("transfer_out_of_range")
    pos = None if transfer is None else transfer["p_true_given_mined_pos"]
    neg = None if transfer is None else transfer["p_true_given_mined_neg"]
    return {
        "p_true_given_mined_pos": pos,
        "p_true_given_mined_neg": neg,
        "status": "unavailable" if pos is None and neg is None else "fallback",
        "value_source": {
            "p_true_given_mined_pos": None if pos is None else "transfer",
            "p_true_given_mined_neg": None if neg is None else "transfer",
        },
        "flags": flags,
        "measured_on": None,
        "subset": None,
        "mined_sensitivity": sens,
        "mined_false_positive_rate": fpr,
        "transfer": transfer,
    }


# ------------------------------------------------------------------------------------------ assembly


def _choose_comorbidity(analyses: Sequence[TableAnalysis]) -> TableAnalysis | None:
    usable = [a for a in analyses if a.comorbidity is not None]
    if not usable:
        return None
    return max(usable, key=lambda a: (len(a.table.targets), TRUTH_RANK[a.truth_method], a.table.n_images))


def _table_json(a: TableAnalysis) -> dict[str, Any]:
    table = a.table
    per_image = table.readings_per_image()
    return {
        "name": table.name,
        "layout": table.layout,
        "sha256": table.sha256,
        "n_images": table.n_images,
        "n_readers": len(table.reader_ids),
        "readers": list(table.reader_ids),
        "readings_per_image": None
        if not len(per_image)
        else {"min": int(per_image.min()), "mean": float(per_image.mean()), "max": int(per_image.max())},
        "duplicates_dropped": table.duplicates_dropped,
        "unmapped_labels": list(table.unmapped_labels),
        "targets": [{"name": t.name, "members": list(t.members)} for t in table.targets],
        "truth": a.truth_method,
        "flags": a.flags,
        "text_mined": a.text_mined,
        "noise_rates": a.noise,
        "majority_vote": a.majority,
        "reader_models": a.reader_models,
        "kappa": a.kappa,
        "comorbidity": None if a.comorbidity is None else a.comorbidity.as_json(),
    }


def json_safe(value: Any) -> Any:
    """Plain JSON types: numpy scalars to Python, tuples to lists, floats to 6 significant digits, NaN and
    infinities to None."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    if isinstance(value, float | np.floating):
        value = float(value)
        # Six significant digits: short files and stable diffs, without flattening small values to 0.
        return float(f"{value:.6g}") if math.isfinite(value) else None
    return value


def _metrics(document: dict[str, Any]) -> dict[str, Any]:
    """A small nested summary for DVC metrics and MLflow (the document holds everything)."""
    findings = document["findings"]
    metrics: dict[str, Any] = {
        "findings": {
            f: {
                "p_true_given_mined_pos": e["p_true_given_mined_pos"],
                "p_true_given_mined_neg": e["p_true_given_mined_neg"],
            }
            for f, e in findings.items()
        },
        "n_findings_measured": sum(e["status"] == "measured" for e in findings.values()),
        "n_findings_fallback": sum(
            e["status"] in ("fallback", "partial_fallback") for e in findings.values()
        ),
        "tables": {},
    }
    for table in document["tables"]:
        kappas = [k["fleiss_kappa"] for k in table["kappa"].values() if k["fleiss_kappa"] is not None]
        summary: dict[str, Any] = {"n_images": table["n_images"], "n_readers": table["n_readers"]}
        if kappas:
            summary["fleiss_kappa_mean"] = round(float(np.mean(kappas)), 6)
        # Means over the rates the data identify (see the reader flags), not over every reader.
        readers = [r for m in table["reader_models"].values() for r in m["readers"].values()]
        sens = [r["sensitivity"] for r in readers if "sensitivity_not_identified" not in r["flags"]]
        spec = [r["specificity"] for r in readers if "specificity_not_identified" not in r["flags"]]
        if sens:
            summary["reader_sensitivity_mean"] = round(float(np.mean(sens)), 6)
        if spec:
            summary["reader_specificity_mean"] = round(float(np.mean(spec)), 6)
        metrics["tables"][table["name"]] = summary
    return metrics


def document_frames(document: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """Flat tables of a priors document: findings, noise rates, reader models, kappa, comorbidity."""

    def ci(block: dict[str, Any] | None, side: int) -> float | None:
        return None if block is None or block.get("ci") is None else block["ci"][side]

    findings = pd.DataFrame(
        [
            {
                "finding": f,
                "p_true_given_mined_pos": e["p_true_given_mined_pos"],
                "p_true_given_mined_neg": e["p_true_given_mined_neg"],
                "status": e["status"],
                "source_pos": e["value_source"]["p_true_given_mined_pos"],
                "source_neg": e["value_source"]["p_true_given_mined_neg"],
                "table": (e["measured_on"] or {}).get("table"),
                "target": (e["measured_on"] or {}).get("target"),
                "flags": ";".join(e["flags"]),
            }
            for f, e in document["findings"].items()
        ]
    )
    noise, readers, kappa = [], [], []
    for table in document["tables"]:
        for target, e in table["noise_rates"].items():
            noise.append(
                {
                    "table": table["name"],
                    "target": target,
                    "members": "|".join(e["members"]),
                    "truth": table["truth"],
                    **e["counts"],
                    **{
                        f"{key}{suffix}": value
                        for key in (
                            "p_true_given_mined_pos",
                            "p_true_given_mined_neg",
                            "mined_sensitivity",
                            "mined_false_positive_rate",
                        )
                        for suffix, value in (
                            ("", e[key]["value"]),
                            ("_low", ci(e[key], 0)),
                            ("_high", ci(e[key], 1)),
                        )
                    },
                    "flags": ";".join(e["flags"]),
                }
            )
        for target, model in table["reader_models"].items():
            for reader, r in model["readers"].items():
                values = {k: v for k, v in r.items() if k != "flags"}
                readers.append(
                    {
                        "table": table["name"],
                        "target": target,
                        "reader": reader,
                        **values,
                        "flags": ";".join(r["flags"]),
                    }
                )
        for target, k in table["kappa"].items():
            kappa.append(
                {
                    "table": table["name"],
                    "target": target,
                    "fleiss_kappa": k["fleiss_kappa"],
                    "n_images": k["n_images"],
                    "flags": ";".join(k["flags"]),
                }
            )
    frames = {
        "findings": findings,
        "noise_rates": pd.DataFrame(noise),
        "reader_models": pd.DataFrame(readers),
        "kappa": pd.DataFrame(kappa),
    }
    if document["comorbidity"] is not None:
        c = document["comorbidity"]
        frames["comorbidity"] = pd.DataFrame(
            c["matrix"], index=pd.Index(c["findings"], name="given"), columns=c["findings"]
        )
    return frames
