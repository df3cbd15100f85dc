"""Print the library-code ``deps`` of each stage in dvc.yaml, derived from the imports (tests/test_dvc.py).

Two blocks per stage: what the stage's run imports, then the block every stage shares (the CLI builds its
parser from every stage's command module). A package whose every module is needed is one directory dep.

    python scripts/render_dvc_deps.py            # print
    python scripts/render_dvc_deps.py --write    # rewrite the code deps in dvc.yaml in place
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_COMMENT = (
    "# the CLI, the stage registry, and every stage's command module with its module-level imports "
    "(see above)"
)


def _compress(files: set[str], shared: set[str] | None = None) -> list[str]:
    """Files -> deps, no dep inside another. A package directory stands for its files where the stage runs
    every module of it, or (``shared`` given: a stage's own code) two or more modules of it beyond the
    shared parser block, as a person would write it; single files elsewhere."""
    deps: set[str] = set(files)
    for directory in sorted({str(Path(f).parent) for f in files}, key=len):
        inside = {f for f in files if f.startswith(directory + "/")}
        modules = {str(p.relative_to(REPO)) for p in (REPO / directory).rglob("*.py")}
        coarse = shared is not None and len(inside - shared) >= 2
        if directory != "src/cxrpriv" and inside and (modules <= files or coarse):
            deps = (deps - inside) | {directory}
    return sorted(d for d in deps if not any(d.startswith(o + "/") for o in deps if o != d))


def stage_deps(stage: str) -> tuple[list[str], list[str]]:
    """(the stage's own code deps, the shared parser block) of one dvc.yaml stage."""
    from tests.test_dvc import _module_file, _parser_modules, stage_code_files

    shared = {str(f.relative_to(REPO)) for m in _parser_modules() if (f := _module_file(m))}
    own = _compress(stage_code_files(stage), shared)
    shared_deps = [d for d in _compress(shared) if not any(d.startswith(o + "/") for o in own)]
    return [d for d in own if d not in shared_deps], shared_deps


def _rewrite(text: str, stage: str) -> str:
    own, shared = stage_deps(stage)
    pattern = re.compile(
        rf"(\n  {stage}:\n(?:.*\n)*?    deps:\n)((?:      (?:- src/.*|# .*)\n|      - (?!src/).*\n)+)"
    )
    match = pattern.search(text)
    if match is None:
        raise SystemExit(f"dvc.yaml: no deps block for stage {stage}")
    data = [
        line for line in match.group(2).splitlines() if line.strip().startswith("- ") and "- src/" not in line
    ]
    block = [
        *data,
        *(f"      - {d}" for d in own),
        f"      {SHARED_COMMENT}",
        *(f"      - {d}" for d in shared),
    ]
    return text[: match.start(2)] + "\n".join(block) + "\n" + text[match.end(2) :]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    sys.path.insert(0, str(REPO))
    import yaml

    path = REPO / "dvc.yaml"
    text = path.read_text()
    stages = list(yaml.safe_load(text)["stages"])
    if "--write" in argv:
        for stage in stages:
            text = _rewrite(text, stage)
        path.write_text(text)
        return 0
    for stage in stages:
        own, shared = stage_deps(stage)
        print(f"{stage}:", *own, SHARED_COMMENT, *shared, sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
