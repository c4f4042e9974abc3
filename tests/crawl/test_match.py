"""Query matching: whole words and phrases on word boundaries, case and Unicode folded."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hypothesis import given, settings
from hypothesis import strategies as st

from wit_builder.crawl.match import QueryMatcher, matchable_text, warn_if_other_rules
from wit_builder.core.text import TOKENIZATION, normalize, normalized_words
from wit_builder.core.options import WitError

QUERIES = ["cat", "new york", "red", "red triangle", "state-of-the-art", "o'neill", "café",
           "york's", "e", "ﬁsh", "lincoln", "u.s. army", "1,000", "000", "3.5", "1775"]


@pytest.fixture(scope="module")
def matcher() -> QueryMatcher:
    return QueryMatcher.from_queries(enumerate(QUERIES))


def found(matcher: QueryMatcher, text: str) -> list[str]:
    return [QUERIES[i] for i in matcher.match(text)]


@pytest.mark.parametrize("text, expected", [
    ("A cat sat", ["cat"]),
    ("category and concatenate", []),
    ("cats", []),
    ("New York's skyline", ["new york", "york's"]),
    ("NEW   YORK", ["new york", "york's"]),  # the query "York's" is the word "york"
    ("new\nyork", ["new york", "york's"]),
    ("newyork", []),
    ("two small red triangles", ["red"]),
    ("a red triangle.", ["red", "red triangle"]),
    ("red-triangle", []),
    ("(red) [triangle]", ["red", "red triangle"]),
    ("State-of-the-art results", ["state-of-the-art"]),
    ("state of the art", []),
    ("Mr O’Neill", ["o'neill"]),
    ("CAFÉ au lait", ["café"]),
    ("cafe", []),
    ("e-mail e", ["e"]),
    ("FISH", ["ﬁsh"]),
    ("", []),
    ("!!! ???", []),
    ("Lincoln's hat", ["lincoln"]),
    ("Lincoln’s hat", ["lincoln"]),
    ("the U.S. Army", ["u.s. army"]),
    ("US Army", []),
    ("1,000 people", ["1,000"]),
    ("3.5 metres", ["3.5"]),
    ("3 5 metres", []),
    ("American Revolutionary War (1775–1783)", ["1775"]),
    ("1775-1783", ["1775"]),
    ("1775s", []),
])
def test_word_boundary_matching(matcher, text, expected):
    assert found(matcher, text) == sorted(expected, key=QUERIES.index)


def test_queries_file_automaton_is_cached_and_refreshed(tmp_path):
    path = tmp_path / "queries.parquet"
    pq.write_table(pa.table({"query_id": pa.array([0, 1], pa.int32()),
                             "query": ["blue", "green square"]}), path)
    first = QueryMatcher.for_queries_file(path)
    assert first.match("a Blue and green square") == [0, 1]
    cache = path.with_suffix(".automaton")
    assert cache.exists()
    stamp = cache.stat().st_mtime_ns
    assert QueryMatcher.for_queries_file(path).match("blue") == [0]
    assert cache.stat().st_mtime_ns == stamp  # reused, not rebuilt
    pq.write_table(pa.table({"query_id": pa.array([0], pa.int32()), "query": ["green"]}), path)
    assert QueryMatcher.for_queries_file(path).match("green square") == [0]


def test_missing_queries_file_is_a_clear_error(tmp_path):
    with pytest.raises(WitError, match="run `wit queries` first"):
        QueryMatcher.for_queries_file(tmp_path / "nope.parquet")


def reference_matchable(text: str) -> str:
    """What the matchers must see: core/text.py's words of the NFKC text."""
    return " " + " ".join(normalized_words(normalize(text))) + " "


TEXT_PIECES = st.sampled_from(["a", "B", "cat", "York", "'s", "'", "-", "--", "''", " ", "  ", ".",
                               ",", "\n", "\t", "_", "É", "ﬁ", "’", "\xa0", "7", "(", "s", "U.S.",
                               "1", "000", "–", "\0", "\udc80", "&#0;"])


@given(st.lists(TEXT_PIECES, max_size=12).map("".join))
@settings(max_examples=400, deadline=None)
def test_matchable_text_has_exactly_the_reference_words(text):
    assert matchable_text(text).split() == reference_matchable(text).split()


@given(st.lists(st.lists(TEXT_PIECES, min_size=1, max_size=4).map("".join), min_size=1,
                max_size=6),
       st.lists(TEXT_PIECES, max_size=16).map("".join))
@settings(max_examples=200, deadline=None)
def test_matches_equal_substring_search_over_normalised_words(queries, text):
    keys = [" " + " ".join(reference_matchable(q).split()) + " " for q in queries]
    padded = " " + " ".join(reference_matchable(text).split()) + " "
    last_id = {key: i for i, key in enumerate(keys) if key.strip()}  # equal keys: the last id
    expected = sorted(i for key, i in last_id.items() if key in padded)
    assert QueryMatcher.from_queries(enumerate(queries)).match(text) == expected


def test_cached_matcher_matches_like_the_freshly_built_one(tmp_path):
    queries = ["red", "red triangle", "new york", "york's", "café", "state-of-the-art"]
    path = tmp_path / "queries.parquet"
    pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                             "query": queries}), path)
    texts = ["A red triangle", "New York's café", "state-of-the-art, red-ish", "nothing"]
    built = QueryMatcher.from_queries(enumerate(queries))
    for attempt in range(2):  # the first call builds the cache, the second only reads it
        cached = QueryMatcher.for_queries_file(path)
        assert [cached.match(t) for t in texts] == [built.match(t) for t in texts] == [
            [0, 1], [2, 3, 4], [5], []]


@pytest.mark.parametrize("stats, warned", [
    ({"tokenization": TOKENIZATION}, False),
    ({"tokenization": "witbuilder-tokens-1"}, True),
    ({"queries": 10}, True),  # a stats.json from before the rules had versions
    (None, False),  # no stats.json: nothing says which rules cut the queries
])
def test_a_queries_file_built_under_other_rules_is_recognised(tmp_path, caplog, stats, warned):
    path = tmp_path / "queries.parquet"
    pq.write_table(pa.table({"query_id": pa.array([0], pa.int32()), "query": ["cat"]}), path)
    if stats is not None:
        (tmp_path / "stats.json").write_text(json.dumps(stats))
    with caplog.at_level("WARNING", logger="wit_builder.crawl.match"):
        assert warn_if_other_rules(path) is warned
    assert ("rerun `wit queries`" in caplog.text) is warned
