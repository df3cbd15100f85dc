"""The evaluation report as one self-contained HTML file for a data-protection officer: the release
decision and its reasons first, then the attackers, the per-variant tables, the per-finding utility, the
plots (embedded as base64 PNG) and how to read it all. No external resource is referenced, every string is
escaped, and only aggregate numbers appear (no patient identifier is in the results to begin with)."""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrpriv.evaluate.decision import ReleaseDecision
from cxrpriv.evaluate.results import (
    FROZEN_CLASSIFIER,
    NAME,
    SUMMARY_COLUMNS,
    TEST,
    VARIANTS,
    frozen_verifier,
    get_variant,
    retrained_attackers,
    summary_rows,
    utility_record,
)

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1150px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
.decision { font-size: 2.6em; font-weight: 700; padding: 0.3em 0.6em; border-radius: 8px; margin: 0.3em 0;
            display: inline-block; }
.pass { background: #e3f4e1; color: #1b6e1b; border: 2px solid #1b6e1b; }
.fail { background: #fbe4e4; color: #a31515; border: 2px solid #a31515; }
.reasons li { margin: 0.3em 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.55em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fdf0f0; }
tr.worst td { background: #fff6d6; }
tr.chosen td { font-weight: 600; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
.note { color: #555; font-size: 0.9em; }
"""


def write_html_report(
    results: Mapping[str, Any], decision: ReleaseDecision, plot_paths: Sequence[Path], out_path: Path
) -> Path:
    """Write the report to ``out_path`` (one HTML file, nothing else referenced) and return it."""
    body = [
        _decision_section(decision),
        _test_section(results),
        _attackers_section(results),
        _summary_section(results),
        _per_finding_section(results),
        _plots_section(plot_paths),
        _how_to_read_section(),
    ]
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>Release evaluation: {_e(decision.variant)}</title>\n<style>{_STYLE}</style>\n</head>\n"
        "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(document, encoding="utf-8")
    return out_path


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any, digits: int = 3) -> str:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return "not measured" if value is None else _e(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}" if math.isfinite(value) else "not measured"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], row_classes: Sequence[str] = ()) -> str:
    """A table whose cells are already HTML (escaped by the caller); ``row_classes`` marks rows."""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    lines = []
    for i, cells in enumerate(rows):
        css = f' class="{row_classes[i]}"' if i < len(row_classes) and row_classes[i] else ""
        lines.append(f"<tr{css}>" + "".join(cells) + "</tr>")
    return f"<table>\n<tr>{head}</tr>\n" + "\n".join(lines) + "\n</table>"


def _cell(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return f'<td class="num">{_number(value, digits)}</td>'
    return f"<td>{_e(value)}</td>"


def _decision_section(decision: ReleaseDecision) -> str:
    verdict = "PASS: the release may go ahead" if decision.passed else "FAIL: do not release"
    reasons = (
        "<p>Every check is within its limit.</p>"
        if not decision.reasons
        else '<ul class="reasons">' + "".join(f"<li>{_e(r)}</li>" for r in decision.reasons) + "</ul>"
    )
    checks = _table(
        ["check", "measured", "limit", "result", "what it measures"],
        (
            [
                f"<td>{_e(c.name)}</td>",
                _cell(c.value, 4),
                _cell(c.limit, 4),
                f"<td>{'within the limit' if c.ok else 'FAILED'}</td>",
                f"<td>{_e(c.means)}</td>",
            ]
            for c in decision.checks
        ),
        ["" if c.ok else "bad" for c in decision.checks],
    )
    limits = ", ".join(f"{_e(k)} = {_e(v)}" for k, v in decision.limits.items())
    return (
        f"<h1>Release evaluation of the anonymized dataset &ldquo;{_e(decision.variant)}&rdquo;</h1>\n"
        f'<p class="decision {"pass" if decision.passed else "fail"}">{_e(verdict)}</p>\n'
        f'<h2>Why</h2>\n{reasons}\n{checks}\n<p class="note">Gate settings: {limits}.</p>'
    )


def _test_section(results: Mapping[str, Any]) -> str:
    test = results.get(TEST) or {}
    return (
        "<h2>What was tested</h2>\n<p>Every attacker is scored on the same held-out test set: "
        f"{_number(test.get('images'))} test films of {_number(test.get('patients'))} patients, "
        f"{_number(test.get('pairs'))} (anonymized film, original film) pairs, "
        f"{_number(test.get('positive_pairs'))} of them of the same patient. The splits are by patient: no "
        "test patient's films were used to train any attacker, the anonymizer or the classifier.</p>"
    )


def _attackers_section(results: Mapping[str, Any]) -> str:
    chosen = get_variant(results, str(results["chosen"]))
    others = [v for v in results.get(VARIANTS, []) if v.get(NAME) != chosen[NAME]]
    collapsed = [
        f"<details><summary>The attackers on &ldquo;{_e(v[NAME])}&rdquo;</summary>\n{_variant_attackers(v)}"
        "\n</details>"
        for v in others
    ]
    return "\n".join(
        [
            f"<h2>The attackers (on &ldquo;{_e(chosen[NAME])}&rdquo;, the variant decided on)</h2>",
            _variant_attackers(chosen),
            *collapsed,
        ]
    )


def _variant_attackers(variant: Mapping[str, Any]) -> str:
    frozen = frozen_verifier(variant)
    parts = [
        "<p><b>Frozen verifier</b> (reported, not gated on): "
        f"{_e(frozen.get('attacker', 'not measured'))}; AUC {_number(frozen.get('auc'))} "
        f"({_number(frozen.get('auc_low'))} to {_number(frozen.get('auc_high'))}), linkage P@1 "
        f"{_number(frozen.get('p_at_1'))}.</p>",
    ]
    attackers = retrained_attackers(variant)
    if not attackers:
        parts.append("<p><b>No attacker was retrained on the anonymized films.</b></p>")
    parts += [_retrained_attacker(a.family, a.record) for a in attackers]
    return "\n".join(parts)


def _retrained_attacker(family: str, record: Mapping[str, Any]) -> str:
    runs = record.get("runs", [])
    worst_seed = record.get("worst_seed")
    table = _table(
        ["seed", "verification AUC", "95% interval", "linkage P@1", "linkage mAP@R"],
        (
            [
                _cell(run.get("seed")),
                _cell(run.get("auc")),
                f"<td>{_number(run.get('auc_low'))} to {_number(run.get('auc_high'))}</td>",
                _cell(run.get("p_at_1")),
                _cell(run.get("map_at_r")),
            ]
            for run in runs
        ),
        ["worst" if run.get("seed") == worst_seed else "" for run in runs],
    )
    return (
        f"<h3>Retrained attacker &ldquo;{_e(family)}&rdquo;</h3>\n<p>{_e(record.get('attacker', ''))}. "
        f"Trained from scratch on {_number(record.get('train_images'))} anonymized training films "
        f"({_number(record.get('train_pairs'))} training pairs), once per seed "
        f"({_e(', '.join(str(s) for s in record.get('seeds', [])))}). Mean AUC "
        f"{_number(record.get('auc_mean'))} (s.d. {_number(record.get('auc_sd'))}); worst seed "
        f"{_number(worst_seed)} with AUC {_number(record.get('auc_worst'))} (highlighted); linkage P@1 mean "
        f"{_number(record.get('p_at_1_mean'))}, worst {_number(record.get('p_at_1_worst'))}.</p>\n{table}"
    )


def _summary_section(results: Mapping[str, Any]) -> str:
    rows = summary_rows(results)
    table = _table(
        [header for _, header in SUMMARY_COLUMNS],
        ([_cell(row[key]) for key, _ in SUMMARY_COLUMNS] for row in rows),
        ["chosen" if "chosen" in row["role"] else "" for row in rows],
    )
    return (
        "<h2>Every variant</h2>\n<p>One row per anonymization variant evaluated; the reference is the "
        "unanonymized data, against which the utility drop is measured. The strongest retrained attacker "
        "is the family with the highest mean AUC.</p>\n" + table
    )


def _per_finding_section(results: Mapping[str, Any]) -> str:
    variants = list(results.get(VARIANTS, []))
    records = [utility_record(v, FROZEN_CLASSIFIER) for v in variants]
    findings = list(dict.fromkeys(f for r in records for f in r.get("per_finding", {})))
    labels = [f"{v[NAME]} ({r.get('labels', '?')} labels)" for v, r in zip(variants, records, strict=True)]
    rows = [
        [f"<td>{_e(finding)}</td>", *(_finding_cell(r.get("per_finding", {}).get(finding)) for r in records)]
        for finding in findings
    ]
    rows.append(
        [
            "<td><b>mean</b></td>",
            *(
                _interval_cell(r.get("mean_auc"), r.get("mean_auc_low"), r.get("mean_auc_high"))
                for r in records
            ),
        ]
    )
    return (
        "<h2>Usefulness per finding</h2>\n<p>ROC AUC of the frozen findings classifier on each variant's "
        "test films, with 95% patient-bootstrap intervals.</p>\n" + _table(["finding", *labels], rows)
    )


def _finding_cell(entry: Mapping[str, Any] | None) -> str:
    entry = entry or {}
    return _interval_cell(entry.get("auc"), entry.get("low"), entry.get("high"))


def _interval_cell(value: Any, low: Any, high: Any) -> str:
    return f'<td class="num">{_number(value)} ({_number(low)} to {_number(high)})</td>'


def _plots_section(plot_paths: Sequence[Path]) -> str:
    images = [
        f'<figure><img alt="{_e(Path(p).stem)}" src="data:image/png;base64,'
        f'{base64.b64encode(Path(p).read_bytes()).decode("ascii")}"></figure>'
        for p in plot_paths
    ]
    return "<h2>Plots</h2>\n" + ("\n".join(images) if images else "<p>No plots.</p>")


def _how_to_read_section() -> str:
    return """<h2>How to read this report</h2>
<ul>
<li><b>Verification AUC</b>: an attacker is shown two films, one from the published (anonymized) set and one
from the hospital's original films, and scores how likely they are the same patient. The AUC is the chance
that a same-patient pair scores higher than a pair of two different patients. <b>0.5 is chance</b>: the
attacker cannot tell; 1.0 means it always can. Unanonymized chest films score near 1.0.</li>
<li><b>Linkage P@1</b>: the share of published films for which the most similar original film belongs to
the same patient, i.e. how often an attacker holding the original films re-identifies a record at the
first try.</li>
<li><b>Why the retrained attacker counts, not the frozen one</b>: the anonymizer was trained to fool the
frozen verifier, so a low frozen AUC is expected and proves little. A real adversary trains a new model on
the published films; that is what the retrained attackers do, from scratch, several times with different
seeds. The decision uses the strongest of them, its mean over seeds and its worst (highest) seed.</li>
<li><b>Utility drop</b>: how much the findings classifier's mean AUC falls on anonymized films compared to
the original ones; a small drop means the published films still show the findings.</li>
<li>Intervals are 95% bootstrap intervals over patients. All numbers are aggregates over the test set;
this report contains no patient identifiers.</li>
</ul>"""
