"""The effective value of every stage key, as the stages see it under the selected profile, and what a change
of params.yaml (a profile switch included) changes in them.

`dvc params diff` compares params.yaml key by key, so after `dvc exp run -S profile=paper` it shows only
``profile`` changing: the ``profiles.paper`` block the stages now read is the same in both revisions. This
resolves each revision's params.yaml the way the stages do (:func:`cxrpriv.config.stage_values`) and
compares the results::

    python scripts/effective_params.py                  # every effective value (the workspace's profile)
    python scripts/effective_params.py diff             # HEAD -> workspace, only the values that differ
    python scripts/effective_params.py diff main exp-1  # between two git revisions (an experiment's ref too)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = "workspace"


def read_revision(revision: str, repo: Path) -> dict[str, Any]:
    """params.yaml of a git revision, or of the working tree for ``workspace``."""
    if revision == WORKSPACE:
        return yaml.safe_load((repo / "params.yaml").read_text())
    shown = subprocess.run(
        ["git", "show", f"{revision}:params.yaml"], cwd=repo, capture_output=True, text=True, check=False
    )
    if shown.returncode != 0:
        raise SystemExit(f"params.yaml at {revision}: {shown.stderr.strip()}")
    return yaml.safe_load(shown.stdout)


def effective_values(params: dict[str, Any]) -> dict[str, Any]:
    """``profile`` and every ``<stage>.<key>`` under the file's profile."""
    from cxrpriv.config import stage_values
    from scripts.render_dvc_params import NOT_STAGE_SECTIONS

    values: dict[str, Any] = {"profile": params.get("profile", "default")}
    for section in (s for s in params if s not in NOT_STAGE_SECTIONS):
        values.update({f"{section}.{k}": v for k, v in stage_values(params, section).items()})
    return values


def changed(old: dict[str, Any], new: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(key, old, new) for every effective value that differs (a key one side lacks is None there)."""
    keys = sorted(set(old) | set(new))
    return [(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sys.path.insert(0, str(REPO))
    if not argv:
        for key, value in effective_values(read_revision(WORKSPACE, Path.cwd())).items():
            print(f"{key}  {_text(value)}")
        return 0
    if argv[0] != "diff" or len(argv) > 3:
        raise SystemExit(__doc__)
    revisions = argv[1:]
    old_rev = revisions[0] if revisions else "HEAD"
    new_rev = revisions[1] if len(revisions) > 1 else WORKSPACE
    repo = Path.cwd()  # the project whose params.yaml to read: run it from its root, like dvc
    old, new = (effective_values(read_revision(rev, repo)) for rev in (old_rev, new_rev))
    rows = changed(old, new)
    print(f"Param  {old_rev}  {new_rev}")
    for key, before, after in rows:
        print(f"{key}  {_text(before)}  {_text(after)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
