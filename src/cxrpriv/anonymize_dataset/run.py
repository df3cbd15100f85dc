"""The anonymize stage's run function: apply the anonymizer to the ingest output, write the anonymized
dataset (``context.out``, in the ingest format), its metrics and an example plot, and log one MLflow run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from cxrpriv.anonymize_dataset import AnonymizeInputError
from cxrpriv.anonymize_dataset.config import AnonymizeConfig
from cxrpriv.config import config_to_dict
from cxrpriv.dataset import DatasetError, find_manifest
from cxrpriv.stages.contract import StageContext

log = logging.getLogger(__name__)


def run_anonymize(
    config: AnonymizeConfig, ingest_dir: Path, anonymizer_dir: Path | None, context: StageContext
) -> dict[str, Any]:
    """Anonymize ``ingest_dir`` with ``config.method`` (``learned``: the generator in ``anonymizer_dir``, a
    train_anonymizer output); returns the metrics."""
    from cxrpriv.anonymize_dataset.methods import build_method
    from cxrpriv.anonymize_dataset.stage import anonymize_dataset
    from cxrpriv.dataset import dataset_digest
    from cxrpriv.tracking import hash_inputs, stage_run
    from cxrpriv.training.accelerator import select_accelerator
    from cxrpriv.training.artifacts import model_digest, write_metrics

    config.validate()
    try:
        inputs = [find_manifest(ingest_dir).parent]
    except DatasetError as exc:
        raise AnonymizeInputError(str(exc)) from exc
    accelerator = select_accelerator(context.device, mixed_precision=False)
    method = build_method(config, anonymizer_dir if config.method == "learned" else None, accelerator.device)
    if config.method == "learned" and anonymizer_dir is not None:
        inputs.append(Path(anonymizer_dir))
    params = {"anonymize": config_to_dict(config)}
    with stage_run(
        "anonymize", params, context.profile, input_hash=hash_inputs(inputs), tags=context.tags
    ) as run:
        run.log_dataset("ingested", Path(ingest_dir), dataset_digest(ingest_dir))
        if config.method == "learned" and anonymizer_dir is not None:
            run.log_model_input("anonymizer", model_digest(Path(anonymizer_dir)))
        result = anonymize_dataset(
            config, method, ingest_dir, context.out, device=accelerator.device, progress=context.progress
        )
        run.set_output_digest(dataset_digest(context.out))  # how release finds the anonymizer behind it
        metrics = write_metrics(context.metrics, result.metrics)
        plot = _example_plot(result.examples, method.description, context.plots)
        run.log_metrics({k: v for k, v in metrics.items() if isinstance(v, int | float)})
        run.set_tags(
            {
                "cxrpriv.anonymizer": method.method,
                **{f"cxrpriv.{k}": v for k, v in accelerator.describe().items()},
            }
        )
        run.log_artifact(context.metrics)
        run.log_artifact(plot, "plots")
    log.info(
        "anonymize (%s) on %s: %d images in %.1f s (%.0f images/s), largest displacement %.2f px, mean "
        "|change| %.4f; written to %s",
        method.method,
        accelerator.describe()["device_name"],
        result.metrics["images"],
        result.metrics["seconds"],
        result.metrics["images_per_s"],
        result.metrics["largest_displacement_px"],
        result.metrics["mean_abs_change"],
        context.out,
    )
    return metrics


def _example_plot(examples: dict[str, np.ndarray], title: str, plots_dir: Path) -> Path:
    """A few films: original | anonymized | |difference| (one row per film)."""
    from cxrpriv.figures import difference_grid

    plots_dir = Path(plots_dir)
    plots_dir.mkdir(parents=True, exist_ok=True)
    anonymized = {"anonymized": examples["anonymized"]}
    return difference_grid(examples["original"], anonymized, title, plots_dir / "examples.png")
