"""The training data stream: shard specs, decoding and crops, corrupt samples, fast-forward."""

from __future__ import annotations

import itertools

import pytest
import torch

from trainer.data import ClipStream, expand_shards, make_loader
from trainer.tokenizer import load_bpe, save_bpe, train_bpe
from support.trainer_data import write_shape_shards
from wit_builder.core.options import WitError


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    directory = tmp_path_factory.mktemp("shards")
    write_shape_shards(directory, shards=3, per_shard=24, size=40, corrupt=(3,))
    return directory


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    path = tmp_path_factory.mktemp("tokenizer") / "tokenizer.json"
    save_bpe(train_bpe(["a red circle", "a blue square", "a green cross"] * 3, 300), path)
    return load_bpe(path)


def stream(shards, tokenizer, **overrides) -> ClipStream:
    settings = {"urls": expand_shards("train-*.tar", shards), "tokenizer": tokenizer,
                "batch_size": 8, "image_size": 32, "shuffle": 16, "seed": 3}
    return ClipStream(**{**settings, **overrides})


def test_shard_spec_expands_braces_globs_and_joined_parts(shards):
    names = [str(shards / f"train-{i:06d}.tar") for i in range(3)]
    assert expand_shards("train-{000000..000002}.tar", shards) == names
    assert expand_shards("train-*.tar", shards) == names
    assert expand_shards("train-000002.tar::train-00000[01].tar", shards) == names[2:] + names[:2]
    assert expand_shards("pipe:cat x.tar::https://host/a.tar", shards) == [
        "pipe:cat x.tar", "https://host/a.tar"]


def test_spec_matching_no_shard_is_a_clear_error(shards):
    with pytest.raises(WitError, match="no shard matches 'val-\\*.tar'"):
        expand_shards("val-*.tar", shards)


def test_batches_hold_cropped_uint8_images_and_trimmed_tokens(shards, tokenizer):
    images, tokens, progress = next(iter(stream(shards, tokenizer)))
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.uint8
    assert images.float().std() > 10  # real pictures, not a blank
    assert tokens.shape[0] == 8 and 3 <= tokens.shape[1] < 77
    assert (tokens == tokenizer.end_id).sum(dim=1).tolist() == [1] * 8
    assert progress["role"] == 0 and progress["consumed"] == 8 + progress["skipped"]


def test_corrupt_jpeg_is_skipped_and_counted_not_fatal(shards, tokenizer, caplog):
    batches = list(itertools.islice(iter(stream(shards, tokenizer, shuffle=1)), 9))
    consumed, skipped = batches[-1][2]["consumed"], batches[-1][2]["skipped"]
    # 72 good samples delivered need more than one pass over the 72 (one corrupt) in the shards.
    assert sum(len(images) for images, _, _ in batches) == 72
    assert consumed - skipped == 72 and skipped >= 1
    assert "skipped sample 00000003" in caplog.text


def test_pipe_urls_are_read(shards, tokenizer):
    urls = [f"pipe:cat {path}" for path in sorted(shards.glob("*.tar"))]
    images, _, _ = next(iter(stream(shards, tokenizer, urls=urls)))
    assert images.shape == (8, 3, 32, 32)


def test_fast_forward_continues_the_stream_exactly(shards, tokenizer):
    full = list(itertools.islice(iter(stream(shards, tokenizer)), 5))
    consumed = full[1][2]["consumed"]
    resumed = list(itertools.islice(iter(stream(shards, tokenizer, skip={0: consumed})), 3))
    for (images, tokens, _), (again, tokens_again, _) in zip(full[2:], resumed):
        assert torch.equal(images, again) and torch.equal(tokens, tokens_again)


def test_loader_workers_each_stream_their_own_shards(shards, tokenizer):
    loader = make_loader(stream(shards, tokenizer, max_batches=3), workers=2)
    roles = [progress["role"] for _, _, progress in loader]
    assert roles == [0, 1, 0, 1, 0, 1]
