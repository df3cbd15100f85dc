"""The end of every training stage's run, in one place: once the outputs and the metrics JSON are written,
log the final metrics and the artifacts into the stage's MLflow run, log (and register) the model with its
description, and delete the resumable checkpoint, which is no longer needed to finish the run (and must
not meet the next run's data).

The checkpoint is deleted only after the model was logged: a run that fails while registering can still be
resumed instead of retrained.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrpriv.training.artifacts import MODEL_FILE, model_digest


@dataclass(frozen=True)
class TrainedModel:
    """A trained model as its stage wrote it: the output folder holding ``model.pt`` and ``spec.json``,
    the builder ``spec`` the registry rebuilds it from, the square ``input_size`` it takes, and what its
    registered version says about it (``description``: what it is, its training set size, its key metric);
    ``input_channels``: 2 for a model whose forward takes pairs of films (the verifier)."""

    out: Path
    spec: Mapping[str, Any]
    input_size: int
    description: str
    input_channels: int = 1


def finish_training_run(
    run: Any,
    model: TrainedModel,
    metrics: Mapping[str, Any],
    *,
    artifacts: Sequence[Path],
    plots: Sequence[Path],
    registered_name: str | None,
    checkpoint_dir: Path,
) -> str:
    """Log ``metrics`` (the final ones), ``artifacts`` (at the run's root) and ``plots`` (under
    ``plots/``) into ``run`` (a :class:`cxrpriv.tracking.StageRun`), log the model (registered under
    ``registered_name``; None: logged only), then delete ``checkpoint_dir``; returns the model URI."""
    from cxrpriv.training.registry import ModelCard, log_state_dict_model

    run.log_metrics(metrics)
    for path in artifacts:
        run.log_artifact(path)
    for plot in plots:
        run.log_artifact(plot, "plots")
    digest = model_digest(model.out)
    run.set_output_digest(digest)
    card = ModelCard(model.description, digest, model.input_size, model.input_channels)
    uri = log_state_dict_model(model.out / MODEL_FILE, model.spec, registered_name, card)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return uri
