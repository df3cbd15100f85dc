"""dvc.yaml agrees with params.yaml and with the code each stage imports, and a real `dvc repro` runs the
stages, then is a no-op."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cxrpriv.stages.registry import STAGES
from scripts.render_dvc_params import stage_param_keys
from tests.conftest import REPO

BIN = Path(sys.executable).parent


def test_every_stage_declares_its_params_key_by_key():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        assert stage["params"] == stage_param_keys(params, name), name


# --- code dependencies: every library module a stage runs is one of its DVC deps -------------------------

SRC = REPO / "src"
CLI = "cxrpriv.cli"


def _module_file(name: str) -> Path | None:
    """The file of a cxrpriv module (a package is its ``__init__.py``), or None if ``name`` is no module."""
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


class _ImportCollector(ast.NodeVisitor):
    """The modules named by a module's import statements, optionally skipping function bodies; imports
    under ``if TYPE_CHECKING:`` never run and are skipped."""

    def __init__(self, module: str, is_package: bool, in_functions: bool) -> None:
        self.package = module.split(".") if is_package else module.split(".")[:-1]
        self.in_functions = in_functions
        self.names: set[str] = set()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if self.in_functions:
            self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        if getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING":
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.names.update(alias.name for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:  # relative: from .x import y
            base = self.package[: len(self.package) - node.level + 1]
            module = ".".join([*base, *([node.module] if node.module else [])])
        else:
            module = node.module or ""
        self.names.add(module)
        # `from cxrpriv.training import loop` imports the submodule cxrpriv.training.loop
        self.names.update(f"{module}.{alias.name}" for alias in node.names)


def _imports(module: str, in_functions: bool) -> set[str]:
    """The cxrpriv modules that importing ``module`` (and, with ``in_functions``, calling any of its
    functions) imports directly; importing a submodule imports its parent packages too."""
    path = _module_file(module)
    assert path is not None, module
    collector = _ImportCollector(module, path.name == "__init__.py", in_functions)
    collector.visit(ast.parse(path.read_text(), str(path)))
    found = set()
    for name in collector.names:
        parts = name.split(".")
        if parts[0] != "cxrpriv":
            continue
        found.update(p for i in range(1, len(parts) + 1) if _module_file(p := ".".join(parts[:i])))
    return found


def _closure(roots: set[str], in_functions: bool) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(_imports(module, in_functions) - seen)
    return seen


def _stage_command_modules() -> dict[str, str]:
    """Stage name -> its command module, from the stage registry (``cxrpriv.stages.registry.STAGES``)."""
    return {stage.dvc_stage: stage.command_module for stage in STAGES}


def _parser_modules() -> set[str]:
    """What every `cxrpriv <stage>` imports before the stage runs: the CLI (with the stage registry), and
    every stage's command module, which the registry imports by name to build the parser, with what those
    import at module level (their `run` functions import the rest when called)."""
    return _closure({CLI, *_stage_command_modules().values()}, in_functions=False)


def stage_code_files(stage: str) -> set[str]:
    """Repository-relative paths of every library file that `cxrpriv <stage>` imports, or may import."""
    modules = _parser_modules() | _closure({_stage_command_modules()[stage]}, in_functions=True)
    return {str(f.relative_to(REPO)) for m in modules if (f := _module_file(m))}


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep.rstrip("/") + "/") for dep in deps)


def test_the_import_graph_sees_function_level_and_cli_imports():
    # Guards the derivation below against reading too little: train_reid's command imports its run module
    # only inside a function, and that module imports these inside its run function; every stage runs under
    # the CLI, which imports the registry, and through it all stages' commands.
    files = stage_code_files("train_reid")
    assert {"src/cxrpriv/reid/run.py", "src/cxrpriv/reid/stage.py", "src/cxrpriv/tracking.py"} <= files
    assert {"src/cxrpriv/cli.py", "src/cxrpriv/stages/registry.py", "src/cxrpriv/stages/contract.py"} <= files
    assert "src/cxrpriv/classify/command.py" in files  # imported by the CLI's parser
    assert not {"src/cxrpriv/classify/run.py", "src/cxrpriv/classify/stage.py"} & files  # ... not run


def test_every_stage_depends_on_the_library_code_it_imports():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    commands = _stage_command_modules()
    assert set(stages) <= set(commands), f"stages without a CLI command: {set(stages) - set(commands)}"
    missing = {}
    for name, stage in stages.items():
        assert stage["cmd"].startswith(f"cxrpriv {name} "), name
        lacking = sorted(p for p in stage_code_files(name) if not _covered(p, stage["deps"]))
        if lacking:
            missing[name] = lacking
    assert not missing, "dvc.yaml deps miss library code the stage imports: " + json.dumps(missing, indent=1)


def test_stage_code_deps_are_tight():
    # The other direction: a code dep that covers nothing the stage imports (stale after a move, or too
    # broad) reruns the stage for nothing; one covered by another dep of the stage is noise.
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    problems = []
    for name, stage in stages.items():
        files = stage_code_files(name)
        code = [dep for dep in stage["deps"] if dep.startswith("src/")]
        for dep in code:
            if not any(_covered(f, [dep]) for f in files):
                problems.append(f"{name}: {dep} covers no module the stage imports")
            if any(other != dep and _covered(dep, [other]) for other in code):
                problems.append(f"{name}: {dep} is already covered by another dep")
    assert not problems, "\n".join(problems)


def test_no_module_level_import_cycle():
    # The stage contract and registry sit below the commands, which sit below the CLI: a cycle (say, a
    # command importing the CLI) would make import order matter. A module importing its own package is no
    # cycle: the package is initialized first.
    modules = []
    for path in sorted((SRC / "cxrpriv").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    graph = {m: _imports(m, in_functions=False) for m in modules}
    graph = {m: {n for n in names if n != m and not m.startswith(n + ".")} for m, names in graph.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for other in sorted(graph.get(module, ())):
            if state.get(other) == 1:
                return [*path[path.index(other) :], other] if other in path else [module, other]
            if other not in state and (cycle := visit(other, [*path, other])):
                return cycle
        state[module] = 2
        return None

    for module in modules:
        if module not in state:
            cycle = visit(module, [module])
            assert cycle is None, " -> ".join(cycle)


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "CXRPRIV_PIPELINE_RUN": "dvc-test"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _tiny_params() -> dict:
    """params.yaml shrunk so that every stage runs in seconds."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["synthesize"].update(
        # enough patients with two films that the verifier's train split has same-patient pairs
        n_patients=10,
        image_size=64,
        max_images_per_patient=3,
        naive_attack_pairs=20,
        workers=1,
        broken_per_kind=1,
        mask_shard_size=8,
    )
    params["preprocess"].update(image_size=32, workers=1)
    params["train_reid"].update(
        image_size=32, width=4, depth=2, max_epochs=1, max_steps_per_epoch=2, n_boot=10, retrieval_k=5
    )
    params["train_classifier"].update(
        image_size=32, width=4, depth=2, stem=1, max_epochs=1, max_steps_per_epoch=2, n_boot=10, batch_size=8
    )
    params["train_anonymizer"].update(
        widths=[4, 8], max_epochs=1, max_steps_per_epoch=2, batch_size=8, films_per_patient=2
    )
    params["profiles"]["siamese"]["train_reid"]["max_epochs"] = 1  # the evaluate stage's second family
    params["evaluate"].update(attacker_seeds=[1], other_attacker_seeds=[1])
    return params


def _dvc_project(repo: Path, params: dict) -> None:
    """A DVC project in ``repo`` with this repository's dvc.yaml, code and keys, and ``params``."""
    repo.mkdir()
    shutil.copy(REPO / "dvc.yaml", repo / "dvc.yaml")
    shutil.copy(REPO / ".dvcignore", repo / ".dvcignore")
    shutil.copytree(REPO / "keys", repo / "keys")
    shutil.copytree(REPO / "src", repo / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run(["git", "init", "-q"], repo)
    _run([str(BIN / "dvc"), "init", "-q"], repo)


@pytest.mark.slow
def test_dvc_repro_runs_then_is_a_no_op(tmp_path: Path):
    repo = tmp_path / "repo"
    params = _tiny_params()
    _dvc_project(repo, params)

    first = _run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage 'synthesize'" in first
    assert "Running stage 'preprocess'" in first
    assert (repo / "data" / "synthetic" / "dataset" / "Data_Entry_2017.csv").is_file()
    assert (repo / "data" / "ingest" / "manifest.parquet").is_file()
    assert (repo / "dvc.lock").is_file()
    # every stage ran, down to the release decision and the (refused: a one-epoch anonymizer) release
    assert all(f"Running stage '{stage}'" in first for stage in ("train_anonymizer", "anonymize", "evaluate"))
    decision = json.loads((repo / "data" / "evaluate" / "release_decision.json").read_text())
    assert decision["decision"] == "fail"
    release = json.loads((repo / "data" / "release" / "release_manifest.json").read_text())
    assert release["status"] == "refused"
    second = _run([str(BIN / "dvc"), "repro"], repo)
    assert "Running stage" not in second

    metrics = json.loads(_run([str(BIN / "dvc"), "metrics", "show", "--json"], repo))
    shown = json.dumps(metrics)
    assert "naive_attacker_auc" in shown
    assert "files_processed" in shown
    # a params change is seen by DVC (against the last commit) and re-runs the stage
    _run(["git", "add", "-A"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "baseline"], repo)
    params["synthesize"]["seed"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert "synthesize.seed" in _run([str(BIN / "dvc"), "params", "diff"], repo)
    assert "Running stage 'synthesize'" in _run([str(BIN / "dvc"), "repro"], repo)


@pytest.mark.slow
def test_the_cli_parser_imports_no_module_the_graph_does_not_see():
    # The static graph says what building the parser imports; check it against a real run (a module-level
    # call into a function that imports, or an importlib call, would escape the graph).
    code = (
        "import sys; from cxrpriv.cli import build_parser; build_parser(); "
        "print('\\n'.join(m for m in sys.modules if m.split('.')[0] == 'cxrpriv'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(done.stdout.split()) <= _parser_modules()


# --- the source from params: the user's own folder, outside the repository --------------------------------

DVC = str(BIN / "dvc")


def _own_archive_params(archive: Path, *, labels: bool, reread: bool) -> dict:
    """Tiny params whose source is ``archive`` (a folder holding dataset/dicom and the tables, as the
    synthesizer lays them out, and a key file): no answer key, as for real data."""
    params = _tiny_params()
    params["source"] = {
        "root": str(archive),
        "dicom": str(archive / "dataset" / "dicom"),
        "labels": str(archive / "dataset" / "Data_Entry_2017.csv") if labels else "",
        "reread": str(archive / "dataset" / "reread.csv") if reread else "",
        "answer_key": "",
        "deid_key_file": str(archive / "deid.key"),
    }
    params["train_classifier"]["prior_correction"] = "forward"
    return params


def test_a_folder_source_given_in_params_is_the_dependency_and_synthesize_is_not_needed(tmp_path: Path):
    archive = tmp_path / "archive"  # outside the DVC project
    (archive / "dataset" / "dicom").mkdir(parents=True)
    (archive / "dataset" / "dicom" / "a.dcm").write_bytes(b"not read by a dry run")
    (archive / "deid.key").write_text("k" * 64)
    repo = tmp_path / "repo"
    _dvc_project(repo, _own_archive_params(archive, labels=False, reread=False))

    # the stages the release needs: every one but synthesize, whose cohort nothing reads now
    needed = _run([DVC, "dag", "--dot", "release"], repo)
    assert "synthesize" not in needed
    for stage in ("priors", "preprocess", "train_classifier", "evaluate", "release"):
        assert stage in needed, stage
    dry = _run([DVC, "repro", "--dry", "preprocess"], repo)
    assert "Running stage 'synthesize'" not in dry
    preprocess = next(line for line in dry.splitlines() if line.startswith("> cxrpriv preprocess"))
    assert f'--source "{archive / "dataset" / "dicom"}" --labels ""' in preprocess
    assert f'--key-file "{archive / "deid.key"}"' in preprocess
    # the archive is the preprocess stage's dependency (not an output of any stage, so nothing caches it)
    status = _run([DVC, "status", "preprocess", "--json"], repo)
    assert str(archive) in status


def test_empty_source_values_mean_absent_to_the_stage_commands(tmp_path: Path):
    from cxrpriv.classify.command import DEFAULT_ANSWER_KEY
    from cxrpriv.cli import build_parser
    from cxrpriv.priors.command import DEFAULT_REREAD, reread_inputs

    parser = build_parser()
    assert parser.parse_args(["preprocess", "--labels", ""]).labels is None
    assert parser.parse_args(["priors", "--labels", ""]).labels is None
    assert parser.parse_args(["evaluate", "--answer-key", ""]).answer_key is None
    assert parser.parse_args(["train_classifier", "--answer-key", ""]).answer_key is None
    assert parser.parse_args(["train_classifier"]).answer_key == DEFAULT_ANSWER_KEY
    # no re-read table: the priors stage is skipped (tests/priors/test_priors_command.py)
    assert reread_inputs(parser.parse_args(["priors", "--reread", ""]).reread, None) == []
    assert reread_inputs(parser.parse_args(["priors"]).reread, None) == [(DEFAULT_REREAD, "auto")]


@pytest.mark.slow
def test_dvc_repro_on_an_own_folder_source_without_an_answer_key(tmp_path: Path):
    # A real tiny archive (DICOM files and tables, no answer key) outside the project: ingest, priors and
    # the classifier run on it; the archive is hashed as a dependency and never cached.
    from cxrpriv.synth.cohort import synthesize
    from tests.conftest import tiny_synth_config

    archive = tmp_path / "archive"
    synthesize(tiny_synth_config(n_patients=8, broken_per_kind=0), archive, progress=False)
    shutil.rmtree(archive / "answer_key")  # a real archive has none
    (archive / "deid.key").write_text("an operator's key, kept out of the repository: 0123456789abcdef")
    repo = tmp_path / "repo"
    params = _own_archive_params(archive, labels=True, reread=True)
    _dvc_project(repo, params)

    out = _run([DVC, "repro", "train_classifier"], repo)
    assert "Running stage 'synthesize'" not in out
    assert not (repo / "data" / "synthetic").exists()
    assert all(f"Running stage '{s}'" in out for s in ("priors", "preprocess", "train_classifier"))
    classifier = json.loads((repo / "metrics" / "train_classifier.json").read_text())
    assert classifier, "the classifier ran and wrote its metrics without an answer key"
    # its curves are a data series DVC draws (dvc.yaml's top-level plots)
    history = json.loads((repo / "plots" / "train_classifier" / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1.0] and "train_loss" in history[0]
    shown = json.loads(_run([DVC, "plots", "show", "--json", "plots/train_classifier/history.json"], repo))
    assert "train_loss" in json.dumps(shown)
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["preprocess"]
    assert str(archive) in {dep["path"] for dep in lock["deps"]}
    archived = {hashlib.md5(p.read_bytes()).hexdigest() for p in archive.rglob("*") if p.is_file()}
    cached = {p.parent.name + p.name for p in (repo / ".dvc" / "cache").rglob("*") if p.is_file()}
    assert not archived & cached, "a file of the archive was cached by DVC"
    assert "Running stage" not in _run([DVC, "repro", "train_classifier"], repo)
    # a new file in the archive is a changed dependency
    next((archive / "dataset" / "dicom").rglob("*.dcm")).unlink()
    assert "preprocess" in json.loads(_run([DVC, "status", "--json"], repo))


@pytest.mark.slow
def test_dvc_repro_on_an_own_archive_without_a_reread_table_trains_without_priors(
    tmp_path: Path, isolated_mlflow: str
):
    # `source.reread: ""`: the priors stage writes its skipped marker (no priors.json, which as a dependency
    # would stop DVC), and the classifier trains without priors, its config adjusted and recorded.
    import mlflow

    from cxrpriv.priors.output import PRIORS_FILE, PRIORS_SKIPPED_FILE
    from cxrpriv.synth.cohort import synthesize
    from tests.conftest import tiny_synth_config

    archive = tmp_path / "archive"
    synthesize(tiny_synth_config(n_patients=8, broken_per_kind=0), archive, progress=False)
    shutil.rmtree(archive / "answer_key")
    (archive / "dataset" / "reread.csv").unlink()  # an archive without radiologist re-reads
    (archive / "deid.key").write_text("an operator's key, kept out of the repository: 0123456789abcdef")
    repo = tmp_path / "repo"
    params = _own_archive_params(archive, labels=True, reread=False)  # prior_correction: forward
    _dvc_project(repo, params)

    out = _run([DVC, "repro", "train_classifier"], repo)
    assert all(f"Running stage '{s}'" in out for s in ("priors", "preprocess", "train_classifier"))
    priors = repo / "data" / "priors"
    assert json.loads((priors / PRIORS_SKIPPED_FILE).read_text())["reason"].startswith("no re-read table")
    assert not (priors / PRIORS_FILE).exists()
    assert json.loads((repo / "metrics" / "priors.json").read_text()) == {"skipped": 1}
    spec = json.loads((repo / "data" / "classifier" / "spec.json").read_text())
    assert spec["priors"] == {"source": "none"}
    client = mlflow.MlflowClient(tracking_uri=isolated_mlflow)
    experiment = client.get_experiment_by_name("cxr-privacy").experiment_id
    (run,) = client.search_runs([experiment], "tags.`cxrpriv.stage` = 'train_classifier'")
    assert run.data.params["train_classifier.prior_correction"] == "none"
    assert run.data.tags["cxrpriv.priors"] == "skipped"
    assert "Running stage" not in _run([DVC, "repro", "train_classifier"], repo)


def test_effective_params_diff_shows_what_a_profile_switch_changes(tmp_path: Path):
    # `dvc params diff` after `-S profile=paper` shows only `profile`; the effective values tool shows the
    # stage keys the paper profile changes (and no key it leaves alone).
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(REPO / "params.yaml", repo / "params.yaml")
    _run(["git", "init", "-q"], repo)
    _run(["git", "add", "params.yaml"], repo)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "params"], repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["profile"] = "paper"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    tool = [sys.executable, str(REPO / "scripts" / "effective_params.py"), "diff"]
    rows = {line.split()[0]: line.split()[1:] for line in _run(tool, repo).splitlines()[1:]}
    assert rows["profile"] == ["default", "paper"]
    assert rows["train_reid.backbone"] == ["small_cnn", "resnet50"]
    assert rows["train_classifier.backbone"] == ["small_cnn", "densenet121"]
    assert rows["synthesize.n_patients"] == ["1000", "4000"]
    assert "train_reid.seed" not in rows and "release.on_failed_gate" not in rows
    assert not any(key.startswith(("profiles.", "source.")) for key in rows)
