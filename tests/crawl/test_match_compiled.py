"""The compiled word-level matcher gives exactly the pyahocorasick reference's ids, and its tables
survive the cache round trip."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wit_builder.crawl import match
from wit_builder.crawl.match import QueryMatcher, matchable_text


WORDS = ["cat", "new", "york", "red", "triangle", "state-of-the-art", "o'neill", "café", "e",
         "ﬁsh", "s", "a", "it's", "york's", "x-ray", "naïve", "straße", "東京", "7", "42nd",
         "'s", "dog", "the", "of", "u.s.", "1,000", "3.5", "i.e.", "1775"]
# Pieces that exercise every rule of the text side: case, punctuation, joiners in and out of
# words, possessives, Unicode letters, NFKC (ligatures, full-width, no-break space), digits.
PIECES = ["cat", "Cat", "CAT", "new", "York", "york", "'s", "'", "-", "--", "''", "s", "S",
          " ", "  ", ".", ",", "!", "\n", "\t", "_", "(", ")", "É", "é", "café", "CAFÉ", "ﬁ",
          "ﬁsh", "’", "\xa0", "7", "42nd", "red", "triangle", "state", "of", "the", "art",
          "o", "neill", "x", "ray", "東京", "ｃａｔ", "naïve", "STRASSE", "straße", "the", "a",
          "e", "dog", "\u02bc", "\u2011", "ʼs", "U.", "S.", "i.e.", "1", "000", "1,000", "3.5",
          ",5", ".5", "5", "–", "\0", "\ud800", "\udcff", "&#0;", ":", ";", "/"]


def test_the_compiled_matcher_is_built():
    assert match.compiled_available(), "pip install -e . did not build wit_builder/crawl/_crawlfast.c"


def both_matchers(queries: list[str]) -> tuple[QueryMatcher, QueryMatcher]:
    pairs = list(enumerate(queries))
    return (QueryMatcher.from_queries(pairs, kind="compiled"),
            QueryMatcher.from_queries(pairs, kind="automaton"))


def generated_queries(rng: random.Random, count: int) -> list[str]:
    """1-5 word queries over WORDS, some repeated and some normalising to nothing."""
    queries = [" ".join(rng.choices(WORDS, k=rng.choice([1, 1, 1, 2, 2, 3, 4, 5])))
               for _ in range(count)]
    return queries + queries[:5] + ["", "!!", "New  York", "NEW YORK's"]


def generated_text(rng: random.Random) -> str:
    return "".join(rng.choices(PIECES, k=rng.randint(0, 30)))


def test_compiled_matches_equal_the_automaton_on_generated_texts():
    rng = random.Random(7)
    compiled, automaton = both_matchers(generated_queries(rng, 400))
    texts = [generated_text(rng) for _ in range(4000)]
    texts += [" ".join(rng.choices(WORDS, k=rng.randint(1, 12))) for _ in range(2000)]
    texts += ["", " ", "cat cat cat", "new york new york's", "red triangle red triangle"]
    found = [compiled.match(text) for text in texts]
    assert found == [automaton.match(text) for text in texts]
    assert sum(map(len, found)) > 3000  # the texts do hit queries, phrases included


def test_compiled_matcher_passes_the_word_boundary_cases():
    queries = ["cat", "new york", "red", "red triangle", "state-of-the-art", "o'neill", "café",
               "york's", "e", "ﬁsh"]
    compiled, automaton = both_matchers(queries)
    cases = ["A cat sat", "category and concatenate", "cats", "New York's skyline",
             "NEW   YORK", "new\nyork", "newyork", "two small red triangles", "a red triangle.",
             "red-triangle", "(red) [triangle]", "State-of-the-art results", "state of the art",
             "Mr O’Neill", "CAFÉ au lait", "cafe", "e-mail e", "FISH", "", "!!! ???"]
    assert [compiled.match(text) for text in cases] == [automaton.match(text) for text in cases]
    assert compiled.match("New York's skyline") == [1, 7]
    assert compiled.match("cats") == []


def test_overlapping_and_nested_phrases_all_match():
    queries = ["a b", "b c", "a b c", "b", "a b c d e", "c d", "x"]
    compiled, automaton = both_matchers(queries)
    for text in ["a b c d e", "A-b c", "a b, c d; e", "b a b a b c", "a b c d x e"]:
        assert compiled.match(text) == automaton.match(text)
    assert compiled.match("a b c d e") == [0, 1, 2, 3, 4, 5]


def test_equal_keys_keep_the_last_query_id_like_the_automaton():
    compiled, automaton = both_matchers(["Red", "red", "blue sky", "Blue  sky", "red"])
    assert compiled.match("RED blue sky") == automaton.match("RED blue sky") == [3, 4]


@given(st.lists(st.sampled_from(PIECES), max_size=20).map("".join))
@settings(max_examples=400, deadline=None)
def test_compiled_words_are_the_matchable_words(text):
    compiled = QueryMatcher.from_queries([(0, "cat")], kind="compiled")
    assert compiled.implementation.words.words(text) == matchable_text(text).split()


@given(st.lists(st.lists(st.sampled_from(PIECES), min_size=1, max_size=4).map("".join),
                min_size=1, max_size=8),
       st.lists(st.sampled_from(PIECES), max_size=24).map("".join))
@settings(max_examples=300, deadline=None)
def test_compiled_equals_automaton_on_any_queries_and_text(queries, text):
    compiled, automaton = both_matchers(queries)
    assert compiled.match(text) == automaton.match(text)


def test_long_texts_and_long_words_match_like_the_automaton():
    long_word = "w" * 300
    compiled, automaton = both_matchers([long_word, f"{long_word} cat", "cat"])
    text = f"{'filler ' * 2000}{long_word.upper()} cat {long_word}x"
    assert compiled.match(text) == automaton.match(text) == [0, 1, 2]


def test_compiled_cache_is_reused_and_matches_like_the_fresh_build(tmp_path):
    queries = ["red", "red triangle", "new york", "york's", "café", "state-of-the-art"]
    path = tmp_path / "queries.parquet"
    pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                             "query": queries}), path)
    texts = ["A red triangle", "New York's café", "state-of-the-art, red-ish", "nothing"]
    first = QueryMatcher.for_queries_file(path, kind="compiled")
    cache = path.with_suffix(".automaton")
    assert cache.read_bytes().startswith(b"witbuilder-matcher-3 compiled ")
    stamp = cache.stat().st_mtime_ns
    again = QueryMatcher.for_queries_file(path, kind="compiled")
    assert cache.stat().st_mtime_ns == stamp  # read, not rebuilt
    expected = [[0, 1], [2, 3, 4], [5], []]
    assert [first.match(t) for t in texts] == [again.match(t) for t in texts] == expected
    # the automaton is never cached (pyahocorasick serialises only by pickle): built, the
    # compiled cache left as it is
    fallback = QueryMatcher.for_queries_file(path, kind="automaton")
    assert [fallback.match(t) for t in texts] == expected
    assert cache.stat().st_mtime_ns == stamp


def test_compiled_tables_round_trip_through_bytes():
    compiled, _ = both_matchers(generated_queries(random.Random(3), 300))
    data = compiled.implementation.to_bytes()
    loaded = match.CompiledMatcher.from_bytes(data)
    texts = [generated_text(random.Random(seed)) for seed in range(300)]
    assert [loaded.match(t) for t in texts] == [compiled.match(t) for t in texts]
    assert loaded.to_bytes() == data  # entries in id order: the bytes do not depend on the key
    with pytest.raises(ValueError, match="not the bytes of a query matcher"):
        match.CompiledMatcher.from_bytes(data[:-1])


def test_missing_extension_falls_back_to_the_automaton_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(match, "_crawlfast", None)
    with caplog.at_level("WARNING", logger="wit_builder.crawl.match"):
        matcher = QueryMatcher.from_queries([(0, "cat")])
    assert matcher.kind == "automaton" and matcher.match("A cat.") == [0]
    assert "compiled matcher is not built" in caplog.text
