"""The map step: one partition of the dump → word counts, link counts and a bigram spill file.

Unigram and link counts are small (bounded by the vocabulary) and come back as Arrow columns
(`CountTable`), which the main process sums as they arrive; bigram counts are not, so each worker
writes them to a spill file in batches of bounded size, and the reduce (`bigrams.py`) keeps only
pairs of words that passed the unigram threshold.

Two implementations give identical counts: the compiled hot loop (`_hotloop.c`, built by
`pip install -e .`), used when it is built, and the Python one here, its reference and fallback.
"""

from __future__ import annotations

import contextlib
import functools
import html
import itertools
import os
import resource
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.core.text import BOUNDARY, normalize, tokens
from wit_builder.queries.wikipedia.pages import iter_page_blocks, parse_page, xml_unescape
from wit_builder.queries.wikipedia.reader import Partition, prefetched, read_partition
from wit_builder.queries.wikipedia.wikitext import strip_wikitext

# pyarrow imports pandas, when it is installed, at its first array conversion: ~0.25 s of CPU.
# Imported here, the fork server that `wit queries`'s workers are forked from pays it once,
# instead of every worker of every round (counting, and the two of the bigram reduce).
try:
    import pandas  # noqa: F401
except ImportError:
    pass

try:
    from wit_builder.queries import _hotloop
except ImportError:  # not built (no C compiler at install time): the Python path is used
    _hotloop = None

# A spill file holds pairs as ids into its partition's words (listed in a `.words` file beside
# it): writing ids is several times cheaper than writing two string columns, and the reduce maps
# each partition's few thousand words once instead of every pair's strings.
SPILL_SCHEMA = pa.schema([("w1", pa.int32()), ("w2", pa.int32()), ("count", pa.int64())])
# zstd's fastest level: spill files as small as with its default level, and no slower to write.
SPILL_CODEC = pa.Codec("zstd", compression_level=1)
# Pair rows held before a row group is written: bounds a worker's memory whatever the dump.
FLUSH_PAIRS = 2_000_000
# Entities and characters frequent in Wikipedia text that the compiled loop replaces by an ASCII
# stand-in instead of handing their piece of text to Python (each is checked first: see
# ascii_stand_ins); any other entity or non-ASCII character still goes to Python.
COMMON_ENTITIES = ("&nbsp;", "&ndash;", "&mdash;", "&amp;", "&lt;", "&gt;", "&quot;", "&apos;",
                   "&hellip;", "&minus;", "&times;", "&thinsp;", "&ensp;", "&emsp;", "&rsquo;",
                   "&lsquo;", "&ldquo;", "&rdquo;", "&middot;", "&bull;", "&deg;", "&shy;",
                   "&#8211;", "&#8212;", "&#160;", "&#39;", "&#91;", "&#93;", "&#124;",
                   "&#x2013;", "&#x2014;", "&#xA0;", "&prime;", "&Prime;", "&frac12;", "&dagger;",
                   "&#233;", "&eacute;", "&zwj;", "&zwnj;", "&#8239;", "&#8201;")
COMMON_CHARACTERS = ("\xa0\u2013\u2014\u2018\u2019\u201c\u201d\u2026\u00b7\u2022\u00b0\u00d7"
                     "\u2212\u2009\u2002\u2003\u200b\u202f\u2032\u2033\u00ab\u00bb\u00a9"
                     "\u00ae\u2122\u2192\u2190\u00b1\u00bd\ufb01\ufb02\u2010\u2011\u00ad"
                     "\u3001\u3002\uff0c\u00a7\u00b6\u2020\u00bf\u00a1\u2044")
STAND_IN_CONTEXTS = ("a", "Z", "7", "s", ".", "!", "'", "-", ",", "_", "&", ";", "#", "/", "a.",
                     ".b", "")
# Tried in turn for a piece whose normalised form is not ASCII: nothing, or a boundary.
NON_ASCII_STAND_INS = (" ", ";")


@dataclass(frozen=True)
class CountTask:
    """One partition to count, and where its bigrams go."""
    partition: Partition
    spill_path: str
    count_links: bool = False


# Rows of per-partition counts a CountTable holds before summing them: few enough for memory,
# many enough that summing (one Arrow group-by) costs little per row.
COMPACT_ROWS = 250_000


class CountTable:
    """Counts by string, kept as Arrow columns (binary keys, int64 counts) and summed by Arrow's
    group-by: a partition's counts travel from a worker as two buffers instead of a pickled
    dict, and merging them costs the main process little (a Counter.update per partition
    was the largest serial step of `wit queries`)."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.summed_rows = 0  # rows of tables[0] after the last compaction
        self.rows = 0
        self.as_dict: dict[str, int] | None = None  # to_dict's result, until the next add

    @classmethod
    def from_mapping(cls, counts: dict[str, int]) -> CountTable:
        """The counts of a mapping (keys may hold lone surrogates: kept through the round trip)."""
        table = cls()
        if counts:
            keys = [key.encode("utf-8", "surrogatepass") for key in counts]
            table.tables.append(pa.table({"key": pa.array(keys, pa.binary()),
                                          "count": pa.array(list(counts.values()), pa.int64())}))
            table.rows = len(keys)
        return table

    @classmethod
    def from_buffers(cls, offsets: bytes, keys: bytes, counts: bytes) -> CountTable:
        """The counts the compiled loop hands over as Arrow buffers (see its `word_buffers`)."""
        table = cls()
        rows = len(offsets) // 4 - 1
        if rows:
            table.tables.append(pa.table({
                "key": pa.Array.from_buffers(pa.binary(), rows,
                                             [None, pa.py_buffer(offsets), pa.py_buffer(keys)]),
                "count": pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(counts)])}))
            table.rows = rows
        return table

    def total(self) -> int:
        """The sum of the counts."""
        return sum(pc.sum(table.column("count")).as_py() or 0
                   for table in self.tables)

    def add(self, other: CountTable) -> None:
        """Add another table's counts (summed when enough rows are pending)."""
        self.tables.extend(other.tables)
        self.rows += other.rows
        self.as_dict = None
        if self.rows - self.summed_rows > max(COMPACT_ROWS, 2 * self.summed_rows):
            self.compact()

    def compact(self) -> None:
        """One table of distinct keys (memory then stays near the number of distinct keys)."""
        if len(self.tables) > 1:
            summed = pa.concat_tables(self.tables).group_by("key", use_threads=False) \
                .aggregate([("count", "sum")])
            self.tables = [summed.rename_columns(["key", "count"])]
        self.rows = self.summed_rows = sum(len(table) for table in self.tables)

    def to_dict(self) -> dict[str, int]:
        """{key: summed count} (computed once; cached until the next add)."""
        if self.as_dict is None:
            self.compact()
            self.as_dict = {}
            for table in self.tables:
                self.as_dict.update(zip(decoded_keys(table.column("key")),
                                        table.column("count").to_pylist()))
        return self.as_dict


def decoded_keys(keys: pa.ChunkedArray) -> list[str]:
    """Binary keys as str; lone surrogates (encoded with surrogatepass) come back as they were."""
    try:
        return keys.cast(pa.string()).to_pylist()
    except pa.ArrowInvalid:  # a lone surrogate in a link target (rare): decoded in Python
        return [key.decode("utf-8", "surrogatepass") for key in keys.to_pylist()]


@dataclass
class PartialCounts:
    """What one partition (or, merged, the whole dump) contributed."""
    word_counts: CountTable = field(default_factory=CountTable)
    link_counts: CountTable = field(default_factory=CountTable)
    pages: int = 0
    articles: int = 0
    redirects: int = 0
    other_namespaces: int = 0
    tokens: int = 0
    titles: set[str] = field(default_factory=set)  # of the articles
    redirect_targets: dict[str, str] = field(default_factory=dict)  # redirect title -> target
    spills: list[str] = field(default_factory=list)
    spill_rows: int = 0
    peak_rss_kb: int = 0
    worker_cpu_seconds: dict[int, float] = field(default_factory=dict)  # by process id

    @property
    def unigrams(self) -> dict[str, int]:
        return self.word_counts.to_dict()

    @property
    def links(self) -> dict[str, int]:
        return self.link_counts.to_dict()

    def merge(self, other: PartialCounts) -> None:
        self.word_counts.add(other.word_counts)
        self.link_counts.add(other.link_counts)
        self.pages += other.pages
        self.articles += other.articles
        self.redirects += other.redirects
        self.other_namespaces += other.other_namespaces
        self.tokens += other.tokens
        self.titles.update(other.titles)
        self.redirect_targets.update(other.redirect_targets)
        self.spills.extend(other.spills)
        self.spill_rows += other.spill_rows
        self.peak_rss_kb = max(self.peak_rss_kb, other.peak_rss_kb)
        for pid, seconds in other.worker_cpu_seconds.items():
            self.worker_cpu_seconds[pid] = self.worker_cpu_seconds.get(pid, 0.0) + seconds


def compiled_available() -> bool:
    """True when the compiled hot loop is built (`pip install -e .` builds it)."""
    return _hotloop is not None


def count_partition(task: CountTask) -> PartialCounts:
    """Count the words, within-sentence pairs and (optionally) link targets of one partition."""
    if _hotloop is None:
        return count_partition_python(task)
    return count_partition_compiled(task)


def count_partition_compiled(task: CountTask) -> PartialCounts:
    """`count_partition` by the compiled hot loop: same counts, several times faster."""
    started = time.process_time()
    counts = PartialCounts()
    counter = _hotloop.FragmentCounter(segment_tokens, decoded_segment_tokens, xml_unescape,
                                       strip_with_links, count_links=task.count_links,
                                       stand_ins=ascii_stand_ins())
    with SpillWriter(task.spill_path) as spill:
        # Decompression runs in a thread while the loop counts the previous fragment.
        for fragment in prefetched(read_partition(task.partition), depth=2):
            counter.count(fragment)
            titles, redirects = counter.take_pages()
            counts.titles.update(titles)
            counts.redirect_targets.update(redirects)
            if counter.pair_rows >= FLUSH_PAIRS:
                spill.write(*pair_arrays(*counter.take_pairs()))
        spill.write(*pair_arrays(*counter.take_pairs()))
        words = CountTable.from_buffers(*counter.word_buffers())
        spill.words = words_by_id(words)
    counts.spill_rows = spill.rows
    pages = counter.stats()
    counts.pages, counts.articles = pages["pages"], pages["articles"]
    counts.redirects, counts.other_namespaces = pages["redirects"], pages["other_namespaces"]
    return finished(counts, task, started, words, CountTable.from_buffers(*counter.link_buffers()),
                    words.total())


@functools.lru_cache(maxsize=1)
def ascii_stand_ins() -> dict[bytes, bytes]:
    """{entity or character (UTF-8): ASCII text that tokenises like it}, for the compiled loop.

    An entry is kept only when the Python path gives the same tokens with the piece as with its
    stand-in between any two of STAND_IN_CONTEXTS: the piece's normalised form when ASCII
    ("ﬁ" → "fi", "&rsquo;" → "'"), else a space ("&nbsp;") or a boundary ("–" → ";")."""
    stand_ins = {}
    for piece in (*COMMON_ENTITIES, *COMMON_CHARACTERS):
        plain = normalize(html.unescape(piece))
        for stand_in in (plain,) if plain.isascii() else NON_ASCII_STAND_INS:
            if all(segment_tokens(left + piece + right) == tokens((left + stand_in + right).lower())
                   for left, right in itertools.product(STAND_IN_CONTEXTS, repeat=2)):
                stand_ins[piece.encode()] = stand_in.encode()
                break
    return stand_ins


def words_by_id(words: CountTable) -> pa.Array:
    """The compiled loop's words as strings, indexed by their pair ids: every word it stores has
    a count, so its word buffers list them all, in id order."""
    if not words.tables:
        return pa.array([], pa.string())
    return words.tables[0].column("key").combine_chunks().cast(pa.string())


def pair_arrays(first: bytes, second: bytes, counts: bytes) -> tuple[np.ndarray, ...]:
    """The compiled loop's pair buffers as arrays (no copy)."""
    return (np.frombuffer(first, dtype=np.int32), np.frombuffer(second, dtype=np.int32),
            np.frombuffer(counts, dtype=np.int64))


def segment_tokens(segment: str) -> list[str]:
    """Tokens of a piece of stripped wikitext whose entities are still encoded (the compiled
    loop hands back the pieces that hold non-ASCII text or '&')."""
    return tokens(normalize(html.unescape(segment)))


def decoded_segment_tokens(segment: str) -> list[str]:
    return tokens(normalize(segment))


def strip_with_links(wikitext: str) -> tuple[str, list[str]]:
    """strip_wikitext and the visible link targets (for pages the compiled loop hands back)."""
    links: list[str] = []
    return strip_wikitext(wikitext, links), links


def finished(counts: PartialCounts, task: CountTask, started: float, words: CountTable,
             links: CountTable, tokens: int) -> PartialCounts:
    """Word and link counts, totals, the spill file, and this process's memory and CPU time,
    recorded."""
    counts.word_counts, counts.link_counts, counts.tokens = words, links, tokens
    counts.spills.append(task.spill_path)
    counts.peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts.worker_cpu_seconds = {os.getpid(): time.process_time() - started}
    return counts


def count_partition_python(task: CountTask) -> PartialCounts:
    """`count_partition` in Python: the reference the compiled loop is tested against."""
    started = time.process_time()
    counts = PartialCounts()
    unigrams: Counter = Counter()
    links: Counter = Counter()
    pairs = PairCounter()
    with SpillWriter(task.spill_path) as spill:
        for fragment in read_partition(task.partition):
            text = article_text(fragment, counts, links if task.count_links else None)
            # Boundaries are tokens too ("."), so pairs are counted in one pass over all tokens
            # and those touching a boundary are dropped afterwards.
            found = tokens(text)
            fragment_counts = Counter(found)
            unigrams.update(fragment_counts)
            pairs.add(found, fragment_counts)
            if pairs.rows >= FLUSH_PAIRS:
                pairs.write(spill)
        pairs.write(spill)
        spill.words = pairs.words
    counts.spill_rows = spill.rows
    unigrams.pop(BOUNDARY, None)
    return finished(counts, task, started, CountTable.from_mapping(unigrams),
                    CountTable.from_mapping(links), sum(unigrams.values()))


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
            ends = np.array([token == BOUNDARY for token in new], dtype=bool)
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

    def write(self, spill: SpillWriter) -> None:
        """One batch of (w1, w2, count); the counter starts again empty."""
        keys, counts = self.summed()
        self.keys, self.counts, self.rows = [], [], 0
        spill.write((keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF).astype(np.int32), counts)


class SpillWriter:
    """One partition's pair counts: Arrow IPC batches (zstd) of (w1, w2, count), the ids indexing
    the words that the block's end writes to `<path>.words` (Arrow IPC too).

    Both are written to local temporary files that appear at their locations (renamed, or
    uploaded to an object store) only when the block ends without error."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.words: list[str] | pa.Array = []
        self.rows = 0
        with contextlib.ExitStack() as stack:
            spill_file = stack.enter_context(store.atomic_path(path))
            words_file = stack.enter_context(store.atomic_path(path + ".words"))
            # Runs after the spill is closed, and before either file appears; an error in it
            # reaches the atomic paths, which then drop both.
            stack.push(functools.partial(self.write_words, words_file))
            sink = stack.enter_context(pa.OSFile(str(spill_file), "wb"))
            self.writer = stack.enter_context(pa.ipc.new_file(
                sink, SPILL_SCHEMA, options=pa.ipc.IpcWriteOptions(compression=SPILL_CODEC)))
            self.files = stack.pop_all()

    def write(self, first: np.ndarray, second: np.ndarray, counts: np.ndarray) -> None:
        """Pairs given as their words' ids (int32) and their counts (int64)."""
        if not len(first):
            return
        self.writer.write_batch(pa.record_batch([first, second, counts], schema=SPILL_SCHEMA))
        self.rows += len(first)

    def write_words(self, words_file: Path, error_type, *_) -> None:
        """The words file, unless the block failed."""
        if error_type is not None:
            return
        words = pa.table({"word": self.words if isinstance(self.words, pa.Array)
                          else pa.array(self.words, pa.string())})
        with pa.OSFile(str(words_file), "wb") as sink, \
                pa.ipc.new_file(sink, words.schema) as writer:
            writer.write_table(words)

    def __enter__(self) -> SpillWriter:
        return self

    def __exit__(self, *error) -> bool:
        # A failed partition's spill must not appear: nothing of it may outlive the stage's
        # removal of its spill folder.
        return self.files.__exit__(*error)


def read_spill(path: str) -> tuple[pa.Array, Iterator[pa.RecordBatch]]:
    """A spill file's words and its batches of (w1, w2, count) ids into them (a spill on an
    object store is downloaded to a temporary file while it is read).

    A spill kept by an interrupted run is data from the workdir: one that is not what
    SpillWriter writes (other columns, ids outside its words, counts below 1) is a WitError
    (the stage then removes its spill folder, so a rerun counts again)."""
    try:
        with store.local_file(path + ".words") as local, pa.memory_map(str(local)) as source:
            words = pa.ipc.open_file(source).read_all()
    except (pa.ArrowException, OSError) as error:
        raise unusable_spill(path + ".words", str(error)) from None
    if words.schema.names != ["word"] or words.schema.types != [pa.string()]:
        raise unusable_spill(path + ".words", f"columns {words.schema}")
    words = words.column("word").combine_chunks()
    if words.null_count:
        raise unusable_spill(path + ".words", "a null word")
    return words, spill_batches(path, len(words))


def unusable_spill(path: str, why: str) -> WitError:
    return WitError(f"spill file '{path}' is not one wit queries wrote ({why}); rerun to count "
                    f"its partition again")


def spill_batches(path: str, words: int) -> Iterator[pa.RecordBatch]:
    """The spill's batches, each checked: ids index the `words` words, counts are positive."""
    with store.local_file(path) as local, pa.memory_map(str(local)) as source:
        try:
            reader = pa.ipc.open_file(source)
        except (pa.ArrowException, OSError) as error:
            raise unusable_spill(path, str(error)) from None
        if not reader.schema.equals(SPILL_SCHEMA):
            raise unusable_spill(path, f"columns {reader.schema}")
        for number in range(reader.num_record_batches):
            try:
                batch = reader.get_batch(number)
            except (pa.ArrowException, OSError) as error:
                raise unusable_spill(path, str(error)) from None
            if batch.num_rows:
                if any(column.null_count for column in batch.columns):
                    raise unusable_spill(path, "null values")
                ids = [pc.min_max(batch.column(name)).as_py() for name in ("w1", "w2")]
                if min(low["min"] for low in ids) < 0 or \
                        max(high["max"] for high in ids) >= words:
                    raise unusable_spill(path, f"word ids outside its {words} words")
                if pc.min(batch.column("count")).as_py() < 1:
                    raise unusable_spill(path, "counts below 1")
            yield batch


def article_text(fragment: bytes, counts: PartialCounts, links: Counter | None) -> str:
    """The normalised plain text of a fragment's articles (namespace 0, not redirects); their
    link targets are counted in `links` when given."""
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
        if links is not None:
            targets: list[str] = []
            texts.append(normalize(strip_wikitext(page.text, targets)))
            links.update(targets)
        else:
            texts.append(normalize(strip_wikitext(page.text)))
    return "\n".join(texts)
