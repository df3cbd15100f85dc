"""The release stage's run function: the release directory (or the audit report that blocked it), its
metrics, and one MLflow run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from cxrpriv.config import config_to_dict
from cxrpriv.ingest.keys import DeidKey
from cxrpriv.release import AUDIT_REPORT_FILE, COMPLETE, ReleaseBlocked
from cxrpriv.release.config import ReleaseConfig
from cxrpriv.stages.contract import StageContext

log = logging.getLogger(__name__)

# The release's status on the pipeline execution's parent MLflow run.
RELEASE_STATUS_TAG = "cxrpriv.release_status"
MODELS_KEY = "registered_models"


def run_release(
    config: ReleaseConfig,
    dataset_dir: Path,
    decision_path: Path,
    report_dir: Path | None,
    key: DeidKey,
    context: StageContext,
    *,
    force_reason: str | None = None,
) -> dict[str, Any]:
    """Release the anonymized dataset ``dataset_dir`` under the decision at ``decision_path`` (read with
    :func:`cxrpriv.evaluate.decision.read_decision`) into ``context.out``, copying ``report_dir`` if given;
    returns the metrics. Raises ReleaseRefused (failed decision, no reason) before writing anything, and
    ReleaseBlocked (after writing the audit report, the metrics and the MLflow run) when the audit found
    leftover PHI."""
    from tqdm import tqdm

    from cxrpriv.dataset import dataset_digest
    from cxrpriv.evaluate.decision import read_decision
    from cxrpriv.release.stage import ReleaseRequest, check_gate, open_release_input, release
    from cxrpriv.tracking import hash_inputs, stage_run

    decision = read_decision(decision_path)
    context.plots.mkdir(parents=True, exist_ok=True)  # the stage has no plots; DVC wants its folder to exist
    if not decision.passed and not (force_reason or "").strip() and config.on_failed_gate == "record":
        return record_refusal(decision, context)
    # Refuse before opening an MLflow run or touching the output.
    check_gate(decision, force_reason)
    open_release_input(Path(dataset_dir), key)
    request = ReleaseRequest(Path(dataset_dir), decision, report_dir, force_reason)
    inputs = [Path(dataset_dir) / "manifest.parquet", Path(decision_path)]
    params = {"release": config_to_dict(config)}
    with stage_run(
        "release", params, context.profile, input_hash=hash_inputs(inputs), tags=context.tags
    ) as run:
        run.log_dataset("anonymized", Path(dataset_dir), dataset_digest(Path(dataset_dir)))
        with tqdm(desc="release", unit="image", disable=not context.progress) as bar:
            result = release(config, request, key, context.out, progress=bar.update)
        if result.status == COMPLETE:
            alias_release_models(Path(dataset_dir), Path(decision_path), result.out)
        metrics = _metrics(result.manifest)
        context.metrics.parent.mkdir(parents=True, exist_ok=True)
        context.metrics.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
        run.set_tags(
            {
                "cxrpriv.release.status": result.status,
                "cxrpriv.release.decision": decision.decision,
                "cxrpriv.release.forced": str(metrics["forced"] == 1).lower(),
            }
        )
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        run.log_artifact(context.metrics)
        run.log_to_pipeline(
            {"headline.released_images": metrics["images"]}, {RELEASE_STATUS_TAG: result.status}
        )
    if result.status != COMPLETE:
        raise ReleaseBlocked(
            f"the leftover-PHI audit found {len(result.audit.findings)} problem(s): nothing released "
            f"(report: {context.out / AUDIT_REPORT_FILE})"
        )
    log.info(
        "release: %d images of %d patients written to %s", metrics["images"], metrics["patients"], result.out
    )
    return metrics


def alias_release_models(dataset_dir: Path, decision_path: Path, out: Path) -> list[dict[str, str]]:
    """A complete release (its gate passed, or forced with a recorded reason): set the ``released`` alias
    on the registered versions of the models that made it, found by digest through the MLflow runs that
    made its inputs (the anonymizer behind ``dataset_dir``, the verifier and classifier behind the decision
    at ``decision_path``), and record them in the release manifest under ``registered_models``."""
    from cxrpriv.dataset import dataset_digest
    from cxrpriv.evaluate.decision import DECISION_FILE
    from cxrpriv.release import RELEASE_MANIFEST_FILE
    from cxrpriv.tracking import file_digest, models_behind
    from cxrpriv.training.registry import alias_released_models

    decision_file = decision_path / DECISION_FILE if decision_path.is_dir() else decision_path
    models = models_behind([dataset_digest(dataset_dir), file_digest(decision_file)])
    records = alias_released_models(models)
    missing = sorted(set(models) - {r["kind"] for r in records})
    if missing:
        log.warning("release: no registered model version of the %s: no alias set on it", ", ".join(missing))
    manifest_path = out / RELEASE_MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest[MODELS_KEY] = records
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=False) + "\n")
    return records


def record_refusal(decision: Any, context: StageContext) -> dict[str, Any]:
    """A failed gate, recorded: ``context.out`` holds only a release manifest saying so (nothing from an
    earlier release is left there to be mistaken for this one), and the metrics say nothing was released."""
    import shutil

    from cxrpriv.release import REFUSED, RELEASE_MANIFEST_FILE
    from cxrpriv.tracking import stage_run

    shutil.rmtree(context.out, ignore_errors=True)
    context.out.mkdir(parents=True)
    manifest = {
        "status": REFUSED,
        "decision": decision.to_dict(),
        "images": 0,
        "patients": 0,
        "note": "the release decision failed: nothing was released (force with a reason to release anyway)",
    }
    (context.out / RELEASE_MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    metrics = {"status": REFUSED, "complete": 0, "images": 0, "patients": 0, "forced": 0}
    context.metrics.parent.mkdir(parents=True, exist_ok=True)
    context.metrics.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    with stage_run(
        "release", {}, context.profile, inputs=[context.out / RELEASE_MANIFEST_FILE], tags=context.tags
    ) as run:
        run.set_tags({"cxrpriv.release.status": REFUSED, "cxrpriv.release.decision": decision.decision})
        run.log_metrics({"complete": 0, "images": 0})
        run.log_to_pipeline({"headline.released_images": 0}, {RELEASE_STATUS_TAG: REFUSED})
    log.warning(
        "release: REFUSED, the release decision for %s failed (%s); nothing released; see %s",
        decision.variant,
        "; ".join(decision.reasons),
        context.out / RELEASE_MANIFEST_FILE,
    )
    return metrics


def _metrics(manifest: dict[str, Any]) -> dict[str, Any]:
    audit = manifest["audit"]
    return {
        "status": manifest["status"],
        "complete": int(manifest["status"] == COMPLETE),
        "images": manifest["images"],
        "patients": manifest["patients"],
        "forced": int(bool(manifest["forced"])),
        "audit_findings": sum(audit["findings_by_kind"].values()),
        "audit_files_checked": audit["files_checked"],
        "audit_strings_checked": audit["strings_checked"],
        "audit_images_checked": audit["images_checked"],
        "seconds": manifest["seconds"],
    }
