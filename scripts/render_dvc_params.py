"""Print the ``params:`` block of each stage in dvc.yaml from params.yaml, key by key.

DVC tracks params key by key; keeping that list in sync with params.yaml by hand is error-prone, so
`tests/test_dvc.py` checks dvc.yaml against what this prints. The ``source`` section is no stage's: the
stages that read it interpolate it into their commands (``${source.dicom}``), and DVC tracks what a command
interpolates by itself.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

# Top-level keys of params.yaml that are no stage's section
NOT_STAGE_SECTIONS = ("profile", "profiles", "source")


def _section_keys(params: dict, section: str) -> list[str]:
    keys = [f"{section}.{key}" for key in params[section]]
    for profile, sections in (params.get("profiles") or {}).items():
        if section in (sections or {}):
            keys.append(f"profiles.{profile}.{section}")
    return keys


def stage_param_keys(params: dict, stage: str) -> list[str]:
    """``profile``, the stage's own section key by key, then each section it also reads (the registry's
    ``reads_params``), key by key."""
    from cxrpriv.stages.registry import STAGES

    reads = next((s.reads_params for s in STAGES if s.name == stage), ())
    return ["profile", *(key for section in (stage, *reads) for key in _section_keys(params, section))]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    params = yaml.safe_load(Path(argv[0] if argv else "params.yaml").read_text())
    for stage in [k for k in params if k not in NOT_STAGE_SECTIONS]:
        print(f"{stage}:")
        for key in stage_param_keys(params, stage):
            print(f"  - {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
