"""The stage registry agrees with the code, components/, dvc.yaml, params.yaml and the pipeline; the stage
contract (StageContext) is what the CLI and the components hand a run function."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from cxrpriv.cli import build_parser
from cxrpriv.pipeline_edge import component_context
from cxrpriv.stages.contract import StageCommand, StageContext
from cxrpriv.stages.registry import STAGES, pipeline_stage_names, pipeline_stages, stage_commands, stage_names
from tests.conftest import PARAMS, REPO

SRC = REPO / "src"


def _imported_modules(path: Path, in_functions: bool = True) -> set[str]:
    """The absolute module names a file's import statements name (relative imports are not used here)."""
    tree = ast.parse(path.read_text(), str(path))
    nodes = ast.walk(tree) if in_functions else tree.body
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_every_row_names_a_command_a_run_function_and_a_component():
    assert len(set(stage_names())) == len(STAGES)
    for stage, command in zip(STAGES, stage_commands(), strict=True):
        assert isinstance(command, StageCommand) and command.name == stage.name
        assert stage.command_module == f"{stage.package}.command", stage
        run = importlib.import_module(f"{stage.package}.run")
        function = getattr(run, f"run_{stage.name}")
        parameters = list(inspect.signature(function).parameters)
        assert parameters[0] == "config" and "context" in parameters, (stage.name, parameters)
        component = REPO / "components" / stage.component / "component.py"
        assert component.is_file(), component
        assert stage.name in {n.name for n in ast.parse(component.read_text()).body if hasattr(n, "name")}


def test_components_call_the_run_function_not_the_cli_spec():
    for stage in STAGES:
        imported = _imported_modules(REPO / "components" / stage.component / "component.py")
        assert f"{stage.package}.run" in imported, stage.name
        assert not {m for m in imported if m.endswith(".command") or m == "cxrpriv.cli"}, stage.name


def test_dvc_params_and_the_pipeline_have_every_stage():
    dvc_stages = list(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    assert dvc_stages == [stage.dvc_stage for stage in pipeline_stages()]
    params = yaml.safe_load(PARAMS.read_text())
    assert all(name in params for name in stage_names())  # the CLI reads every stage's section
    from pipelines.cxr_privacy import STAGES as PIPELINE_STAGES
    from pipelines.cxr_privacy import stage_defaults

    assert pipeline_stage_names() == PIPELINE_STAGES
    assert {f"{name}_config" for name in pipeline_stage_names()} <= set(stage_defaults(PARAMS))


def test_a_stage_not_in_the_pipeline_yet_is_in_neither_dvc_nor_the_pipeline():
    # in_pipeline=False: CLI and component only, until dvc.yaml and the pipeline wire it in (and the flag
    # goes back to True): half-wiring it would make `dvc repro` and the KFP run disagree.
    pending = [stage for stage in STAGES if not stage.in_pipeline]
    dvc_stages = set(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"])
    source = (REPO / "pipelines" / "cxr_privacy.py").read_text()
    for stage in pending:
        assert stage.dvc_stage not in dvc_stages, stage.name
        assert f"{stage.name}_config" not in source, stage.name


def test_no_module_imports_the_cli_and_the_cli_imports_no_stage():
    # The contract and the registry are what stages, components and the CLI share; the CLI is a leaf.
    for path in sorted((SRC / "cxrpriv").rglob("*.py")):
        if path.name != "cli.py":
            assert "cxrpriv.cli" not in _imported_modules(path), path
    cli = SRC / "cxrpriv" / "cli.py"
    assert _imported_modules(cli) == _imported_modules(cli, in_functions=False)  # no function-level import
    packages = {stage.package for stage in STAGES}
    for path in [cli, *sorted((SRC / "cxrpriv" / "stages").glob("*.py"))]:
        imported = _imported_modules(path)
        assert not {m for m in imported if any(m == p or m.startswith(p + ".") for p in packages)}, path


def test_the_cli_builds_the_context_from_the_shared_options():
    parser = build_parser()
    default = StageContext.from_args(parser.parse_args(["train_reid"]), "default")
    assert default == StageContext(
        out=Path("data/reid"),
        metrics=Path("metrics/train_reid.json"),
        plots=Path("plots/train_reid"),
        profile="default",
        model_name="cxrpriv-verifier",
    )
    unregistered = StageContext.from_args(parser.parse_args(["train_reid", "--model-name", ""]), "default")
    assert not unregistered.register_model and unregistered.registered_name("cxrpriv-verifier") is None
    args = parser.parse_args(
        ["train_classifier", "--no-progress", "--restart", "--device", "cpu", "--checkpoint-dir", "ck"]
    )
    context = StageContext.from_args(args, "paper")
    assert (context.progress, context.restart, context.device, context.checkpoint_dir, context.profile) == (
        False,
        True,
        "cpu",
        Path("ck"),
        "paper",
    )
    # A stage without progress bars or training options keeps the defaults.
    priors = StageContext.from_args(parser.parse_args(["priors"]), "default")
    assert priors.progress and priors.device == "auto" and priors.checkpoint_dir is None
    assert priors.out == Path("data/priors") and priors.metrics == Path("metrics/priors.json")


def test_the_context_coerces_paths_and_says_whether_and_where_to_register():
    context = StageContext("out", "m.json", "plots", "default", checkpoint_dir="ck", tags={"a": "b"})
    assert context.out == Path("out") and context.checkpoint_dir == Path("ck") and context.tags == {"a": "b"}
    assert context.registered_name("cxrpriv-x") == "cxrpriv-x"
    assert StageContext("o", "m", "p", "d", model_name="mine").registered_name("cxrpriv-x") == "mine"
    assert StageContext("o", "m", "p", "d", register_model=False).registered_name("cxrpriv-x") is None
    with pytest.raises(AttributeError):
        context.out = Path("elsewhere")  # type: ignore[misc]


def test_component_context_writes_the_summary_beside_the_kfp_metrics(tmp_path: Path):
    metrics = SimpleNamespace(path=str(tmp_path / "exec" / "metrics"))
    plots = SimpleNamespace(path=str(tmp_path / "exec" / "plots"))
    context = component_context("train_reid", "paper", tmp_path / "model", metrics, plots)
    assert context == StageContext(
        out=tmp_path / "model",
        metrics=tmp_path / "exec" / "train_reid_summary.json",
        plots=tmp_path / "exec" / "plots",
        profile="paper",
        progress=False,
    )
    resumable = component_context("train_reid", "paper", "m", metrics, plots, checkpoint_dir="/ck")
    assert resumable.checkpoint_dir == Path("/ck")
    own = component_context("synthesize", "default", "c", metrics, plots, metrics_file="x/metrics.json")
    assert own.metrics == Path("x/metrics.json")
