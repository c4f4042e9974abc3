"""The `wit` command: help for every stage, config file + overrides, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from wit_builder.cli import COMMANDS, main
from wit_builder.cli import STAGES, load_config
from wit_builder.core.options import ConfigError

REPO = Path(__file__).resolve().parents[2]


def run_wit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wit_builder.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_top_level_help_lists_every_stage():
    result = run_wit("--help")
    assert result.returncode == 0
    for stage in COMMANDS:
        assert stage in result.stdout


@pytest.mark.parametrize("stage", sorted(COMMANDS))
def test_every_stage_documents_every_option(stage, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([stage, "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for name, field in STAGES[stage].__dataclass_fields__.items():
        if not field.metadata.get("positional"):  # synthweb's ACTION, takedown's FILE
            assert "--" + name.replace("_", "-") in text


def test_command_line_overrides_config_file(tmp_path):
    config_file = tmp_path / "my.toml"
    config_file.write_text('seed = 7\n[queries]\nmin_count = 5\nbigrams = 10\n')
    config = load_config("queries", config_file, {"bigrams": 3})
    assert (config.seed, config.min_count, config.bigrams) == (7, 5, 3)


def test_unknown_config_key_is_a_clear_error(tmp_path):
    config_file = tmp_path / "bad.toml"
    config_file.write_text('[queries]\nmin_cont = 5\n')
    with pytest.raises(ConfigError, match="unknown key 'min_cont' in \\[queries\\]"):
        load_config("queries", config_file)


def test_wrong_type_in_config_is_a_clear_error(tmp_path):
    config_file = tmp_path / "bad.toml"
    config_file.write_text('[queries]\nmin_count = "many"\n')
    with pytest.raises(ConfigError, match="min_count = 'many'.*int"):
        load_config("queries", config_file)


def test_bad_choice_exits_nonzero_with_message(tmp_path):
    config_file = tmp_path / "bad.toml"
    config_file.write_text('[crawl]\nbalance = "random"\n')
    result = run_wit("--config", str(config_file), "crawl", cwd=tmp_path)
    assert result.returncode == 2
    assert "balance = 'random' is not one of exact, probabilistic" in result.stderr


def test_default_config_file_parses_for_every_stage():
    for stage in STAGES:
        load_config(stage, REPO / "witbuilder.toml")


def test_boolean_and_repeatable_options(cli_overrides):
    parsed = cli_overrides(["crawl", "--no-download", "--source", "web:http://a/",
                            "--source", "pool:p.parquet"])
    assert parsed["download"] is False
    assert parsed["source"] == ["web:http://a/", "pool:p.parquet"]


def test_positional_action_defaults_to_the_config(monkeypatch):
    seen = {}

    def capture(config):
        seen["action"] = config.action
        return 0

    monkeypatch.setattr("wit_builder.cli.resolve_runner", lambda spec: capture)
    assert main(["synthweb", "--workdir", "."]) == 0
    assert seen["action"] == "generate"
    assert main(["synthweb", "serve", "--workdir", "."]) == 0
    assert seen["action"] == "serve"
