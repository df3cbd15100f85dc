"""The priors stage's output format: a folder holding ``priors.json`` (the document :mod:`.stage` computes),
or, when there was no re-read table to measure priors from (a real archive without radiologist re-reads),
the marker ``priors_skipped.json`` saying why and no ``priors.json``.

The writers keep the two exclusive; the readers are the model stages (CLI and KFP alike), which then train
without label-noise priors: :func:`without_priors` is the classifier config they run with.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cxrpriv.priors import PriorsInputError

log = logging.getLogger(__name__)

# The file the stage writes in its output directory, which the model stages read.
PRIORS_FILE = "priors.json"
# Written instead of priors.json when there was no re-read table.
PRIORS_SKIPPED_FILE = "priors_skipped.json"
# The classifier settings that need priors.json, and their values when there is none.
PRIOR_SETTINGS: Mapping[str, Any] = {"prior_correction": "none", "comorbidity_weight": 0.0}
# The MLflow tags of a model stage's run without priors because the priors stage was skipped.
SKIPPED_TAGS: Mapping[str, str] = {"cxrpriv.priors": "skipped"}


def write_priors_skipped(out: str | Path, reason: str) -> Path:
    """Mark the priors output ``out`` as skipped: ``reason`` (why: no patient data) in the marker, and no
    priors.json (an earlier run's is removed, so that no reader trains on stale priors)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PRIORS_FILE).unlink(missing_ok=True)
    path = folder / PRIORS_SKIPPED_FILE
    path.write_text(json.dumps({"skipped": True, "reason": reason}, indent=1) + "\n")
    return path


def clear_priors_skipped(out: str | Path) -> None:
    """Remove an earlier run's skipped marker from ``out`` before priors.json is written there."""
    (Path(out) / PRIORS_SKIPPED_FILE).unlink(missing_ok=True)


def _folder(priors: Path) -> Path | None:
    """The output folder ``priors`` names: the folder itself, or the folder of its ``priors.json``."""
    if priors.is_dir():
        return priors
    return priors.parent if priors.name == PRIORS_FILE else None


def skipped_reason(priors: str | Path) -> str | None:
    """Why the priors output ``priors`` (its folder or its priors.json path) was skipped, or None when it
    was not (it has priors.json, or is not there at all)."""
    folder = _folder(Path(priors))
    if folder is None or (folder / PRIORS_FILE).is_file():
        return None
    marker = folder / PRIORS_SKIPPED_FILE
    if not marker.is_file():
        return None
    try:
        return str(json.loads(marker.read_text())["reason"])
    except (ValueError, KeyError, TypeError) as error:
        raise PriorsInputError(f"{marker}: not a priors-skipped marker ({error})") from error


def priors_file(priors: str | Path) -> Path | None:
    """The ``priors.json`` of the priors output ``priors`` (its folder, or the file itself), or None when
    the output is marked skipped. Any other path is returned as it is, for the reader to report missing."""
    path = Path(priors)
    if skipped_reason(path) is not None:
        return None
    return path / PRIORS_FILE if path.is_dir() else path


def without_priors(values: Mapping[str, Any], stage: str, reason: str) -> dict[str, Any]:
    """Classifier config ``values`` with the settings that need priors.json turned off, for ``stage``
    running without priors (``reason``: why there are none); a changed setting is logged."""
    changed = {k: v for k, v in PRIOR_SETTINGS.items() if k in values and values[k] != v}
    if changed:
        log.warning(
            "%s: no label priors (%s): running with %s",
            stage,
            reason,
            ", ".join(f"{k}={v!r}" for k, v in changed.items()),
        )
    return {**values, **changed}
