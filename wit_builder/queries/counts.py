"""The map step: one partition of the dump → word counts, link counts and a bigram spill file.

Unigram counts are small (bounded by the vocabulary) and come back as a dict; bigram counts are
not, so each worker writes them to a parquet spill file in row groups of bounded size, and the
reduce (`bigrams.py`) keeps only pairs of words that passed the unigram threshold.
"""

from __future__ import annotations

import resource
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.text import WORD_OR_SENTENCE_END, normalize
from wit_builder.wikipedia.pages import iter_page_blocks, parse_page
from wit_builder.wikipedia.reader import Partition, read_partition
from wit_builder.wikipedia.wikitext import link_targets, strip_wikitext

SENTENCE_END_CHARS = ".!?\n"
SPILL_SCHEMA = pa.schema([("w1", pa.string()), ("w2", pa.string()), ("count", pa.int64())])
# Distinct pairs held before a row group is written: bounds a worker's memory whatever the dump.
FLUSH_PAIRS = 1_000_000


@dataclass(frozen=True)
class CountTask:
    """One partition to count, and where its bigrams go."""
    partition: Partition
    spill_path: str
    count_links: bool = False


@dataclass
class PartialCounts:
    """What one partition (or, merged, the whole dump) contributed."""
    unigrams: Counter = field(default_factory=Counter)
    links: Counter = field(default_factory=Counter)
    pages: int = 0
    articles: int = 0
    redirects: int = 0
    other_namespaces: int = 0
    tokens: int = 0
    spills: list[str] = field(default_factory=list)
    peak_rss_kb: int = 0

    def merge(self, other: PartialCounts) -> None:
        self.unigrams.update(other.unigrams)
        self.links.update(other.links)
        self.pages += other.pages
        self.articles += other.articles
        self.redirects += other.redirects
        self.other_namespaces += other.other_namespaces
        self.tokens += other.tokens
        self.spills.extend(other.spills)
        self.peak_rss_kb = max(self.peak_rss_kb, other.peak_rss_kb)


def count_partition(task: CountTask) -> PartialCounts:
    """Count the words, within-sentence pairs and (optionally) link targets of one partition."""
    counts = PartialCounts()
    bigrams: Counter = Counter()
    with pq.ParquetWriter(task.spill_path, SPILL_SCHEMA, compression="zstd") as spill:
        for fragment in read_partition(task.partition):
            text = article_text(fragment, counts, task.count_links)
            # Sentence ends are tokens too (".", "\n\n", "?"...), so a pair never spans two
            # sentences without a second pass; they are dropped from both counters below.
            tokens = WORD_OR_SENTENCE_END.findall(normalize(text))
            counts.unigrams.update(tokens)
            bigrams.update(zip(tokens, tokens[1:]))
            if len(bigrams) >= FLUSH_PAIRS:
                write_pairs(spill, bigrams)
                bigrams = Counter()
        write_pairs(spill, bigrams)
    for token in [token for token in counts.unigrams if token[0] in SENTENCE_END_CHARS]:
        del counts.unigrams[token]
    counts.tokens = sum(counts.unigrams.values())
    counts.spills.append(task.spill_path)
    counts.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return counts


def article_text(fragment: bytes, counts: PartialCounts, count_links: bool) -> str:
    """The plain text of a fragment's articles (namespace 0, not redirects), one per line."""
    texts = []
    for block in iter_page_blocks(fragment):
        page = parse_page(block)
        counts.pages += 1
        if page.namespace != 0:
            counts.other_namespaces += 1
            continue
        if page.redirect:
            counts.redirects += 1
            continue
        counts.articles += 1
        if count_links:
            counts.links.update(link_targets(page.text))
        texts.append(strip_wikitext(page.text))
    return "\n".join(texts)


def write_pairs(spill: pq.ParquetWriter, bigrams: Counter) -> None:
    """One row group of (w1, w2, count), sentence-end pairs left out."""
    pairs = [(pair, count) for pair, count in bigrams.items()
             if pair[0][0] not in SENTENCE_END_CHARS and pair[1][0] not in SENTENCE_END_CHARS]
    if not pairs:
        return
    table = pa.table({"w1": [pair[0] for pair, _ in pairs],
                      "w2": [pair[1] for pair, _ in pairs],
                      "count": [count for _, count in pairs]}, schema=SPILL_SCHEMA)
    spill.write_table(table)
