"""The release decision: the contract between ``cxrpriv evaluate`` (which writes it) and ``cxrpriv release``
(which refuses to release when it failed, unless forced with a reason).

``release_decision.json``::

    {
      "decision": "pass" | "fail",
      "variant": "<name of the evaluated anonymizer variant the decision is about>",
      "reasons": ["<one sentence per failed check>"],          # empty when it passed
      "checks": [{"name": ..., "value": ..., "limit": ..., "ok": true|false, "means": "<what it checks>"}],
      "limits": {"<limit name>": <value>, ...}                   # the gate's settings, as configured
    }
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

DECISION_FILE = "release_decision.json"
PASS, FAIL = "pass", "fail"


class DecisionError(ValueError):
    """A release decision file that cannot be read; the message names the file and why."""


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    ok: bool
    means: str


@dataclass(frozen=True)
class ReleaseDecision:
    decision: str
    variant: str
    checks: tuple[Check, ...] = ()
    limits: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.decision == PASS

    @property
    def reasons(self) -> list[str]:
        return [
            f"{c.name}: {c.value:.4f} exceeds the limit {c.limit:.4f} ({c.means})"
            if math.isfinite(c.value)
            else f"{c.name}: not measured ({c.means})"
            for c in self.checks
            if not c.ok
        ]

    @classmethod
    def from_checks(cls, variant: str, checks: list[Check], limits: dict[str, float]) -> ReleaseDecision:
        """Pass only when there is at least one check and every check is ok."""
        decision = PASS if checks and all(c.ok for c in checks) else FAIL
        return cls(decision, variant, tuple(checks), dict(limits))

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "variant": self.variant,
            "reasons": self.reasons,
            "checks": [
                {**asdict(c), "value": c.value if math.isfinite(c.value) else None} for c in self.checks
            ],
            "limits": self.limits,
        }

    def write(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        return path


def read_decision(path: Path) -> ReleaseDecision:
    """The decision in ``path`` (a file, or a directory holding ``release_decision.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / DECISION_FILE
    try:
        raw = json.loads(path.read_text())
        checks = tuple(
            Check(
                str(c["name"]),
                math.nan if c["value"] is None else float(c["value"]),
                float(c["limit"]),
                bool(c["ok"]),
                str(c.get("means", "")),
            )
            for c in raw["checks"]
        )
        decision = ReleaseDecision(str(raw["decision"]), str(raw["variant"]), checks, dict(raw["limits"]))
    except FileNotFoundError as exc:
        raise DecisionError(f"{path}: not found (run `cxrpriv evaluate` first)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise DecisionError(f"{path}: not a release decision ({type(exc).__name__}: {exc})") from exc
    if decision.decision not in (PASS, FAIL):
        raise DecisionError(f"{path}: decision must be '{PASS}' or '{FAIL}', not {decision.decision!r}")
    return decision


def describe(decision: ReleaseDecision) -> str:
    """One paragraph: the decision, the variant and, when it failed, why."""
    verdict = "PASS" if decision.passed else "FAIL"
    reasons = "".join(f"\n  - {reason}" for reason in decision.reasons)
    return f"Release decision for {decision.variant}: {verdict}{reasons}"


def main(argv: list[str] | None = None) -> int:
    """``python -m cxrpriv.evaluate.decision DIR_OR_FILE``: print the decision (how `make pipeline` ends)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0] if args else "data/evaluate")
    try:
        decision = read_decision(path)
    except DecisionError as exc:
        print(exc, file=sys.stderr)
        return 2
    report = (path if path.is_dir() else path.parent) / "report.html"
    print(describe(decision))
    if report.is_file():
        print(f"Report: {report}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
