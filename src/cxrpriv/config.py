"""Typed stage configs, filled from ``params.yaml`` and a profile.

``params.yaml`` holds one section per stage with the *default* profile's values, a top-level ``profile`` key
that names the active profile, and ``profiles.<name>.<stage>`` blocks whose keys override the stage section.
The CLI (``--profile paper``), ``dvc exp run -S profile=paper`` and the KFP pipeline's defaults all go through
:func:`load_stage_config`, so there is one place where a value is decided.

Which file: the one given (``--params``), else ``./params.yaml`` when the working directory has one, else
the defaults shipped inside the package (``cxrpriv/params.yaml``, in the repository a symlink to the root
``params.yaml``: one file, which DVC reads).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# A stage's config class: a dataclass.
C = TypeVar("C", bound="DataclassInstance")

# The working directory's params file (the repository root, a DVC experiment) is used when there is one ...
DEFAULT_PARAMS_FILE = Path("params.yaml")
# ... else the defaults shipped with the package, so that the CLI also runs outside the repository. In the
# repository this is a symlink to the root params.yaml, which stays a regular file because DVC reads a
# symlink in a git revision as its target's name, not as YAML (`dvc params diff` would see no params).
PACKAGED_PARAMS_FILE = Path(__file__).with_name("params.yaml")


class ConfigError(ValueError):
    """A params file, profile or option value that cannot be used; the message says which and why."""


def help_field(help: str) -> Any:
    """A required dataclass field that carries its ``--help`` text."""
    return dataclasses.field(metadata={"help": help})


def default_params_file() -> Path:
    """``./params.yaml`` if the working directory has one, else the packaged defaults."""
    return DEFAULT_PARAMS_FILE if DEFAULT_PARAMS_FILE.is_file() else PACKAGED_PARAMS_FILE


def read_params(path: Path | None = None) -> dict[str, Any]:
    """Read a params file (``None``: :func:`default_params_file`), with an error that names it when it is
    missing or malformed."""
    path = default_params_file() if path is None else Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def stage_values(params: Mapping[str, Any], stage: str, profile: str | None = None) -> dict[str, Any]:
    """The raw values of one stage under a profile (``None``: the file's ``profile`` key)."""
    profile = profile or params.get("profile", "default")
    if stage not in params:
        raise ConfigError(f"params has no section '{stage}'")
    values = dict(params[stage])
    if profile != "default":
        profiles = params.get("profiles", {})
        if profile not in profiles:
            known = ", ".join(["default", *profiles])
            raise ConfigError(f"unknown profile '{profile}' (known: {known})")
        override = profiles[profile].get(stage, {}) or {}
        unknown = set(override) - set(values)
        if unknown:
            raise ConfigError(f"profile '{profile}' overrides unknown {stage} keys: {sorted(unknown)}")
        values.update(override)
    return values


def build_config(cls: type[C], values: Mapping[str, Any], source: str = "params") -> C:
    """Instantiate a config dataclass, checking for missing and unknown keys and coercing scalar types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ConfigError(f"{source}: unknown {cls.__name__} keys: {sorted(unknown)}")
    missing = [name for name in fields if name not in values]
    if missing:
        raise ConfigError(f"{source}: missing {cls.__name__} keys: {missing}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: coerce(values[name], hints[name], f"{source}: {name}") for name in fields}
    config = cls(**kwargs)
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config


def load_stage_config(
    cls: type[C],
    stage: str,
    params_file: Path | None = None,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> C:
    """One stage's typed config from a params file (``None``: :func:`default_params_file`) under a profile
    (``None``: the file's ``profile`` key), with ``overrides`` applied last."""
    params_file = default_params_file() if params_file is None else params_file
    params = read_params(params_file)
    values = stage_values(params, stage, profile)
    values.update(overrides or {})
    return build_config(cls, values, source=f"{params_file} [{stage}]")


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Coerce a YAML/CLI value to a field's declared type, or raise a ConfigError naming the field."""
    coercer = _COERCE_BY_ORIGIN.get(typing.get_origin(hint)) or _COERCE_BY_TYPE.get(hint)
    # A type this module does not know (a Path, a nested dataclass) is passed through as the YAML gave it.
    return value if coercer is None else coercer(value, hint, where)


def _coerce_optional(value: Any, hint: Any, where: str) -> Any:
    """``X | None``: ``None`` stays, anything else is coerced to the first other member."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if value is None:
        return None
    return coerce(value, args[0], where)


def _coerce_literal(value: Any, hint: Any, where: str) -> Any:
    allowed = typing.get_args(hint)
    if value not in allowed:
        raise ConfigError(f"{where}: {value!r} is not one of {list(allowed)}")
    return value


def _coerce_mapping(value: Any, hint: Any, where: str) -> dict[Any, Any]:
    """A mapping, or a string holding one in JSON (what a CLI option or a KFP parameter carries)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: expected a mapping (YAML or JSON), got {value!r}") from exc
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    key_t, val_t = typing.get_args(hint)
    return {coerce(k, key_t, where): coerce(v, val_t, where) for k, v in value.items()}


def _coerce_sequence(value: Any, hint: Any, where: str) -> list[Any] | tuple[Any, ...]:
    """A sequence, or a comma-separated string (what a CLI option carries)."""
    origin = typing.get_origin(hint)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    (item_t, *_) = typing.get_args(hint)
    items = [coerce(v, item_t, where) for v in value]
    return tuple(items) if origin is tuple else items


def _coerce_bool(value: Any, hint: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "1", "yes", "false", "0", "no"}:
        return value.lower() in {"true", "1", "yes"}
    raise ConfigError(f"{where}: expected true/false, got {value!r}")


def _coerce_scalar(value: Any, hint: type[int | float | str], where: str) -> int | float | str:
    # int(2.5) would silently truncate; a float is an int only when it is whole.
    if hint is int and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    try:
        return hint(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}") from exc


_Coercer = typing.Callable[[Any, Any, str], Any]
# Keyed by typing.get_origin(hint) for generic hints, by the hint itself for plain types.
_COERCE_BY_ORIGIN: dict[Any, _Coercer] = {
    typing.Union: _coerce_optional,
    types.UnionType: _coerce_optional,
    typing.Literal: _coerce_literal,
    dict: _coerce_mapping,
    Mapping: _coerce_mapping,
    list: _coerce_sequence,
    tuple: _coerce_sequence,
}
_COERCE_BY_TYPE: dict[Any, _Coercer] = {
    bool: _coerce_bool,
    int: _coerce_scalar,
    float: _coerce_scalar,
    str: _coerce_scalar,
}
