"""The table of stages: one row per stage, in pipeline order. Adding a stage adds one row here.

A row names the stage and where each of its parts lives: its command (``"module:ATTRIBUTE"`` of its
:class:`~cxrpriv.stages.contract.StageCommand`; the module is ``cxrpriv.<package>.command`` and the run
function is in ``cxrpriv.<package>.run``), its KFP component folder and its ``dvc.yaml`` stage. The stage name
is also the CLI subcommand, the ``params.yaml`` section, the MLflow ``cxrpriv.stage`` tag and the default
``metrics/<name>.json`` and ``plots/<name>/``. ``tests/test_stages.py`` checks the table against the code,
``components/``, ``dvc.yaml``, ``params.yaml`` and the pipeline.

A row with ``in_pipeline=False`` is a stage that is built (library, command, component, params section) but
not yet wired into ``dvc.yaml`` and the KFP pipeline: the CLI has it, :func:`pipeline_stages` leaves it out,
and the tests check that neither ``dvc.yaml`` nor the pipeline has it yet. Wiring it in is setting the flag
back to True together with its ``dvc.yaml`` stage and pipeline step.

Command modules are imported by name when the CLI builds its parser (:func:`stage_commands`): this module
imports no stage, the command modules import only the contract, and no module imports the CLI.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from cxrpriv.stages.contract import StageCommand


@dataclass(frozen=True)
class Stage:
    name: str  # CLI subcommand, params.yaml section, MLflow stage tag, metrics/<name>.json, plots/<name>/
    command: str  # "module:ATTRIBUTE" of the stage's StageCommand
    component: str = ""  # folder under components/ holding component.py (default: the name)
    dvc_stage: str = ""  # stage in dvc.yaml (default: the name)
    in_pipeline: bool = True  # False: CLI and component only, not yet in dvc.yaml / the KFP pipeline
    # params.yaml sections the stage reads besides its own (its dvc.yaml params list them too)
    reads_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "component", self.component or self.name)
        object.__setattr__(self, "dvc_stage", self.dvc_stage or self.name)

    @property
    def command_module(self) -> str:
        return self.command.partition(":")[0]

    @property
    def package(self) -> str:
        """The library package, e.g. ``cxrpriv.reid``."""
        return self.command_module.rpartition(".")[0]

    def load_command(self) -> StageCommand:
        module, _, attribute = self.command.partition(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, StageCommand) or command.name != self.name:
            raise TypeError(f"{self.command}: not the StageCommand of stage '{self.name}'")
        return command


# In pipeline order. The component folder and the dvc.yaml stage are the stage's name unless a row says
# otherwise (component=..., dvc_stage=...).
STAGES: tuple[Stage, ...] = (
    Stage("synthesize", "cxrpriv.synth.command:SYNTHESIZE"),
    Stage("priors", "cxrpriv.priors.command:PRIORS"),
    Stage("preprocess", "cxrpriv.ingest.command:PREPROCESS"),
    Stage("train_reid", "cxrpriv.reid.command:TRAIN_REID"),
    Stage("train_classifier", "cxrpriv.classify.command:TRAIN_CLASSIFIER"),
    Stage("train_anonymizer", "cxrpriv.anonymize.command:TRAIN_ANONYMIZER"),
    Stage("anonymize", "cxrpriv.anonymize_dataset.command:ANONYMIZE"),
    # evaluate retrains train_reid attacker families (profiles) and a train_classifier classifier
    Stage("evaluate", "cxrpriv.evaluate.command:EVALUATE", reads_params=("train_reid", "train_classifier")),
    Stage("release", "cxrpriv.release.command:RELEASE"),
)


def stage_names() -> tuple[str, ...]:
    """Every stage, the CLI's subcommands."""
    return tuple(stage.name for stage in STAGES)


def pipeline_stages() -> tuple[Stage, ...]:
    """The stages that ``dvc.yaml`` and the KFP pipeline run, in order (rows with ``in_pipeline``)."""
    return tuple(stage for stage in STAGES if stage.in_pipeline)


def pipeline_stage_names() -> tuple[str, ...]:
    return tuple(stage.name for stage in pipeline_stages())


def stage_commands() -> list[StageCommand]:
    """Every stage's command, in table order (imports every command module: they keep heavy imports inside
    their run functions, so this stays fast)."""
    return [stage.load_command() for stage in STAGES]
