"""`wit train`'s options checked before any work: ranges at parse time, every preset in --help,
--train naming a folder of shards, and errors that mention the workdir only for relative paths."""

from __future__ import annotations

import pytest

from support.trainer_data import tiny_train_config, write_shape_shards
from trainer.data import expand_shards
from trainer.train import run
from wit_builder.cli import main
from wit_builder.core.options import WitError


@pytest.mark.parametrize("option, value, allowed", [
    ("--steps", "-1", "at least 1"), ("--steps", "0", "at least 1"),
    ("--batch-size", "0", "at least 1"), ("--lr", "0", "more than 0"),
    ("--crop-scale", "1.5", "more than 0 and at most 1"), ("--workers", "-2", "at least 0"),
    ("--keep-checkpoints", "-1", "at least 0"), ("--vocab-size", "100", "at least 259"),
    ("--beta2", "1", "at least 0 and less than 1"),
])
def test_out_of_range_options_fail_at_parse_time_in_one_line(tmp_path, capsys, option, value,
                                                            allowed):
    status = main(["train", "--workdir", str(tmp_path), option, value])
    error = capsys.readouterr().err.strip()
    assert status == 2 and len(error.splitlines()) == 1
    assert f"{option} " in error and f"must be {allowed}, not " in error
    assert not (tmp_path / "runs").exists()  # nothing written, not even the run folder


def test_eval_ranges_too(tmp_path, capsys):
    assert main(["eval", "--workdir", str(tmp_path), "--batch-size", "0"]) == 2
    assert "--batch-size ([eval] batch_size) must be at least 1" in capsys.readouterr().err


def test_train_help_lists_every_preset(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for preset in ("rn50", "tiny", "tiny-cnn", "vit-b-32"):
        assert preset in help_text


def test_train_takes_a_folder_of_shards_reading_its_training_split(tmp_path):
    shards = tmp_path / "data" / "shards"
    write_shape_shards(shards, shards=2, per_shard=16, size=32)
    (shards / "val-000000.tar").write_bytes((shards / "train-000001.tar").read_bytes())
    assert expand_shards("data/shards", tmp_path) == [str(shards / "train-000000.tar"),
                                                      str(shards / "train-000001.tar")]
    assert expand_shards("data/shards", tmp_path, split="val") == [str(shards / "val-000000.tar")]
    other = tmp_path / "img2dataset"
    write_shape_shards(other, shards=1, per_shard=8, size=32)
    (other / "train-000000.tar").rename(other / "00000.tar")
    assert expand_shards(str(other)) == [str(other / "00000.tar")]
    assert run(tiny_train_config(tmp_path, train="data/shards", steps=2)) == 0


def test_missing_shards_mention_the_workdir_only_for_relative_paths(tmp_path):
    with pytest.raises(WitError, match="relative to workdir"):
        expand_shards("nowhere/*.tar", tmp_path)
    with pytest.raises(WitError) as absolute:
        expand_shards(str(tmp_path / "nowhere" / "*.tar"), tmp_path)
    assert "relative to workdir" not in str(absolute.value)
