"""The ``cxrpriv`` command: one subcommand per stage, every option defaulting from ``params.yaml``.

Options are generated from each stage's typed config, so ``--help`` lists exactly the keys of the params
section. An option given on the command line overrides the params file for that run only. The params file is
``--params``, else ``./params.yaml``, else the defaults shipped with the package (``cxrpriv.config``).
The stages are the rows of :data:`cxrpriv.stages.registry.STAGES`; each gets the config and a
:class:`~cxrpriv.stages.contract.StageContext` built from its output options.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import typing
from collections.abc import Sequence
from pathlib import Path

from cxrpriv.config import (
    PACKAGED_PARAMS_FILE,
    ConfigError,
    default_params_file,
    load_stage_config,
    read_params,
)
from cxrpriv.stages.contract import StageCommand, StageContext
from cxrpriv.stages.registry import stage_commands

log = logging.getLogger(__name__)


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
    for command in stage_commands():
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
    return command.run(config, args, StageContext.from_args(args, profile))


if __name__ == "__main__":
    sys.exit(main())
