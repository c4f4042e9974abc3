"""The default language filter on real short texts: the GIMP manual's alt texts in English,
German, French and Spanish (Debian gimp-help-*), those that contain a query of Debian's wamerican
word list, as the crawl asks them (fetched into the real-material cache; skipped offline)."""

from __future__ import annotations

import zlib

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from support import langdata
from support.realdata import Unavailable
from wit_builder.crawl.config import CrawlConfig
from wit_builder.crawl.language import DEFAULT_MIN_PROB, cached_detector

GOAL = 0.97  # of English alt texts kept, and of each other language's dropped
PER_LANGUAGE = 300  # texts of each language asked (a fixed sample: the benchmark asks them all)


@pytest.fixture(scope="module")
def matched_alt_texts(tmp_path_factory) -> tuple[dict[str, list[str]], str]:
    """{language: alt texts that contain a query} and the queries file they matched."""
    try:
        queries = langdata.word_list_queries()
        texts = langdata.matched_texts(langdata.alt_texts(), queries)
    except Unavailable as error:
        pytest.skip(str(error))
    path = tmp_path_factory.mktemp("queries") / "queries.parquet"
    pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                             "query": queries}), path)
    return texts, str(path)


def test_default_detector_keeps_english_alt_texts_and_drops_german_french_spanish(
        matched_alt_texts):
    texts, queries = matched_alt_texts
    backend = CrawlConfig.lang_detector  # the default, as a crawl with no --lang-detector runs
    detector = cached_detector(backend, "en", 0, queries)
    threshold = DEFAULT_MIN_PROB[backend]
    kept = {}
    for lang, found in texts.items():
        assert len(found) >= PER_LANGUAGE, lang
        found = sorted(found, key=lambda text: zlib.crc32(text.encode()))[:PER_LANGUAGE]
        decisions = [detector.detect(text) for text in found]
        kept[lang] = sum(code == "en" and prob >= threshold for code, prob in decisions) / len(found)
    assert kept["en"] >= GOAL, kept  # langdetect: ~73%, lingua: ~80%
    for lang in langdata.FOREIGN:
        assert 1 - kept[lang] >= GOAL, (lang, kept)
