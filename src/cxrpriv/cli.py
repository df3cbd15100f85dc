"""The ``cxrpriv`` command: one subcommand per stage, every option defaulting from ``params.yaml``.

Options are generated from each stage's typed config, so ``--help`` lists exactly the keys of the params
section. An option given on the command line overrides the params file for that run only. The params file is
``--params``, else ``./params.yaml``, else the defaults shipped with the package (``cxrpriv.config``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrpriv.config import (
    PACKAGED_PARAMS_FILE,
    ConfigError,
    default_params_file,
    load_stage_config,
    read_params,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageCommand:
    name: str
    help: str
    config_cls: type
    # Adds the stage's I/O options (paths), which are not part of params.yaml.
    add_io: Callable[[argparse.ArgumentParser], None]
    # Runs the stage: (config, parsed args, profile name) -> exit code.
    run: Callable[[Any, argparse.Namespace, str], int]


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


def _stage_commands() -> list[StageCommand]:
    # Imported lazily so `cxrpriv --help` stays fast and stages pull heavy dependencies only when used.
    from cxrpriv.classify.command import TRAIN_CLASSIFIER
    from cxrpriv.ingest.command import PREPROCESS
    from cxrpriv.priors.command import PRIORS
    from cxrpriv.reid.command import TRAIN_REID
    from cxrpriv.synth.command import SYNTHESIZE

    return [SYNTHESIZE, PRIORS, PREPROCESS, TRAIN_REID, TRAIN_CLASSIFIER]


def _add_config_options(parser: argparse.ArgumentParser, config_cls: type) -> None:
    group = parser.add_argument_group("stage parameters (default: from the params file, under the profile)")
    hints = typing.get_type_hints(config_cls)
    for field in dataclasses.fields(config_cls):
        flag = "--" + field.name.replace("_", "-")
        kind = hints[field.name]
        if typing.get_origin(kind) is typing.Literal:
            metavar = "{" + ",".join(str(choice) for choice in typing.get_args(kind)) + "}"
        else:
            metavar = {int: "N", float: "X", bool: "BOOL", str: "TEXT"}.get(kind, "JSON")
        help_text = field.metadata.get("help", "").replace("%", "%%")  # argparse %-formats help
        group.add_argument(flag, dest=f"cfg_{field.name}", default=None, metavar=metavar, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrpriv", description="Privacy-preserving release of chest radiograph datasets, stage by stage."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="Log debug messages.")
    subparsers = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    for command in _stage_commands():
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help)
        sub.add_argument(
            "--params",
            type=Path,
            default=None,
            help="Params file (default: ./params.yaml if present, else the defaults shipped with cxrpriv).",
        )
        sub.add_argument(
            "--profile",
            default=None,
            help="Profile to apply over the stage section, e.g. 'paper' "
            "(default: the params file's 'profile' key).",
        )
        command.add_io(sub)
        _add_config_options(sub, command.config_cls)
        sub.set_defaults(command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Codec plugins log every tile at INFO; keep the stage log readable.
    for noisy in ("openjpeg", "pylibjpeg", "rle"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    command: StageCommand = args.command
    overrides = {
        name[4:]: value for name, value in vars(args).items() if name.startswith("cfg_") and value is not None
    }
    params_file = args.params or default_params_file()
    if params_file == PACKAGED_PARAMS_FILE:
        log.info("no ./params.yaml here: using the defaults shipped with cxrpriv (%s)", params_file)
    try:
        profile = args.profile or read_params(params_file).get("profile", "default")
        config = load_stage_config(command.config_cls, command.name, params_file, profile, overrides)
    except ConfigError as exc:
        parser.exit(2, f"cxrpriv {command.name}: error: {exc}\n")
    return command.run(config, args, profile)


if __name__ == "__main__":
    sys.exit(main())
