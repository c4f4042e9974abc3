"""Options checked before anything is written: every number inside its declared range (one line
naming the option and the range, exit 2, the workdir untouched), img2dataset's spellings of the
options both tools share, and an unknown option shown with the stage's own usage."""

from __future__ import annotations

import dataclasses
import typing

import pytest

from wit_builder.cli import STAGES, load_config, main
from wit_builder.core.options import ConfigError

# Numbers that are fine whatever their value (a seed is any integer).
UNBOUNDED = {"seed"}
CHECKED_STAGES = ("queries", "crawl", "shards", "synthweb", "demo")


@pytest.mark.parametrize("argv, option, allowed", [
    (["crawl", "--per-query", "-5"], "--per-query", "at least 1, not -5"),
    (["crawl", "--per-query", "0"], "--per-query", "at least 1, not 0"),
    (["crawl", "--image-size", "0"], "--image-size", "at least 1, not 0"),
    (["crawl", "--quality", "101"], "--quality", "at least 1 and at most 100, not 101"),
    (["crawl", "--timeout", "0"], "--timeout", "more than 0, not 0.0"),
    (["crawl", "--min-lang-prob", "1.5"], "--min-lang-prob", "at most 1, not 1.5"),
    (["shards", "--val-fraction", "-0.1"], "--val-fraction", "at least 0 and less than 1"),
    (["shards", "--val-fraction", "1"], "--val-fraction", "at least 0 and less than 1, not 1.0"),
    (["shards", "--near-dup-bits", "32"], "--near-dup-bits", "at most 31, not 32"),
    (["queries", "--wiki", "x.xml", "--min-count", "0"], "--min-count", "at least 1, not 0"),
    (["synthweb", "--site-pages", "10"], "--site-pages", "at least 11, not 10"),
])
def test_an_option_out_of_range_stops_before_anything_is_written(argv, option, allowed, tmp_path,
                                                                 capsys):
    workdir = tmp_path / "run"
    assert main([*argv, "--workdir", str(workdir)]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1
    assert option in message and allowed in message
    assert not workdir.exists()  # nothing written: not even the workdir


def test_a_config_file_value_out_of_range_is_refused_too(tmp_path):
    config = tmp_path / "wit.toml"
    config.write_text("[crawl]\nper_query = -1\n")
    with pytest.raises(ConfigError, match=r"--per-query \(\[crawl\] per_query\) must be at least 1"):
        load_config("crawl", config)


def test_the_boundary_values_are_allowed():
    config = load_config("crawl", None, {"per_query": 1, "quality": 100, "min_lang_prob": 0.0,
                                         "max_depth": 0, "checkpoint_pages": 0})
    assert (config.per_query, config.quality, config.max_depth) == (1, 100, 0)


@pytest.mark.parametrize("stage", CHECKED_STAGES)
def test_every_number_of_a_stage_declares_its_range(stage):
    kinds = typing.get_type_hints(STAGES[stage])
    unbounded = [item.name for item in dataclasses.fields(STAGES[stage])
                 if kinds[item.name] in (int, float) and item.name not in UNBOUNDED
                 and not {"min", "max", "above"} & set(item.metadata)]
    assert unbounded == []


def test_img2dataset_spellings_are_aliases(cli_overrides):
    ours = cli_overrides(["crawl", "--image-size", "128", "--concurrency", "7", "--workers", "3",
                          "--text-col", "alt", "--url-col", "u", "--quality", "80",
                          "--min-size", "5", "--samples-per-shard", "9",
                          "--max-aspect-ratio", "2"])
    theirs = cli_overrides(["crawl", "--image_size", "128", "--thread_count", "7",
                            "--processes_count", "3", "--caption_col", "alt", "--url_col", "u",
                            "--encode_quality", "80", "--min_image_size", "5",
                            "--number_sample_per_shard", "9", "--max_aspect_ratio", "2"])
    assert theirs == ours and len(ours) == 9


def test_an_unknown_option_shows_the_stages_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["crawl", "--no-such-option", "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("usage: wit crawl ")
    assert "wit crawl: error: unrecognized arguments: --no-such-option 1" in error
