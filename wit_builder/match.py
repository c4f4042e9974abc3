"""Which queries a text contains: whole words and phrases, on word boundaries, in one pass.

Texts are normalised exactly as the queries were (wit_builder.text): NFKC, lower case, words joined
by single spaces, and a possessive "'s" split off as a word of its own on both sides, so "new york"
matches "New York's skyline". Two matchers give identical ids:

- `compiled` (the default, wit_builder/_crawlfast.c): an Aho-Corasick over *words*: a hash table of
  the queries' words and a trie of phrases over word ids. A text costs one pass over its bytes and
  one hash probe per word; a character automaton pays a cache-missing trie node per character.
- `automaton` (the reference, and the fallback when the extension is not built): pyahocorasick
  over every query as " query ", so every hit starts and ends on a word boundary ("cat" never
  matches "category"); its ASCII texts skip NFKC and take one bytes.translate pass.

Either is built once per queries file and cached beside it (`queries.automaton`), keyed by the
file's sha256 and by the matcher's kind.
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

try:
    from wit_builder import _crawlfast
except ImportError:  # not built (no C compiler at install time): the automaton is used
    _crawlfast = None

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


def compiled_available() -> bool:
    """True when the compiled matcher is built (`pip install -e .` builds it)."""
    return _crawlfast is not None


def matcher_kind(kind: str | None) -> str:
    """The matcher to use: `kind` when given, else the compiled one when it is built."""
    if kind not in (None, "compiled", "automaton"):
        raise ValueError(f"match: unknown matcher kind {kind!r}")
    if kind == "compiled" and _crawlfast is None:
        raise WitError("match: the compiled matcher is not built; run `pip install -e .`")
    if kind is None and _crawlfast is None:
        log.warning("match: the compiled matcher is not built (`pip install -e .` builds it); "
                    "matching with pyahocorasick instead (same results, slower)")
    return kind or ("compiled" if _crawlfast is not None else "automaton")


def query_keys(queries: Iterable[tuple[int, str]]) -> Iterable[tuple[int, str]]:
    """(query_id, key) of every query with at least one word; queries are normalised again."""
    for query_id, query in queries:
        key = query_key(query)
        if key.strip():
            yield int(query_id), key


class AutomatonMatcher:
    """The reference: pyahocorasick over " query " keys."""

    kind = "automaton"

    def __init__(self, automaton: ahocorasick.Automaton):
        self.automaton = automaton
        # (end index, query id) of every occurrence of every query; an automaton without a
        # single key (every query normalised to nothing) cannot search at all.
        self.hits = automaton.iter if automaton.kind == ahocorasick.AHOCORASICK else no_hits

    @classmethod
    def from_keys(cls, keys: Iterable[tuple[int, str]]) -> AutomatonMatcher:
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for query_id, key in keys:
            automaton.add_word(key, query_id)  # equal keys: the last id wins
        automaton.make_automaton()
        return cls(automaton)

    def to_bytes(self) -> bytes:
        return pickle.dumps(self.automaton)

    @classmethod
    def from_bytes(cls, data: bytes) -> AutomatonMatcher:
        # Unpickling lays the trie out in one sweep: that layout walks 12-25% faster than the
        # automaton as built, so matchers of a queries file always come from the cache.
        return cls(pickle.loads(data))

    def match(self, text: str) -> list[int]:
        # map/itemgetter keep the per-hit work in C: texts match ~3-10 queries each.
        found = set(map(HIT_VALUE, self.hits(matchable_text(text))))
        return sorted(found) if len(found) > 1 else list(found)


class CompiledMatcher:
    """The word-level automaton of _crawlfast.c; non-ASCII texts are cut by `matchable_text`."""

    kind = "compiled"

    def __init__(self, words: _crawlfast.WordMatcher):
        self.words = words
        self.match = words.match  # bound once: no Python frame per text

    @classmethod
    def from_keys(cls, keys: Iterable[tuple[int, str]]) -> CompiledMatcher:
        phrases = ((query_id, key[1:-1]) for query_id, key in keys)
        return cls(_crawlfast.WordMatcher.build(phrases, matchable_text))

    def to_bytes(self) -> bytes:
        return self.words.to_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> CompiledMatcher:
        return cls(_crawlfast.WordMatcher.from_bytes(data, matchable_text))


MATCHERS = {"compiled": CompiledMatcher, "automaton": AutomatonMatcher}


def cache_header(kind: str, digest: str) -> bytes:
    """The first line of a cache file: which matcher, built from which queries file."""
    return f"witbuilder-matcher {kind} {digest}\n".encode("ascii")


class QueryMatcher:
    """Finds the ids of the queries a text contains (with the compiled or the automaton matcher)."""

    def __init__(self, implementation: CompiledMatcher | AutomatonMatcher):
        self.implementation = implementation
        self.kind = implementation.kind
        # match(text): sorted distinct ids of the queries found in `text`; the implementation's
        # own method, bound here: one call per text, no wrapper
        self.match = implementation.match

    @classmethod
    def from_queries(cls, queries: Iterable[tuple[int, str]],
                     kind: str | None = None) -> QueryMatcher:
        """A matcher over (query_id, query) pairs; queries are normalised again to be safe."""
        return cls(MATCHERS[matcher_kind(kind)].from_keys(query_keys(queries)))

    @classmethod
    def for_queries_file(cls, path: str | Path, kind: str | None = None,
                         sha256: str | None = None) -> QueryMatcher:
        """The matcher of a queries.parquet, built and cached beside it on first use; `sha256`,
        the file's digest when the caller has it already."""
        path = Path(path)
        if not path.exists():
            raise WitError(f"match: queries file '{path}' does not exist; run `wit queries` first")
        kind = matcher_kind(kind)
        cache = path.with_suffix(CACHE_SUFFIX)
        header = cache_header(kind, sha256 or atomic.sha256_file(path))
        matcher = cls.from_cache(cache, header, kind)
        if matcher is None:
            table = pq.read_table(path, columns=["query_id", "query"])
            built = cls.from_queries(zip(table.column("query_id").to_pylist(),
                                         table.column("query").to_pylist()), kind).implementation
            atomic.write_bytes(cache, header + built.to_bytes())
            log.info("match: built the %s matcher of %d queries, cached in %s", kind,
                     table.num_rows, cache)
            del built  # the cached copy replaces it; never hold both
            matcher = cls.from_cache(cache, header, kind)
        return matcher

    @classmethod
    def from_cache(cls, cache: Path, header: bytes, kind: str) -> QueryMatcher | None:
        """The cached matcher when the cache exists and holds `kind` built from the same file."""
        if not cache.exists():
            return None
        with open(cache, "rb") as handle:
            if handle.readline() != header:
                return None
            return cls(MATCHERS[kind].from_bytes(handle.read()))
