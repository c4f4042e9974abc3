"""The map step: one partition of the dump → word counts, link counts and a bigram spill file.

Unigram counts are small (bounded by the vocabulary) and come back as a dict; bigram counts are
not, so each worker writes them to a parquet spill file in row groups of bounded size, and the
reduce (`bigrams.py`) keeps only pairs of words that passed the unigram threshold.
"""

from __future__ import annotations

import os
import resource
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.text import WORD_OR_SENTENCE_END, normalize
from wit_builder.wikipedia.pages import iter_page_blocks, parse_page
from wit_builder.wikipedia.reader import Partition, read_partition
from wit_builder.wikipedia.wikitext import strip_wikitext

SENTENCE_END_CHARS = ".!?\n"
SPILL_SCHEMA = pa.schema([("w1", pa.string()), ("w2", pa.string()), ("count", pa.int64())])
# Pair rows held before a row group is written: bounds a worker's memory whatever the dump.
FLUSH_PAIRS = 2_000_000


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
    titles: set[str] = field(default_factory=set)  # of the articles
    redirect_targets: dict[str, str] = field(default_factory=dict)  # redirect title -> target
    spills: list[str] = field(default_factory=list)
    peak_rss_kb: int = 0
    worker_cpu_seconds: dict[int, float] = field(default_factory=dict)  # by process id

    def merge(self, other: PartialCounts) -> None:
        self.unigrams.update(other.unigrams)
        self.links.update(other.links)
        self.pages += other.pages
        self.articles += other.articles
        self.redirects += other.redirects
        self.other_namespaces += other.other_namespaces
        self.tokens += other.tokens
        self.titles.update(other.titles)
        self.redirect_targets.update(other.redirect_targets)
        self.spills.extend(other.spills)
        self.peak_rss_kb = max(self.peak_rss_kb, other.peak_rss_kb)
        for pid, seconds in other.worker_cpu_seconds.items():
            self.worker_cpu_seconds[pid] = self.worker_cpu_seconds.get(pid, 0.0) + seconds


def count_partition(task: CountTask) -> PartialCounts:
    """Count the words, within-sentence pairs and (optionally) link targets of one partition."""
    started = time.process_time()
    counts = PartialCounts()
    pairs = PairCounter()
    with pq.ParquetWriter(task.spill_path, SPILL_SCHEMA, compression="zstd") as spill:
        for fragment in read_partition(task.partition):
            text = article_text(fragment, counts, task.count_links)
            # Sentence ends are tokens too (".", "\n\n", "?"...), so pairs are counted in one
            # pass over all tokens and those touching a sentence end are dropped afterwards.
            tokens = WORD_OR_SENTENCE_END.findall(text)
            fragment_counts = Counter(tokens)
            counts.unigrams.update(fragment_counts)
            pairs.add(tokens, fragment_counts)
            if pairs.rows >= FLUSH_PAIRS:
                pairs.write(spill)
        pairs.write(spill)
    for token in [token for token in counts.unigrams if token[0] in SENTENCE_END_CHARS]:
        del counts.unigrams[token]
    counts.tokens = sum(counts.unigrams.values())
    counts.spills.append(task.spill_path)
    counts.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts.worker_cpu_seconds = {os.getpid(): time.process_time() - started}
    return counts


class PairCounter:
    """Adjacent-token pairs counted with numpy: tokens become ids of a partition vocabulary, a
    pair becomes one int64 key (id1 << 32 | id2), and keys are summed by sorting, not hashing."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.words: list[str] = []
        self.sentence_end = np.zeros(0, dtype=bool)
        self.keys: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.rows = 0

    def add(self, tokens: list[str], distinct: Counter) -> None:
        new = [token for token in distinct if token not in self.ids]
        if new:
            self.ids.update(zip(new, range(len(self.words), len(self.words) + len(new))))
            self.words.extend(new)
            ends = np.array([token[0] in SENTENCE_END_CHARS for token in new], dtype=bool)
            self.sentence_end = np.concatenate([self.sentence_end, ends])
        if len(tokens) < 2:
            return
        ids = np.fromiter(map(self.ids.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        inside = ~(self.sentence_end[ids[:-1]] | self.sentence_end[ids[1:]])
        keys, counts = np.unique((ids[:-1][inside] << 32) | ids[1:][inside], return_counts=True)
        self.keys.append(keys)
        self.counts.append(counts)
        self.rows += len(keys)

    def summed(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.concatenate(self.keys) if self.keys else np.zeros(0, dtype=np.int64)
        counts = np.concatenate(self.counts) if self.counts else np.zeros(0, dtype=np.int64)
        if len(self.keys) > 1:
            keys, inverse = np.unique(keys, return_inverse=True)
            counts = np.bincount(inverse, weights=counts, minlength=len(keys)).astype(np.int64)
        return keys, counts

    def write(self, spill: pq.ParquetWriter) -> None:
        """One row group of (w1, w2, count); the counter starts again empty."""
        keys, counts = self.summed()
        self.keys, self.counts, self.rows = [], [], 0
        if not len(keys):
            return
        words = pa.array(self.words, pa.string())
        table = pa.table({"w1": words.take(pa.array(keys >> 32)),
                          "w2": words.take(pa.array(keys & 0xFFFFFFFF)),
                          "count": pa.array(counts, pa.int64())}, schema=SPILL_SCHEMA)
        spill.write_table(table, row_group_size=1 << 18)


def article_text(fragment: bytes, counts: PartialCounts, count_links: bool) -> str:
    """The normalised plain text of a fragment's articles (namespace 0, not redirects)."""
    texts = []
    for block in iter_page_blocks(fragment):
        page = parse_page(block)
        counts.pages += 1
        if page.namespace != 0:
            counts.other_namespaces += 1
            continue
        if page.redirect:
            counts.redirects += 1
            counts.redirect_targets[page.title] = page.redirect_target
            continue
        counts.articles += 1
        counts.titles.add(page.title)
        if count_links:
            links: list[str] = []
            texts.append(normalize(strip_wikitext(page.text, links)))
            counts.links.update(links)
        else:
            texts.append(normalize(strip_wikitext(page.text)))
    return "\n".join(texts)
