"""Which queries a text contains: whole words and phrases, on word boundaries, in one pass.

Texts are cut into words exactly as the queries were (wit_builder.core.text): NFKC, lower case, words
joined by single spaces, a possessive "'s" folded into its word on both sides, so "new york"
matches "New York's skyline". Two matchers give identical ids:

- `compiled` (the default, wit_builder/crawl/_crawlfast.c): an Aho-Corasick over *words*: a hash table of
  the queries' words and a trie of phrases over word ids. A text costs one pass over its bytes and
  one hash probe per word; a character automaton pays a cache-missing trie node per character.
- `automaton` (the reference, and the fallback when the extension is not built): pyahocorasick
  over every query as " query ", so every hit starts and ends on a word boundary ("cat" never
  matches "category").

The compiled matcher is built once per queries file and cached beside it (`queries.automaton`,
the name kept from when it held the automaton). A cache lives in a workdir that others may write
(NFS, a bucket), so it is data, never code: a header line names the format, the queries file's
sha256 and the tokenisation rules it was cut under (core.text.TOKENIZATION), the body's length
and its blake2b, and the body holds the matcher's words and phrase edges,
which the extension checks entry by entry and builds its tables from afresh under this process's
hash key. A cache that fails any check is rebuilt, with one warning. The automaton is not cached:
it is rebuilt in each process (1-2 s for 500,000 queries), since pyahocorasick's only serialisation
is pickle, which would run whatever a crafted file asks.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from operator import itemgetter
from pathlib import Path

import ahocorasick
import pyarrow.parquet as pq

from wit_builder.core import atomic, store
from wit_builder.core.options import WitError
from wit_builder.core.text import TOKENIZATION, normalize, normalized_words

try:
    from wit_builder.crawl import _crawlfast
except ImportError:  # not built (no C compiler at install time): the automaton is used
    _crawlfast = None

log = logging.getLogger(__name__)

CACHE_SUFFIX = ".automaton"
CACHE_FORMAT = "witbuilder-matcher-3"  # the first word of a cache file's header line
CACHE_HEADER_MAX = 512  # bytes: a longer first line is no header
# The automaton yields (end index, query id) per hit.
HIT_VALUE = itemgetter(1)


def matchable_text(text: str) -> str:
    """The text as the matchers see it: its words (core/text.py: possessives folded, "u.s." and
    "1,000" one word each) between single spaces, one space at each end. Punctuation between two
    words does not stop a phrase matching (titles such as "Star Wars: A New Hope" are stored as
    their words)."""
    return f" {' '.join(normalized_words(normalize(text)))} "


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
    def from_bytes(cls, data: bytes | memoryview) -> CompiledMatcher:
        """The matcher of to_bytes()'s bytes; ValueError when they are not (every entry is
        checked in C, whatever the bytes hold)."""
        return cls(_crawlfast.WordMatcher.from_bytes(data, matchable_text))


MATCHERS = {"compiled": CompiledMatcher, "automaton": AutomatonMatcher}


def checksum(body: bytes | memoryview) -> str:
    return hashlib.blake2b(body, digest_size=32).hexdigest()


def cache_header(digest: str, body: bytes) -> bytes:
    """The first line of a cache file: its format, the queries file it was built from (sha256),
    the tokenisation rules, and the body's length and checksum."""
    return (f"{CACHE_FORMAT} compiled {digest} {TOKENIZATION} {len(body)} {checksum(body)}\n"
            .encode("ascii"))


class InvalidCache(Exception):
    """A cache file that is not a sound matcher cache (the message says why)."""


def read_cache(cache: Path, digest: str) -> CompiledMatcher | None:
    """The compiled matcher cached in `cache` for the queries file of sha256 `digest`; None when
    there is no cache, or one of another queries file. InvalidCache when the file is no sound
    cache of this version: unreadable header, other format, wrong length or checksum, or a body
    the extension refuses."""
    try:
        handle = open(cache, "rb")
    except FileNotFoundError:
        return None
    except OSError as error:
        raise InvalidCache(f"unreadable: {error}") from None
    with handle:
        line = handle.readline(CACHE_HEADER_MAX)
        fields = line.decode("ascii", "replace").split(" ")
        if not line.endswith(b"\n") or len(fields) != 6 or fields[0] != CACHE_FORMAT:
            raise InvalidCache("not a matcher cache of this version")
        kind, cached_digest, rules, length = fields[1:5]
        expected = fields[5][:-1]
        if kind != "compiled" or not length.isdigit():
            raise InvalidCache("a malformed header")
        if rules != TOKENIZATION:
            raise InvalidCache(f"cut under tokenisation rules {rules!r}, not {TOKENIZATION!r}")
        if cached_digest != digest:
            return None  # a sound cache of another queries file
        size = os.fstat(handle.fileno()).st_size - len(line)
        if size != int(length):
            raise InvalidCache(f"a body of {size} bytes where the header says {length}")
        body = handle.read()
    if checksum(body) != expected:
        raise InvalidCache("a checksum mismatch")
    try:
        return CompiledMatcher.from_bytes(body)
    except ValueError as error:
        raise InvalidCache(str(error)) from None


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
        """The matcher of a queries.parquet; the compiled one is built on first use and cached
        beside the file, then read from there. `sha256`: the file's digest when the caller has it
        already."""
        path = Path(path)
        if not path.exists():
            raise WitError(f"match: queries file '{path}' does not exist; run `wit queries` first")
        kind = matcher_kind(kind)
        if kind == "automaton":  # not cached: see the module's docstring
            return cls.from_queries(read_queries(path), kind)
        cache = path.with_suffix(CACHE_SUFFIX)
        digest = sha256 or atomic.sha256_file(path)
        try:
            cached = read_cache(cache, digest)
        except InvalidCache as problem:
            log.warning("match: the matcher cache %s is unsound (%s); rebuilding it from %s",
                        cache, problem, path)
            cached = None
        if cached is not None:
            return cls(cached)
        matcher = cls.from_queries(read_queries(path), kind)
        body = matcher.implementation.to_bytes()
        try:
            atomic.write_bytes(cache, cache_header(digest, body) + body)
        except OSError as error:  # a read-only workdir: every process builds its own
            log.warning("match: cannot cache the matcher in %s (%s)", cache, error)
        else:
            log.info("match: built the compiled matcher of %s, cached in %s", path, cache)
        return matcher


def queries_tokenization(stats: dict | None) -> str:
    """The tokenisation rules a queries file was built under, from its stats.json ('' when it
    records none: built before the rules had versions)."""
    rules = stats.get("tokenization") if isinstance(stats, dict) else None
    return rules if isinstance(rules, str) else ""


def warn_if_other_rules(queries: store.Location) -> bool:
    """Warn (and return True) when the stats.json beside a queries file says it was cut into words
    under other tokenisation rules than the captions will be: its queries may never match."""
    text = str(queries)
    stats_file = text[:text.rfind("/") + 1] + "stats.json"
    try:
        stats = store.read_json(stats_file) if store.exists(stats_file) else None
    except (OSError, ValueError):
        stats = None
    if stats is None:
        return False  # a queries file made elsewhere: nothing says which rules cut it
    rules = queries_tokenization(stats)
    if rules == TOKENIZATION:
        return False
    log.warning("match: %s was built under tokenisation rules %s, captions are cut under %s; "
                "rerun `wit queries` so that queries and captions agree", queries,
                rules or "from before rules had versions", TOKENIZATION)
    return True


def read_queries(path: Path) -> Iterable[tuple[int, str]]:
    """(query_id, query) of a queries.parquet."""
    table = pq.read_table(path, columns=["query_id", "query"])
    return zip(table.column("query_id").to_pylist(), table.column("query").to_pylist())
