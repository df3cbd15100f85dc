"""The stage contract: how the CLI and the KFP components call a stage, and the options stages share.

A stage has three parts besides its library code (docs/architecture.md, "How to add a stage"):

- its **run function**, ``run_<stage>(config, inputs..., context) -> metrics`` in
  ``cxrpriv/<package>/run.py``: it reads the inputs, runs the stage, writes the outputs under
  ``context.out``, the metrics JSON ``context.metrics`` and the plots under ``context.plots``, and logs one
  MLflow run. The CLI and the KFP component both call it; it knows nothing of argparse.
- its **command**, a :class:`StageCommand` in ``cxrpriv/<package>/command.py``: the argparse spec of the
  stage's paths (``add_io``) and ``run(config, args, context) -> exit code``, which maps the parsed paths to
  the run function's inputs (importing it when called) and its input errors to exit codes.
- its row in :data:`cxrpriv.stages.registry.STAGES`.

:class:`StageContext` is the one way a run function is told where to write and how to run; the CLI builds it
from the shared options below (:meth:`StageContext.from_args`), a component from its KFP artifacts
(:func:`cxrpriv.pipeline_edge.component_context`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class StageContext:
    """Where a stage run writes and how it runs: what a run function needs besides its config and inputs.

    Every stage honours ``out``, ``metrics``, ``plots``, ``profile`` and ``tags``; the other fields apply
    where the stage has the behaviour (``progress``: stages with progress bars; ``device``,
    ``checkpoint_dir``, ``restart``, ``register_model`` and ``model_name``: the training stages).
    """

    out: Path  # the stage's data output (a directory)
    metrics: Path  # the stage's metrics JSON (DVC: metrics/<stage>.json)
    plots: Path  # directory for the stage's PNG plots
    profile: str  # the params profile the config was resolved under (MLflow tag cxrpriv.profile)
    progress: bool = True  # show progress bars
    device: str = "auto"  # auto (CUDA if available), cpu, cuda or cuda:N
    checkpoint_dir: Path | None = None  # resumable checkpoint; None: <out>.checkpoint
    restart: bool = False  # discard the checkpoint of an interrupted run instead of resuming from it
    register_model: bool = True  # register the trained model in MLflow (it is logged either way)
    model_name: str | None = None  # registered model name; None: the stage's own
    tags: Mapping[str, str] = field(default_factory=dict, hash=False)  # extra tags on the MLflow run

    def __post_init__(self) -> None:
        for name in ("out", "metrics", "plots"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.checkpoint_dir is not None:
            object.__setattr__(self, "checkpoint_dir", Path(self.checkpoint_dir))
        object.__setattr__(self, "tags", dict(self.tags))

    def registered_name(self, default: str) -> str | None:
        """The name to register the trained model under (``default``: the stage's), or None: do not."""
        return (self.model_name or default) if self.register_model else None

    @classmethod
    def from_args(cls, args: argparse.Namespace, profile: str) -> StageContext:
        """The context from the shared options a stage's ``add_io`` added (:func:`add_output_options`,
        :func:`add_progress_option`, :func:`add_training_options`, :func:`add_model_name_option`); options
        it lacks keep their defaults."""
        return cls(
            out=args.out,
            metrics=args.metrics,
            plots=args.plots,
            profile=profile,
            progress=not getattr(args, "no_progress", False),
            device=getattr(args, "device", "auto"),
            checkpoint_dir=getattr(args, "checkpoint_dir", None),
            restart=getattr(args, "restart", False),
            # --model-name "" means: log the model, do not register it
            register_model=bool(getattr(args, "model_name", True)),
            model_name=getattr(args, "model_name", None) or None,
        )


@dataclass(frozen=True)
class StageCommand:
    """A stage's CLI spec: ``cxrpriv <name>``, whose parameter options come from ``config_cls``."""

    name: str  # the subcommand, the params.yaml section, the MLflow stage tag
    help: str
    config_cls: type[Any]
    # Adds the stage's I/O options (paths), which are not part of params.yaml.
    add_io: Callable[[argparse.ArgumentParser], None]
    # Runs the stage: (config, parsed args, context) -> exit code.
    run: Callable[[Any, argparse.Namespace, StageContext], int]


def optional_input(text: str) -> str | None:
    """An argparse ``type`` for an optional input: an empty value means there is none. dvc.yaml passes the
    ``source`` section of params.yaml so (``--labels ""`` where an archive has no labels table), since DVC
    templating cannot leave an option out."""
    return text or None


def optional_input_path(text: str) -> Path | None:
    """:func:`optional_input` as a path."""
    return Path(text) if text else None


def exit_code(
    run: Callable[[], object],
    log: logging.Logger,
    input_errors: tuple[type[Exception], ...],
    refusals: tuple[type[Exception], ...] = (),
    describe: Callable[[Exception], str] = str,
) -> int:
    """A command's exit code for calling ``run``: 0 when it returns, 2 for one of ``input_errors`` and 1
    for one of ``refusals`` (the stage ran and said no, e.g. a validation or release gate), the error
    logged on ``log`` (as ``describe`` words it); any other exception propagates."""
    try:
        run()
    except refusals as exc:
        log.error("%s", describe(exc))
        return 1
    except input_errors as exc:
        log.error("%s", describe(exc))
        return 2
    return 0


def add_output_options(parser: argparse.ArgumentParser, stage: str, out: Path, out_help: str) -> None:
    """The output options every stage shares: data directory, DVC metrics file, plots directory."""
    parser.add_argument("--out", type=Path, default=out, help=f"{out_help} (default: %(default)s).")
    parser.add_argument(
        "--metrics",
        type=Path,
        default=Path(f"metrics/{stage}.json"),
        help="Metrics JSON for DVC (default: %(default)s).",
    )
    parser.add_argument(
        "--plots",
        type=Path,
        default=Path(f"plots/{stage}"),
        help="Directory for the stage's PNG plots (default: %(default)s).",
    )


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``, for stages with progress bars."""
    parser.add_argument("--no-progress", action="store_true", help="Hide the progress bars.")


def add_model_name_option(parser: argparse.ArgumentParser, default: str) -> None:
    """``--model-name``, for stages that register a trained model in MLflow."""
    parser.add_argument(
        "--model-name",
        default=default,
        help="Name under which the trained model is registered in MLflow; empty: do not register "
        "(default: %(default)s).",
    )


def add_training_options(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint-dir``, ``--restart`` and ``--device``, for the training stages."""
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        default=None,
        help="Resumable checkpoint, rewritten every epoch (default: <out>.checkpoint, outside DVC's "
        "outputs so a killed run resumes; deleted once the outputs are written).",
    )
    # Not --force: in synthesize and preprocess that replaces the output; here the output is always rewritten
    # and what this discards is the checkpoint.
    parser.add_argument(
        "--restart", action="store_true", help="Discard the checkpoint of an interrupted run and start over."
    )
    add_device_option(parser)


def add_device_option(parser: argparse.ArgumentParser) -> None:
    """``--device``, for every stage that runs a network (the training stages get it with their options)."""
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA if available), cpu, cuda or cuda:N (default: %(default)s).",
    )
