from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from cxrpriv.cli import build_parser, main
from cxrpriv.config import ConfigError, build_config, load_stage_config, read_params, stage_values
from cxrpriv.synth.config import SynthesizeConfig
from tests.conftest import PARAMS


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
