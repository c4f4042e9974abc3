"""The settings of `wit queries` (`wit queries --help` is generated from them)."""

from __future__ import annotations

from dataclasses import dataclass

from wit_builder.core.config import PartitionedStageConfig
from wit_builder.core.options import option


@dataclass
class QueriesConfig(PartitionedStageConfig):
    wiki: str = option("", "the dump (required): multistream or single-stream .xml.bz2, part "
                           "files (a directory or glob), plain .xml, or an http(s):// URL")
    index: str = option("", "multistream index (default: found beside the dump)")
    pageviews: list[str] = option([], "pageviews files (Wikimedia's hourly pageviews-*.gz: "
                                      "'en Title views bytes' lines), summed; repeatable",
                                  metavar="FILE")
    wordnet: str = option("", "WordNet 3.0 database directory (data.noun, ...) or a WN-LMF XML file")
    out: str = option("queries", "output directory")
    min_count: int = option(100, "unigrams occurring at least this often become queries", min=1)
    bigram_min_count: int = option(100, "bigrams must occur at least this often", min=1)
    bigrams: int = option(100_000, "highest-PMI bigrams kept", min=0)
    title_min_views: int = option(70, "titles need at least this many summed page views", min=0)
    title_min_links: int = option(100, "without --pageviews: titles need at least this many "
                                       "inbound links from articles of the dump", min=0)
    keep_numbers: bool = option(False, "keep numbers as unigram queries (by default only "
                                       "four-digit years are), and bigrams of two numbers")
    wordnet_all_lemmas: bool = option(False, "add every lemma of a synset, not only the head lemma")
    target: int = option(500_000, "total queries wanted", min=1)
