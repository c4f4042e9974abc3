"""The matcher cache is data, never code (issue 16): a crafted or damaged `queries.automaton`
(truncated, bad magic, sizes out of range, offsets past the end, overflowing lengths, a wrong
checksum, an old-format table dump with an out-of-range mask, a pickle that would run code) is
rebuilt from the queries file with one warning and gives the same matches; the extension's loader
refuses every malformed body without reading out of bounds; the word hash is keyed per process;
and compiled and Python matching agree on any text (NUL, invalid UTF-8, long words, repeats).

Self-contained and quick: the sanitizer job re-runs this file against an ASan/UBSan build.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import random
import struct
import subprocess
import sys
import textwrap

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wit_builder.core import atomic
from wit_builder.core.text import TOKENIZATION
from wit_builder.crawl import match
from wit_builder.crawl.match import CompiledMatcher, QueryMatcher

pytestmark = pytest.mark.skipif(not match.compiled_available(),
                                reason="the compiled matcher is not built")

# Words of 1, 16 and 17+ bytes (inline and arena keys), phrases sharing prefixes, non-ASCII.
QUERIES = ["cat", "red", "red triangle", "red triangle sky", "new york", "york's", "café",
           "sixteen-letterss", "seventeen-letters", "a b c d", "b c", "東京 タワー", "x" * 40,
           "state-of-the-art", "o'neill", "e"]
TEXTS = ["A red triangle sky", "New York's café", "sixteen-letterss seventeen-letters",
         "a b c d e", "東京 タワー", "X" * 40, "State-of-the-art O’Neill", "nothing here", ""]

HEADER = struct.Struct("<32sQQQ")
MAGIC = b"witbuilder-wordmatcher-2".ljust(32, b"\0")


@pytest.fixture()
def queries(tmp_path):
    path = tmp_path / "queries.parquet"
    pq.write_table(pa.table({"query_id": pa.array(range(len(QUERIES)), pa.int32()),
                             "query": QUERIES}), path)
    return path


@pytest.fixture(scope="module")
def expected() -> list[list[int]]:
    reference = QueryMatcher.from_queries(enumerate(QUERIES), kind="automaton")
    found = [reference.match(text) for text in TEXTS]
    assert sum(map(len, found)) >= 15
    return found


def body_of(queries: list[str] = QUERIES) -> bytes:
    return QueryMatcher.from_queries(enumerate(queries), kind="compiled").implementation.to_bytes()


def sections(body: bytes) -> tuple[int, int, int]:
    """(words, edges, text bytes) of a body's header."""
    _, words, edges, text = HEADER.unpack_from(body)
    return words, edges, text


def word_record(body: bytes, index: int) -> int:
    return HEADER.size + 8 * index


def edge_record(body: bytes, index: int) -> int:
    words, _, _ = sections(body)
    return HEADER.size + 8 * words + 12 * index


def sealed(queries_path, body: bytes) -> bytes:
    """A cache file around `body` whose header is right: only the extension can refuse it."""
    return match.cache_header(atomic.sha256_file(queries_path), body) + body


def patched(body: bytes, offset: int, fmt: str, *values) -> bytes:
    data = bytearray(body)
    struct.pack_into(fmt, data, offset, *values)
    return bytes(data)


def load_with_cache(queries_path, content: bytes, caplog) -> tuple[QueryMatcher, list[str]]:
    """The matcher for_queries_file gives with `content` as the cache, and its warnings."""
    cache = queries_path.with_suffix(match.CACHE_SUFFIX)
    cache.write_bytes(content)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wit_builder.crawl.match"):
        matcher = QueryMatcher.for_queries_file(queries_path, kind="compiled")
    return matcher, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def assert_rebuilt(queries_path, content: bytes, caplog, expected, reason: str) -> None:
    matcher, warnings = load_with_cache(queries_path, content, caplog)
    assert len(warnings) == 1 and "unsound" in warnings[0] and reason in warnings[0], warnings
    assert [matcher.match(text) for text in TEXTS] == expected
    # the rebuilt cache is sound: read back without a warning, not rewritten
    cache = queries_path.with_suffix(match.CACHE_SUFFIX)
    stamp = cache.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="wit_builder.crawl.match"):
        again = QueryMatcher.for_queries_file(queries_path, kind="compiled")
    assert not caplog.records and cache.stat().st_mtime_ns == stamp
    assert [again.match(text) for text in TEXTS] == expected


def test_a_sound_cache_is_read_and_matches_like_a_fresh_build(queries, caplog, expected):
    first = QueryMatcher.for_queries_file(queries, kind="compiled")
    cache = queries.with_suffix(match.CACHE_SUFFIX)
    content = cache.read_bytes()
    header, body = content.split(b"\n", 1)
    fields = header.split(b" ")
    assert fields[:4] == [b"witbuilder-matcher-3", b"compiled",
                          atomic.sha256_file(queries).encode(), TOKENIZATION.encode()]
    assert int(fields[4]) == len(body)
    assert fields[5] == hashlib.blake2b(body, digest_size=32).hexdigest().encode()
    matcher, warnings = load_with_cache(queries, content, caplog)
    assert warnings == []
    assert [first.match(t) for t in TEXTS] == [matcher.match(t) for t in TEXTS] == expected


def test_a_cache_of_another_queries_file_is_rebuilt_quietly(queries, caplog, expected):
    other = sealed(queries, body_of(["dog"])).replace(
        atomic.sha256_file(queries).encode(), b"0" * 64)
    matcher, warnings = load_with_cache(queries, other, caplog)
    assert warnings == [] and [matcher.match(t) for t in TEXTS] == expected


CRAFTED_FILES = {
    "empty": (lambda q, body: b"", "not a matcher cache of this version"),
    "header without a newline": (lambda q, body: sealed(q, body).split(b"\n")[0],
                                 "not a matcher cache of this version"),
    "header too long": (lambda q, body: b"witbuilder-matcher-3 " + b"x" * 600 + b"\n",
                        "not a matcher cache of this version"),
    "truncated": (lambda q, body: sealed(q, body)[:-7], "bytes where the header says"),
    "extended": (lambda q, body: sealed(q, body) + b"\0", "bytes where the header says"),
    "length field not a number": (
        lambda q, body: sealed(q, body).replace(f" {len(body)} ".encode(), b" -1 ", 1),
        "malformed header"),
    "wrong checksum": (lambda q, body: sealed(q, body)[:-1] + bytes([body[-1] ^ 1]),
                       "checksum mismatch"),
    "cut under other tokenisation rules": (
        lambda q, body: sealed(q, body).replace(TOKENIZATION.encode(), b"witbuilder-tokens-1", 1),
        "tokenisation rules 'witbuilder-tokens-1'"),
    "the previous format (no tokenisation rules)": (
        lambda q, body: sealed(q, body).replace(b"matcher-3", b"matcher-2", 1)
        .replace(b" " + TOKENIZATION.encode(), b"", 1),
        "not a matcher cache of this version"),
    "binary garbage": (lambda q, body: bytes(random.Random(1).randrange(256)
                                             for _ in range(4096)),
                       "not a matcher cache of this version"),
}


@pytest.mark.parametrize("name", CRAFTED_FILES)
def test_crafted_cache_files_are_rebuilt_with_a_warning(name, queries, caplog, expected):
    craft, reason = CRAFTED_FILES[name]
    assert_rebuilt(queries, craft(queries, body_of()), caplog, expected, reason)


def crafted_bodies(body: bytes) -> dict[str, tuple[bytes, str]]:
    """Bodies with a right checksum that the extension must refuse, with the reason it gives."""
    words, edges, text = sections(body)
    assert words >= 10 and edges >= 3
    return {
        "bad magic": (b"witbuilder-wordmatcher-1".ljust(32, b"\0") + body[32:], "bad magic"),
        "shorter than a header": (body[:HEADER.size - 1], "shorter than its header"),
        "header only": (body[:HEADER.size], "sizes disagree"),
        "huge word count": (patched(body, 32, "<Q", 1 << 62), "counts out of range"),
        "word count past the buffer": (patched(body, 32, "<Q", words + 1), "sizes disagree"),
        "edge count past the buffer": (patched(body, 40, "<Q", edges + 1), "sizes disagree"),
        "text bytes overflowing": (patched(body, 48, "<Q", (1 << 64) - 1), "sizes disagree"),
        "text bytes short": (patched(body, 48, "<Q", text - 1), "sizes disagree"),
        "word length past the end": (patched(body, word_record(body, words - 1) + 4, "<I",
                                             0xFFFFFFFF), "length out of range"),
        "word length zero": (patched(body, word_record(body, 0) + 4, "<I", 0),
                             "length out of range"),
        "word lengths short of the text": (
            patched(body, word_record(body, 0) + 4, "<I",
                    struct.unpack_from("<I", body, word_record(body, 0) + 4)[0] - 1),
            "disagree with the text"),
        "repeated word": (repeat_first_word(body), "a word repeats"),
        "space in a word": (space_in_first_word(body), "holds a space"),
        "edge word out of range": (patched(body, edge_record(body, 0) + 4, "<I", words),
                                   "out of range"),
        "edge word 0xffffffff": (patched(body, edge_record(body, 0) + 4, "<I", 0xFFFFFFFF),
                                 "out of range"),
        "edge parent a later node": (patched(body, edge_record(body, 0), "<I", words),
                                     "out of range"),
        "edge parent 0xffffffff": (patched(body, edge_record(body, 1), "<I", 0xFFFFFFFF),
                                   "out of range"),
        "repeated edge": (patched(body, edge_record(body, 1), "<II",
                                  *struct.unpack_from("<II", body, edge_record(body, 0))),
                          "edge repeats"),
    }


def repeat_first_word(body: bytes) -> bytes:
    """Word 1 made a copy of word 0 (same length and bytes), the text kept as long."""
    words, edges, text = sections(body)
    start = HEADER.size + 8 * words + 12 * edges
    first, second = (struct.unpack_from("<I", body, word_record(body, i) + 4)[0] for i in (0, 1))
    data = bytearray(body)
    struct.pack_into("<I", data, word_record(body, 1) + 4, first)
    struct.pack_into("<I", data, word_record(body, 2) + 4,
                     struct.unpack_from("<I", body, word_record(body, 2) + 4)[0] + second - first)
    data[start + first:start + 2 * first] = body[start:start + first]
    return bytes(data)


def space_in_first_word(body: bytes) -> bytes:
    words, edges, _ = sections(body)
    data = bytearray(body)
    data[HEADER.size + 8 * words + 12 * edges] = ord(" ")
    return bytes(data)


@pytest.mark.parametrize("name", list(crafted_bodies(body_of())))
def test_crafted_bodies_are_refused_by_the_extension_and_rebuilt(name, queries, caplog,
                                                                  expected):
    crafted, reason = crafted_bodies(body_of())[name]
    with pytest.raises(ValueError, match=reason):
        CompiledMatcher.from_bytes(crafted)
    assert_rebuilt(queries, sealed(queries, crafted), caplog, expected, reason)


def old_table_dump(word_mask: int) -> bytes:
    """The cache of the format before this one: the tables as they lay in memory, the masks
    trusted; an out-of-range mask made the old loader read past its buffer."""
    header = struct.pack("<32s5Q", b"witbuilder-wordmatcher-1", word_mask, 3, 1023, 0, 0)
    return header + bytes(32 * 1024 + 16 * 1024)


def test_old_format_cache_with_an_out_of_range_mask_is_rebuilt(queries, caplog, expected):
    digest = atomic.sha256_file(queries)
    for mask in (1023, (1 << 63) - 1, (1 << 64) - 1):
        content = f"witbuilder-matcher compiled {digest}\n".encode() + old_table_dump(mask)
        assert_rebuilt(queries, content, caplog, expected, "not a matcher cache of this version")
        with pytest.raises(ValueError, match="bad magic"):
            CompiledMatcher.from_bytes(old_table_dump(mask))


class Marker:
    """Unpickling this creates `path` (through open(path, "w")): a stand-in for running code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickle_in_the_cache_is_never_unpickled(queries, caplog, expected, tmp_path):
    proof = tmp_path / "proof"
    pickle.loads(pickle.dumps(Marker(proof))).close()
    assert proof.exists()  # the payload is live: unpickling it does run code
    marker = tmp_path / "marker"
    payload = pickle.dumps(Marker(marker))
    digest = atomic.sha256_file(queries).encode()
    contents = [payload,
                b"witbuilder-matcher automaton " + digest + b"\n" + payload,  # the old fallback's
                b"witbuilder-matcher compiled " + digest + b"\n" + payload,
                match.cache_header(digest.decode(), payload) + payload]
    for content in contents:
        assert_rebuilt(queries, content, caplog, expected, "")
        cache = queries.with_suffix(match.CACHE_SUFFIX)
        cache.write_bytes(content)
        for kind in ("automaton", None):  # the fallback builds; it never reads the cache
            matcher = QueryMatcher.for_queries_file(queries, kind=kind)
            assert [matcher.match(text) for text in TEXTS] == expected
    assert not marker.exists()
    source = open(match.__file__).read()
    assert "import pickle" not in source and "pickle.load" not in source


def test_the_loader_survives_every_truncation_and_random_damage():
    """Whatever the bytes, from_bytes raises ValueError or gives a matcher that matches without
    crashing (under the sanitizer build: without reading or writing out of bounds)."""
    body = body_of(QUERIES[:8])
    rng = random.Random(16)
    candidates = [body[:end] for end in range(len(body))]
    edges_at = edge_record(body, 0)
    for _ in range(3000):
        data = bytearray(body)
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.5:
                data[rng.randrange(len(data))] = rng.randrange(256)
            else:  # a field set to a boundary value
                offset = rng.randrange(32, len(data) - 3) & ~3
                struct.pack_into("<I", data, offset,
                                 rng.choice([0, 1, 2, 0x3FFFFFFF, 0x40000000, 0x7FFFFFFF,
                                             0x80000000, 0xFFFFFFFF]))
        candidates.append(bytes(data))
    candidates.append(body[:edges_at] + body[edges_at:][::-1])
    loaded = 0
    for data in candidates:
        try:
            matcher = CompiledMatcher.from_bytes(data)
        except ValueError as error:
            assert "not the bytes of a query matcher" in str(error)
            continue
        loaded += 1
        for text in TEXTS:
            matcher.match(text)
        assert CompiledMatcher.from_bytes(matcher.to_bytes()).to_bytes() == matcher.to_bytes()
    assert loaded > 100  # damage to query ids and text bytes still loads (and only matches less)


def subprocess_output(code: str) -> str:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], check=True,
                          capture_output=True, text=True).stdout


def test_the_word_hash_is_keyed_per_process_and_the_cache_is_not():
    code = f"""
        from wit_builder.crawl import _crawlfast
        from wit_builder.crawl.match import QueryMatcher
        matcher = QueryMatcher.from_queries(enumerate({QUERIES!r}), kind="compiled")
        print(_crawlfast._word_hash(b"cat"), matcher.implementation.to_bytes().hex())
    """
    runs = [subprocess_output(code).split() for _ in range(2)]
    hashes = {int(run[0]) for run in runs} | {match._crawlfast._word_hash(b"cat")}
    assert len(hashes) == 3  # three processes, three keys
    assert runs[0][1] == runs[1][1] == body_of().hex()  # the cache's bytes do not depend on it


# ---- compiled and Python matching agree on any text ----

FUZZ_WORDS = ["cat", "red", "triangle", "new", "york", "'s", "café", "e", "a", "b", "c",
              "sixteen-letterss", "seventeen-letters", "東京", "x" * 40, "o'neill", "x-ray"]


def fuzz_text(rng: random.Random) -> str:
    shape = rng.randrange(7)
    if shape == 0:  # arbitrary bytes, undecodable ones kept as lone surrogates
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 60))).decode(
            "utf-8", "surrogateescape")
    if shape == 1:  # words and NULs
        return "\0".join(rng.choices(FUZZ_WORDS, k=rng.randint(0, 10)))
    if shape == 2:  # a long word, sometimes one of the queries' words repeated
        return (rng.choice(FUZZ_WORDS) * rng.randint(1, 400))[:5000] + rng.choice(["", " cat"])
    if shape == 3:  # many repeats of a phrase
        return " ".join([rng.choice(["red triangle", "a b c", "new york's"])] * rng.randint(1,
                                                                                            500))
    if shape == 4:  # words with invalid UTF-8 and control characters between them
        pieces = FUZZ_WORDS + ["\0", "\udc80", "\udcff", "\x1f", "\x7f", "\u0085", "\ufffd",
                               "\U0001f600", " ", "-", "'"]
        return "".join(rng.choices(pieces, k=rng.randint(0, 30)))
    if shape == 5:  # Latin-1 text with NUL
        return bytes(rng.choice([0, 32, 39, 45, *range(65, 91), *range(192, 256)])
                     for _ in range(rng.randint(0, 40))).decode("latin-1")
    return " ".join(rng.choices(FUZZ_WORDS, k=rng.randint(1, 12)))


def test_compiled_and_python_matching_agree_on_hostile_texts():
    rng = random.Random(18)
    queries = [" ".join(rng.choices(FUZZ_WORDS, k=rng.choice([1, 1, 2, 3]))) for _ in range(150)]
    queries += ["x" * 40 + " cat", "\0cat\0", "red\udc80triangle", "a b c " * 20]
    compiled = QueryMatcher.from_queries(enumerate(queries), kind="compiled")
    reference = QueryMatcher.from_queries(enumerate(queries), kind="automaton")
    loaded = CompiledMatcher.from_bytes(compiled.implementation.to_bytes())
    texts = [fuzz_text(rng) for _ in range(2500)]
    hits = 0
    for text in texts:
        found = compiled.match(text)
        assert found == reference.match(text) == loaded.match(text), repr(text)
        assert compiled.implementation.words.words(text) == match.matchable_text(text).split()
        hits += len(found)
    assert hits > 2000
