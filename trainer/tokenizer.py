"""Captions to fixed-length token ids: a byte-level BPE trained on the captions, or CLIP's own.

Every caption becomes `<start_of_text> ... <end_of_text>` padded to the context length (77 in the
paper); a caption too long is cut before the end token, which is always kept, because the text
tower reads a caption's features at its end token.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from wit_builder.core.atomic import atomic_path
from wit_builder.core.options import WitError

PAD, START, END = "<pad>", "<start_of_text>", "<end_of_text>"


class TextTokenizer:
    """Callable: a list of captions -> LongTensor (len(captions), context_length).

    Picklable (an HF `Tokenizer` or open_clip's `SimpleTokenizer` inside), so data-loader
    workers can be spawned as well as forked.
    """

    def __init__(self, backend: Any, vocab_size: int, start_id: int, end_id: int,
                 pad_id: int = 0, context_length: int = 77, source: str = ""):
        self.backend = backend
        self.vocab_size = vocab_size
        self.start_id, self.end_id, self.pad_id = start_id, end_id, pad_id
        self.context_length = context_length
        self.source = source

    def __call__(self, texts: list[str] | str) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        tokens = torch.full((len(texts), self.context_length), self.pad_id, dtype=torch.long)
        room = self.context_length - 2
        for row, ids in enumerate(self.encode_batch(list(texts))):
            ids = [self.start_id, *ids[:room], self.end_id]
            tokens[row, :len(ids)] = torch.tensor(ids)
        return tokens

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, without start, end or padding."""
        if isinstance(self.backend, Tokenizer):
            # Runs of whitespace collapsed, ends stripped: as CLIP's tokenizer and open_clip's
            # wrapper of an exported BPE (HFTokenizer) both do, so the ids agree with open_clip.
            texts = [" ".join(text.split()) for text in texts]
            encodings = self.backend.encode_batch(texts, add_special_tokens=False)
            return [encoding.ids for encoding in encodings]
        return [self.backend.encode(text) for text in texts]


def bpe_tokenizer(tokenizer: Tokenizer, context_length: int, source: str) -> TextTokenizer:
    return TextTokenizer(tokenizer, tokenizer.get_vocab_size(), tokenizer.token_to_id(START),
                         tokenizer.token_to_id(END), tokenizer.token_to_id(PAD), context_length,
                         source)


def train_bpe(captions: Iterable[str], vocab_size: int) -> Tokenizer:
    """A byte-level BPE (lower-cased, NFC-normalised, like CLIP's) learned from `captions`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, START, END],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(captions, trainer=trainer)
    return tokenizer


def save_bpe(tokenizer: Tokenizer, path: str | Path) -> None:
    with atomic_path(path) as temporary:
        tokenizer.save(str(temporary))


def load_bpe(path: str | Path, context_length: int = 77) -> TextTokenizer:
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as error:  # tokenizers raises a bare Exception for missing or bad files
        raise WitError(f"tokenizer: cannot load '{path}': {error}") from None
    if tokenizer.token_to_id(END) is None:
        raise WitError(f"tokenizer: '{path}' has no {END} token; train it with `wit train`")
    return bpe_tokenizer(tokenizer, context_length, str(path))


def clip_tokenizer(context_length: int = 77) -> TextTokenizer:
    """The original CLIP BPE (49,408 tokens), read from the vocabulary file open_clip ships."""
    try:
        from open_clip.tokenizer import SimpleTokenizer
    except ImportError:
        raise WitError("tokenizer: 'clip' needs the open_clip package (pip install "
                       "open_clip_torch)") from None
    simple = SimpleTokenizer()
    start, end = simple.encoder["<start_of_text>"], simple.encoder["<end_of_text>"]
    return TextTokenizer(simple, len(simple.encoder), start, end, 0, context_length, "clip")


def trim_padding(tokens: torch.Tensor, end_id: int) -> torch.Tensor:
    """Drop the columns after the batch's last end token: the causal text tower never reads them."""
    last = int((tokens == end_id).int().argmax(dim=1).max()) + 1
    return tokens[:, :last].contiguous()
