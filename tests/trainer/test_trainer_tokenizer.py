"""Tokenizers: BPE trained on captions, CLIP's BPE; start/end tokens, padding, truncation."""

from __future__ import annotations

import torch

from trainer.tokenizer import clip_tokenizer, load_bpe, save_bpe, train_bpe, trim_padding

CAPTIONS = [f"a {colour} {shape} on a plain background"
            for colour in ("red", "green", "blue", "yellow") for shape in ("circle", "square")] * 5


def test_trained_bpe_round_trips_and_frames_every_caption(tmp_path):
    save_bpe(train_bpe(CAPTIONS, vocab_size=400), tmp_path / "tokenizer.json")
    tokenizer = load_bpe(tmp_path / "tokenizer.json")
    tokens = tokenizer(["A Red circle", "a blue square on a plain background"])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    assert tokenizer.vocab_size <= 400
    for row in tokens:
        ids = row[row != tokenizer.pad_id].tolist()
        assert ids[0] == tokenizer.start_id and ids[-1] == tokenizer.end_id
    # Lower-cased like CLIP: the capitalised caption shares its tokens with the lower-case one.
    assert torch.equal(tokenizer(["A Red circle"]), tokenizer(["a red circle"]))
    # Frequent words are merged into single tokens by the BPE.
    assert (tokens[0] != tokenizer.pad_id).sum() == 5


def test_long_caption_is_cut_but_keeps_its_end_token(tmp_path):
    save_bpe(train_bpe(CAPTIONS, vocab_size=400), tmp_path / "tokenizer.json")
    tokenizer = load_bpe(tmp_path / "tokenizer.json", context_length=77)
    tokens = tokenizer(" ".join(["circle"] * 200))[0]
    assert tokens[0] == tokenizer.start_id and tokens[76] == tokenizer.end_id
    assert (tokens == tokenizer.end_id).sum() == 1


def test_clip_tokenizer_matches_open_clip():
    import open_clip

    tokenizer = clip_tokenizer()
    texts = ["a photo of a dog.", "Two RED squares!", " ".join(["word"] * 100)]
    assert tokenizer.vocab_size == 49408
    assert torch.equal(tokenizer(texts), open_clip.get_tokenizer("ViT-B-32")(texts))


def test_trim_padding_keeps_every_end_token():
    tokens = torch.tensor([[1, 5, 2, 0, 0, 0], [1, 5, 6, 7, 2, 0]])
    trimmed = trim_padding(tokens, end_id=2)
    assert trimmed.tolist() == [[1, 5, 2, 0, 0], [1, 5, 6, 7, 2]]


def test_tokenizers_survive_pickling_for_spawned_workers(tmp_path):
    import pickle

    save_bpe(train_bpe(CAPTIONS, vocab_size=400), tmp_path / "tokenizer.json")
    for tokenizer in (load_bpe(tmp_path / "tokenizer.json"), clip_tokenizer()):
        copy = pickle.loads(pickle.dumps(tokenizer))
        assert torch.equal(copy(["a red circle"]), tokenizer(["a red circle"]))
