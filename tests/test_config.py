from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cxrpriv.cli import build_parser, main
from cxrpriv.config import (
    PACKAGED_PARAMS_FILE,
    ConfigError,
    build_config,
    default_params_file,
    load_stage_config,
    read_params,
    stage_values,
)
from cxrpriv.synth.command import SYNTHESIZE
from cxrpriv.synth.config import SynthesizeConfig
from tests.conftest import PARAMS, REPO


def test_default_and_paper_profiles_resolve():
    params = read_params(PARAMS)
    default = stage_values(params, "synthesize", "default")
    paper = stage_values(params, "synthesize", "paper")
    assert paper["image_size"] == params["profiles"]["paper"]["synthesize"]["image_size"]
    assert paper["seed"] == default["seed"]  # keys the profile does not override are inherited
    config = load_stage_config(SynthesizeConfig, "synthesize", PARAMS, "paper")
    assert config.image_size == paper["image_size"]


def test_profile_key_in_file_selects_profile(tmp_path: Path):
    params = read_params(PARAMS)
    params["profile"] = "paper"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    config = load_stage_config(SynthesizeConfig, "synthesize", path)
    assert config.n_patients == params["profiles"]["paper"]["synthesize"]["n_patients"]


def test_unknown_profile_and_keys_are_named(tmp_path: Path):
    params = read_params(PARAMS)
    with pytest.raises(ConfigError, match="unknown profile 'nope'"):
        stage_values(params, "synthesize", "nope")
    values = stage_values(params, "synthesize")
    with pytest.raises(ConfigError, match="unknown SynthesizeConfig keys: \\['typo'\\]"):
        build_config(SynthesizeConfig, {**values, "typo": 1})
    values.pop("seed")
    with pytest.raises(ConfigError, match="missing SynthesizeConfig keys: \\['seed'\\]"):
        build_config(SynthesizeConfig, values)
    with pytest.raises(ConfigError, match="params file not found"):
        read_params(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("n_patients", "many", "expected int"),
        ("n_patients", 1, "n_patients must be at least 2"),
        ("image_size", 32, "image_size must be within"),
        ("label_noise", "perhaps", "expected true/false"),
        ("transfer_syntax_mix", '{"jpeg_xl": 1}', "unknown transfer syntaxes"),
        ("transfer_syntax_mix", "not json", "expected a mapping"),
    ],
)
def test_bad_values_get_clear_errors(key, value, message):
    values = stage_values(read_params(PARAMS), "synthesize")
    values[key] = value
    with pytest.raises(ConfigError, match=message):
        build_config(SynthesizeConfig, values)


def test_cli_help_lists_every_parameter(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["synthesize", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(SynthesizeConfig):
        assert "--" + field.name.replace("_", "-") in text
        assert field.metadata["help"].split()[0] in text


def test_cli_rejects_bad_option_with_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["synthesize", "--params", str(PARAMS), "--image-size", "12"])
    assert exit_info.value.code == 2
    assert "image_size must be within" in capsys.readouterr().err


def test_the_packaged_defaults_are_the_repository_params_file():
    # One file, no copy to drift: in the repository the package's params.yaml links to the root one, which
    # DVC reads (and which stays a regular file: DVC reads a committed symlink as its target's name).
    assert PACKAGED_PARAMS_FILE.is_file()
    if PACKAGED_PARAMS_FILE.is_relative_to(REPO):  # an editable install, i.e. the repository itself
        assert PACKAGED_PARAMS_FILE.is_symlink()
        assert PACKAGED_PARAMS_FILE.resolve() == PARAMS.resolve()
        assert not PARAMS.is_symlink()


def test_the_cli_runs_outside_the_repository(tmp_path: Path, monkeypatch, capsys):
    # An empty working directory: no ./params.yaml, so both the help and the stage config come from the
    # packaged defaults.
    monkeypatch.chdir(tmp_path)
    assert default_params_file() == PACKAGED_PARAMS_FILE
    with pytest.raises(SystemExit) as exit_info:
        main(["priors", "--help"])
    assert exit_info.value.code == 0
    assert "--min-cases" in capsys.readouterr().out

    received = []

    def run(config, args, context):  # the stage itself is not under test
        received.append(config)
        return 0

    monkeypatch.setattr("cxrpriv.synth.command.SYNTHESIZE", dataclasses.replace(SYNTHESIZE, run=run))
    assert main(["synthesize", "--n-patients", "7"]) == 0
    expected = load_stage_config(SynthesizeConfig, "synthesize", PARAMS, overrides={"n_patients": 7})
    assert received == [expected]


def test_a_params_file_in_the_working_directory_wins(tmp_path: Path, monkeypatch):
    params = read_params(PARAMS)
    params["synthesize"]["seed"] += 1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    config = load_stage_config(SynthesizeConfig, "synthesize")
    assert config.seed == params["synthesize"]["seed"]


@pytest.mark.slow
def test_the_installed_command_runs_outside_the_repository(tmp_path: Path):
    cxrpriv = Path(sys.executable).parent / "cxrpriv"
    done = subprocess.run(
        [str(cxrpriv), "synthesize", "--n-patients", "1"], cwd=tmp_path, capture_output=True, text=True
    )
    # It got as far as validating the packaged defaults with the override, and wrote nothing.
    assert done.returncode == 2, done.stderr
    assert "n_patients must be at least 2" in done.stderr
    assert list(tmp_path.iterdir()) == []
