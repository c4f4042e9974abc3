"""Resume at scale: old checkpoints are pruned, a resumed data stream passes over the shards it
finished without opening them and gives exactly the samples of an uninterrupted run, and the
waiting ranks of a distributed run get a collective timeout longer than an evaluation."""

from __future__ import annotations

import itertools
import json
import random
import shutil

import pytest
import torch
import webdataset as wds

import trainer.data
from trainer.checkpoint import newest_checkpoint, save_checkpoint
from trainer.data import ClipStream, ResumableShuffle, StreamState, expand_shards
from trainer.tokenizer import load_bpe, save_bpe, train_bpe
from trainer.train import run
from support.trainer_data import tiny_train_config, write_shape_shards
from wit_builder.core.options import WitError


@pytest.fixture
def opened(monkeypatch) -> list[str]:
    """The shard URLs opened from now on, in order (in this process: use workers=0)."""
    urls: list[str] = []
    original = trainer.data.open_shard

    def counting_open(url: str):
        urls.append(url)
        return original(url)

    monkeypatch.setattr(trainer.data, "open_shard", counting_open)
    return urls


def test_only_the_newest_checkpoints_are_kept_and_latest_is_the_newest(tmp_path):
    for step in (1, 2, 3, 4, 5):
        save_checkpoint(tmp_path, {"step": step, "weights": torch.full((2,), float(step))},
                        keep=2)
    names = sorted(path.name for path in tmp_path.iterdir())
    assert names == ["latest.pt", "step-0000004.pt", "step-0000005.pt"]
    assert torch.load(tmp_path / "latest.pt", weights_only=True)["step"] == 5
    assert newest_checkpoint(tmp_path).name == "step-0000005.pt"


def test_keep_zero_keeps_every_checkpoint(tmp_path):
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, {"step": step}, keep=0)
    assert len(list(tmp_path.glob("step-*.pt"))) == 3


def test_pruning_orders_steps_by_number_past_the_zero_padding(tmp_path):
    save_checkpoint(tmp_path, {"step": 9_999_999}, keep=1)
    save_checkpoint(tmp_path, {"step": 10_000_000}, keep=1)
    assert [path.name for path in tmp_path.glob("step-*.pt")] == ["step-10000000.pt"]
    assert newest_checkpoint(tmp_path).name == "step-10000000.pt"


def test_negative_keep_checkpoints_is_a_clear_error_before_any_work(tmp_path):
    write_shape_shards(tmp_path / "shards", shards=1, per_shard=8, size=24)
    with pytest.raises(WitError, match="--keep-checkpoints .* must be at least 0, not -1"):
        run(tiny_train_config(tmp_path, keep_checkpoints=-1))
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def small_shards(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards")
    write_shape_shards(directory, shards=8, per_shard=10, size=24)
    path = directory / "tokenizer.json"
    save_bpe(train_bpe(["a red circle", "a blue square", "a green cross"] * 3, 300), path)
    return expand_shards("train-*.tar", directory), load_bpe(path)


def shape_stream(small_shards, **overrides) -> ClipStream:
    urls, tokenizer = small_shards
    return ClipStream(urls, tokenizer, batch_size=5, image_size=16, shuffle=6, seed=1,
                      **overrides)


def test_resumed_stream_skips_finished_shards_unopened_and_continues_exactly(small_shards,
                                                                             opened):
    straight = list(itertools.islice(iter(shape_stream(small_shards)), 12))
    straight_opens = list(opened)
    progress = straight[7][2]
    state = StreamState.from_tensor(progress["state"])
    opened.clear()

    resumed_stream = shape_stream(small_shards, skip={0: progress["consumed"]},
                                  states={0: progress["state"]})
    resumed = list(itertools.islice(iter(resumed_stream), 4))
    for (images, tokens, _), (again, tokens_again, _) in zip(straight[8:], resumed):
        assert torch.equal(images, again) and torch.equal(tokens, tokens_again)
    assert [p["consumed"] for _, _, p in resumed] == [p["consumed"] for _, _, p in straight[8:]]

    # 40 samples taken of 10-sample shards: the reader was in its fifth shard or later.
    assert state.shard >= 4 and len(state.buffer) > 0
    buffered_before = sorted({shard for shard, _ in state.buffer if shard < state.shard})
    reopened = [straight_opens[shard] for shard in buffered_before]
    assert opened[:len(reopened)] == reopened
    assert opened[len(reopened):] == straight_opens[state.shard:state.shard + len(opened)
                                                    - len(reopened)]
    passed_over = state.shard - len(buffered_before)
    assert passed_over >= 2, (state, opened)


def test_stream_state_round_trips_through_a_tensor():
    state = StreamState(3, 7, [(2, 9), (3, 0), (3, 6)], list(random.Random(1).getstate()[1]))
    rows = state.to_tensor()
    assert rows.shape == (2 + 3 + 313, 2) and rows.dtype == torch.int64
    assert StreamState.from_tensor(rows) == state
    assert StreamState.from_tensor(StreamState().to_tensor()) == StreamState()


def test_fresh_stream_shuffles_exactly_as_webdataset_does():
    """Same seed, same picks as `wds.shuffle`: a run's data order did not change when its
    shuffle became resumable."""
    items = [{"__id__": (0, i), "n": i} for i in range(500)]
    paired = ((item, (0, item["n"] + 1)) for item in items)
    ours = ResumableShuffle(paired, 64, 32, "seed-7", StreamState())
    theirs = wds.shuffle(64, initial=32, seed="seed-7")(iter(items))
    assert [item["n"] for item in ours] == [item["n"] for item in theirs]


def losses(run_dir) -> list[float]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["loss"] for line in lines]


def test_resumed_run_reads_no_finished_shard_and_matches_the_straight_run(tmp_path, opened):
    # 8 shards of 12 in one pass: 10 steps of 8 never come back to the first shard.
    write_shape_shards(tmp_path / "shards", shards=8, per_shard=12, size=24)
    # A given tokenizer: training one would read every shard before the stream starts.
    save_bpe(train_bpe(["a red circle", "a blue square", "a green cross"] * 3, 300),
             tmp_path / "tokenizer.json")
    options = {"steps": 10, "batch_size": 8, "shuffle": 8, "checkpoint_every": 5,
               "keep_checkpoints": 0, "tokenizer": str(tmp_path / "tokenizer.json")}
    run(tiny_train_config(tmp_path, name="straight", **options))
    straight_opens = list(opened)
    runs = tmp_path / "runs"
    # A run killed after its step-5 checkpoint: the straight run's files up to there.
    shutil.copytree(runs / "straight", runs / "killed")
    (runs / "killed" / "checkpoints" / "step-0000010.pt").unlink()
    (runs / "killed" / "checkpoints" / "latest.pt").unlink()
    opened.clear()

    run(tiny_train_config(tmp_path, name="killed", resume=True,
                          **{**options, "keep_checkpoints": 1}))
    assert losses(runs / "killed") == pytest.approx(losses(runs / "straight"), abs=1e-5)
    assert straight_opens[0] not in opened and len(opened) < len(straight_opens), \
        (straight_opens, opened)
    names = sorted(path.name for path in (runs / "killed" / "checkpoints").iterdir())
    assert names == ["latest.pt", "step-0000010.pt"]
    state = torch.load(runs / "killed" / "checkpoints" / "latest.pt", weights_only=True)
    assert StreamState.from_tensor(state["data"][0]["streams"][0]).shard > 0


def test_distributed_runs_wait_longer_than_an_evaluation(monkeypatch):
    import datetime

    import torch.distributed as dist

    from trainer.train import setup_distributed

    seen = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "init_process_group", lambda *a, **kw: seen.update(kw))
    monkeypatch.setattr(dist, "get_rank", lambda: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    ddp = setup_distributed("cpu")
    assert (ddp.rank, ddp.world_size) == (1, 2)
    assert seen["timeout"] >= datetime.timedelta(hours=1)
