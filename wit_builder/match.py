"""Which queries a text contains: whole words and phrases, on word boundaries, in one pass.

Texts are normalised exactly as the queries were (wit_builder.text): NFKC, lower case, words joined
by single spaces, and a possessive "'s" split off as a word of its own on both sides, so "new york"
matches "New York's skyline". One Aho-Corasick automaton (pyahocorasick) holds every query as
" query ", so every hit starts and ends on a word boundary ("cat" never matches "category") and
needs no further check. The automaton is built once per queries file and cached beside it, keyed
by the file's sha256; matchers always come from that cache, whose layout is faster to walk.

Speed (benchmarks/bench_match.py): ASCII texts skip NFKC and take one bytes.translate pass; the
automaton's (end, id) hits are gathered in C (map + itemgetter) into the sorted distinct ids.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterable
from operator import itemgetter
from pathlib import Path

import ahocorasick
import pyarrow.parquet as pq

from wit_builder import atomic
from wit_builder.options import WitError
from wit_builder.text import WORD, normalize

log = logging.getLogger(__name__)

CACHE_SUFFIX = ".automaton"
# The automaton yields (end index, query id) per hit.
HIT_VALUE = itemgetter(1)


# ASCII text as bytes: letters lower-cased, and every character that is neither a letter nor a
# digit, nor one of the two characters that may join words (' and -), a space.
ASCII_WORD_BYTES = bytes(ord(chr(c).lower()) if chr(c).isalnum() or chr(c) in "'-" else ord(" ")
                         for c in range(128)) + b" " * 128
# WORD on folded ASCII text, for the rare text where a joiner does not sit between two words.
ASCII_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")
NOT_A_WORD_CHARACTER = " '-"  # what folded ASCII text holds besides letters and digits


def has_loose_joiner(padded: str) -> bool:
    """True when a ' or - of folded, space-padded ASCII text is not between two word characters.
    Joiners are few per text, so finding each beats scanning the text for every bad pair."""
    for joiner in "'-":
        at = padded.find(joiner)
        while at >= 0:
            if padded[at - 1] in NOT_A_WORD_CHARACTER or padded[at + 1] in NOT_A_WORD_CHARACTER:
                return True
            at = padded.find(joiner, at + 1)
    return False


def ascii_words(text: str) -> str:
    """The words of ASCII `text`, lower case, between spaces: one or more, at least one at each end.
    Exactly WORD's words: a bytes translate pass, and the regex only when a joiner is loose."""
    # bytes.translate is ~3x faster than str.translate; `in` is faster on str than on bytes.
    padded = f" {text.encode('ascii').translate(ASCII_WORD_BYTES).decode('ascii')} "
    if ("'" in padded or "-" in padded) and has_loose_joiner(padded):
        return f" {' '.join(ASCII_WORD.findall(padded))} "
    return padded


def matchable_text(text: str) -> str:
    """The text as the automaton sees it: its words between spaces, possessives split off. Words
    are single-spaced; runs of spaces may remain at the two ends, where they change no match."""
    if not text.isascii():
        padded = f" {' '.join(WORD.findall(normalize(text)))} "
        return padded.replace("'s ", " 's ") if "'" in padded else padded
    padded = ascii_words(text)  # most captions: no NFKC, no str-level regex
    if "'" in padded:
        padded = padded.replace("'s ", " 's ")
    if "  " in padded.strip():  # a phrase must match across "red, (triangle)"
        padded = f" {' '.join(padded.split())} "
    return padded


def query_key(query: str) -> str:
    """A query as stored in the automaton: its matchable text with exactly one space at each end."""
    return " " + " ".join(matchable_text(query).split()) + " "


def no_hits(text: str) -> tuple:
    return ()


class QueryMatcher:
    """Finds the ids of the queries a text contains."""

    def __init__(self, automaton: ahocorasick.Automaton):
        self.automaton = automaton
        # (end index, query id) of every occurrence of every query; an automaton without a
        # single key (every query normalised to nothing) cannot search at all.
        self.hits = automaton.iter if automaton.kind == ahocorasick.AHOCORASICK else no_hits

    @classmethod
    def from_queries(cls, queries: Iterable[tuple[int, str]]) -> QueryMatcher:
        """An automaton over (query_id, query) pairs; queries are normalised again to be safe."""
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for query_id, query in queries:
            key = query_key(query)
            if key.strip():
                automaton.add_word(key, int(query_id))
        automaton.make_automaton()
        return cls(automaton)

    @classmethod
    def for_queries_file(cls, path: str | Path) -> QueryMatcher:
        """The matcher of a queries.parquet, built and cached beside it on first use. It is always
        read from the cache: unpickling lays the trie out in one sweep, and matching over that
        layout is 12-25% faster than over the automaton as built."""
        path = Path(path)
        if not path.exists():
            raise WitError(f"match: queries file '{path}' does not exist; run `wit queries` first")
        cache = path.with_suffix(CACHE_SUFFIX)
        digest = atomic.sha256_file(path)
        matcher = cls.from_cache(cache, digest)
        if matcher is None:
            table = pq.read_table(path, columns=["query_id", "query"])
            built = cls.from_queries(zip(table.column("query_id").to_pylist(),
                                         table.column("query").to_pylist()))
            atomic.write_bytes(cache, pickle.dumps((digest, built.automaton)))
            log.info("match: built the automaton of %d queries, cached in %s", table.num_rows,
                     cache)
            del built  # the cached copy replaces it; never hold both
            matcher = cls.from_cache(cache, digest)
        return matcher

    @classmethod
    def from_cache(cls, cache: Path, digest: str) -> QueryMatcher | None:
        """The cached matcher when the cache exists and was built from the file of `digest`."""
        if not cache.exists():
            return None
        with open(cache, "rb") as handle:
            cached_digest, automaton = pickle.load(handle)
        return cls(automaton) if cached_digest == digest else None

    def match(self, text: str) -> list[int]:
        """Sorted distinct ids of the queries found in `text`."""
        # map/itemgetter keep the per-hit work in C: texts match ~3-10 queries each.
        found = set(map(HIT_VALUE, self.hits(matchable_text(text))))
        return sorted(found) if len(found) > 1 else list(found)
