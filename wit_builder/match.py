"""Which queries a text contains: whole words and phrases, on word boundaries, in one pass.

Texts are normalised exactly as the queries were (wit_builder.text): NFKC, lower case, words joined
by single spaces, and a possessive "'s" split off as a word of its own on both sides, so "new york"
matches "New York's skyline". One Aho-Corasick automaton (pyahocorasick) holds every query as
" query ", so every hit starts and ends on a word boundary ("cat" never matches "category") and
needs no further check. The automaton is built once per queries file and cached beside it, keyed
by the file's sha256.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterable
from pathlib import Path

import ahocorasick
import pyarrow.parquet as pq

from wit_builder import atomic
from wit_builder.options import WitError
from wit_builder.text import WORD, normalize

log = logging.getLogger(__name__)

CACHE_SUFFIX = ".automaton"


# Every ASCII character that is neither a letter nor a digit, nor one of the two characters that
# may join words (' and -), becomes a space.
ASCII_SEPARATORS = bytes(c if chr(c).isalnum() or chr(c) in "'-" else ord(" ")
                         for c in range(256))


def word_string(normalized: str) -> str:
    """The words of normalised text joined by single spaces. ASCII text without ' or - (most
    captions) takes a translate + split fast path that gives exactly what the regex gives."""
    if normalized.isascii() and "'" not in normalized and "-" not in normalized:
        return " ".join(normalized.encode("ascii").translate(ASCII_SEPARATORS).decode().split())
    return " ".join(WORD.findall(normalized))


def matchable_text(text: str) -> str:
    """The text as the automaton sees it: padded words between single spaces, possessives split."""
    padded = " " + word_string(normalize(text)) + " "
    return padded.replace("'s ", " 's ") if "'" in padded else padded


class QueryMatcher:
    """Finds the ids of the queries a text contains."""

    def __init__(self, automaton: ahocorasick.Automaton):
        self.automaton = automaton

    @classmethod
    def from_queries(cls, queries: Iterable[tuple[int, str]]) -> QueryMatcher:
        """An automaton over (query_id, query) pairs; queries are normalised again to be safe."""
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for query_id, query in queries:
            key = matchable_text(query)
            if key.strip():
                automaton.add_word(key, int(query_id))
        automaton.make_automaton()
        return cls(automaton)

    @classmethod
    def for_queries_file(cls, path: str | Path) -> QueryMatcher:
        """The matcher of a queries.parquet, loaded from its cache or built and cached."""
        path = Path(path)
        if not path.exists():
            raise WitError(f"match: queries file '{path}' does not exist; run `wit queries` first")
        cache = path.with_suffix(CACHE_SUFFIX)
        digest = atomic.sha256_file(path)
        if cache.exists():
            with open(cache, "rb") as handle:
                cached_digest, automaton = pickle.load(handle)
            if cached_digest == digest:
                return cls(automaton)
        table = pq.read_table(path, columns=["query_id", "query"])
        matcher = cls.from_queries(zip(table.column("query_id").to_pylist(),
                                       table.column("query").to_pylist()))
        atomic.write_bytes(cache, pickle.dumps((digest, matcher.automaton)))
        log.info("match: built the automaton of %d queries, cached in %s", table.num_rows, cache)
        return matcher

    def match(self, text: str) -> list[int]:
        """Sorted distinct ids of the queries found in `text`."""
        return sorted({query_id for _, query_id in self.automaton.iter(matchable_text(text))})
