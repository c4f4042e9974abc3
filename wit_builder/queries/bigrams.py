"""The reduce step for bigrams: sum the spilled pair counts of every partition, keeping only pairs
of words that passed the unigram threshold, and rank them by pointwise mutual information.

Memory stays bounded however large the dump: pairs become int64 keys (two vocabulary ids), are
scattered into hash buckets on disk (one uint64 per pair: key within the bucket, and count), and
each bucket is summed on its own with numpy. Both steps
are engine partitions (groups of spill files, then groups of buckets), run by the workers.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.core.buckets import BucketWriter, read_bucket
from wit_builder.core import store
from wit_builder.core import engine
from wit_builder.core.engine import run_partitions, split_evenly
from wit_builder.queries.counts import read_spill

BUCKET_ROWS = 250_000  # spilled rows per bucket, on average: 2 MB of packed records to sort
MAX_BUCKETS = 1024  # open files while scattering
TASKS_PER_WORKER = 2  # tasks of each reduce round: balance the workers, few files per bucket
# Below this many spilled rows (~0.1 s of work) the reduce runs in this process: starting worker
# processes for it would cost more than it saves.
PARALLEL_ROWS = 1_000_000
SCORED = np.dtype([("key", "<i8"), ("count", "<i8"), ("pmi", "<f8")])


@dataclass(frozen=True)
class Bigram:
    query: str
    count: int
    pmi: float


@dataclass(frozen=True)
class ScatterTask:
    """Round 1 of the reduce: some spill files' kept pairs, appended to the group's bucket files."""
    spills: tuple[str, ...]
    words: pa.Array  # the sorted vocabulary
    buckets: int
    folder: str
    group: int


@dataclass(frozen=True)
class SumTask:
    """Round 2 of the reduce: some buckets, each summed over every group's file of it."""
    buckets: tuple[int, ...]
    buckets_in_all: int
    folder: str
    frequencies: np.ndarray  # unigram counts of the vocabulary, float64
    queries: np.ndarray  # bool: the vocabulary words that may be unigram queries
    total_tokens: int
    min_count: int
    limit: int


def select_bigrams(spills: list[str], rows: int, unigrams: dict[str, int], vocabulary: list[str],
                   total_tokens: int, min_count: int, limit: int, work_dir: store.Location, *,
                   workers: int | None = None,
                   worker_cpu: dict[int, float] | None = None,
                   queries: set[str] | None = None) -> list[Bigram]:
    """The `limit` highest-PMI pairs of `vocabulary` words seen at least `min_count` times
    (`rows`: how many pair rows the spill files hold), leaving out pairs of which neither word
    is in `queries` (the words that may be unigram queries; default: every word).

    Both rounds run as partitions on the stage's engine (`workers` overrides its worker count:
    tests), so the reduce uses every worker instead of running alone in this process after the
    counting: groups of spill files are scattered into hash buckets of pair keys, then each
    bucket is summed and scored on its own. The tasks' CPU seconds are added to `worker_cpu` (by
    process id) when given."""
    cpu = worker_cpu if worker_cpu is not None else {}
    if not vocabulary or limit <= 0 or total_tokens <= 0:
        return []
    vocabulary = sorted(vocabulary)
    words = pa.array(vocabulary, pa.string())
    frequencies = np.array([unigrams[word] for word in vocabulary], dtype=np.float64)
    allowed = np.array([queries is None or word in queries for word in vocabulary], dtype=bool)
    buckets = min(MAX_BUCKETS, max(1, math.ceil(rows / BUCKET_ROWS)))
    chosen = engine.current().overridden(workers=workers)  # `workers`: tests
    if rows < PARALLEL_ROWS and chosen.kind == "local":
        chosen = chosen.overridden(workers=1)  # a small reduce: in this process
    tasks = max(1, chosen.worker_count * TASKS_PER_WORKER)
    groups = split_evenly(spills, tasks)
    folder = str(store.join(work_dir, "bigram-buckets"))
    store.remove_tree(folder)  # an interrupted reduce's files: its groups may not be these
    scatter = [ScatterTask(group, words, buckets, folder, number)
               for number, group in enumerate(groups)]
    sums = [SumTask(chunk, buckets, folder, frequencies, allowed, total_tokens, min_count, limit)
            for chunk in split_evenly(list(range(buckets)), tasks)]
    found = np.zeros(0, dtype=SCORED)
    with engine.using(chosen):
        for pid, seconds in run_partitions(scatter_group, scatter, progress=False,
                                           desc="queries: bigram scatter"):
            cpu[pid] = cpu.get(pid, 0.0) + seconds
        for scored, (pid, seconds) in run_partitions(sum_buckets, sums, progress=False,
                                                     desc="queries: bigram sums"):
            cpu[pid] = cpu.get(pid, 0.0) + seconds
            found = np.concatenate([found, scored])
            # Only the best `limit` can be kept: trimming as we go bounds memory on huge dumps.
            if len(found) > 4 * limit:
                found = best(found, limit)
    store.remove_tree(folder)  # the buckets' emptied folders
    return [Bigram(f"{vocabulary[key // len(words)]} {vocabulary[key % len(words)]}", count, pmi)
            for key, count, pmi in best(found, limit).tolist()]


def best(scored: np.ndarray, limit: int) -> np.ndarray:
    """The `limit` highest-PMI pairs, ties broken by key: the order of the query strings, since
    the vocabulary is sorted and a space sorts before every character of a word."""
    return scored[np.lexsort((scored["key"], -scored["pmi"]))][:limit]


def bucket_name(bucket: int) -> str:
    return f"bucket-{bucket:05d}"


def scatter_group(task: ScatterTask) -> tuple[int, float]:
    """Append every kept pair of the task's spill files, as a packed record, to this group's
    file of its bucket (key % buckets: core/buckets.py, published when the group is done);
    (process id, CPU seconds) back."""
    started = time.process_time()
    count_bits = count_bits_for(len(task.words), task.buckets)
    with BucketWriter(task.folder, f"{task.group:05d}") as out:
        for spill in task.spills:
            spill_words, batches = read_spill(spill)
            ids = vocabulary_ids(spill_words, task.words)
            for batch in batches:
                keys, counts = pair_keys(batch, ids, len(task.words))
                write_by_bucket(keys, counts, out, task.buckets, count_bits)
    return os.getpid(), time.process_time() - started


def count_bits_for(vocabulary_size: int, buckets: int) -> int:
    """Bits of a packed record left for the count: the others hold the pair's key within its
    bucket (key // buckets)."""
    key_bits = max(1, (vocabulary_size * vocabulary_size - 1) // buckets).bit_length()
    return 64 - key_bits


def pair_keys(batch: pa.RecordBatch, ids: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    """Keys (id1 · V + id2) and counts of a spill batch's pairs of vocabulary words."""
    first = ids[batch.column("w1").to_numpy()]
    second = ids[batch.column("w2").to_numpy()]
    kept = (first >= 0) & (second >= 0)
    return first[kept] * size + second[kept], batch.column("count").to_numpy()[kept]


def write_by_bucket(keys: np.ndarray, counts: np.ndarray, out: BucketWriter,
                    buckets: int, count_bits: int) -> None:
    """Records (key // buckets) << count_bits | count, appended to their buckets' files.

    One uint64 per pair: half the bytes of a (key, count) record, and a bucket is then summed
    by sorting plain integers (numpy's vectorised sort) instead of an argsort. A count too large
    for its bits (never seen: it would take millions of one pair in one spill) is split."""
    largest = (1 << count_bits) - 1
    if len(counts) and counts.max() > largest:
        keys, counts = split_counts(keys, counts, largest)
    # int16 (buckets ≤ MAX_BUCKETS): numpy's stable sort is then a radix sort
    bucket_of = (keys % buckets).astype(np.int16)
    records = ((keys // buckets).astype(np.uint64) << np.uint64(count_bits)) \
        | counts.astype(np.uint64)
    order = np.argsort(bucket_of, kind="stable")
    bounds = np.searchsorted(bucket_of[order], np.arange(buckets + 1))
    for bucket in np.flatnonzero(np.diff(bounds)):
        out.append(bucket_name(int(bucket)),
                   records[order[bounds[bucket]:bounds[bucket + 1]]].tobytes())


def split_counts(keys: np.ndarray, counts: np.ndarray, largest: int) -> tuple[np.ndarray, ...]:
    """The same pairs with no count above `largest`: whole records of `largest`, and the rest."""
    full, rest = np.divmod(counts, largest)
    return (np.concatenate([np.repeat(keys, full), keys[rest > 0]]),
            np.concatenate([np.full(int(full.sum()), largest, dtype=np.int64), rest[rest > 0]]))


def sum_buckets(task: SumTask) -> tuple[np.ndarray, tuple[int, float]]:
    """The best `limit` scored pairs of the task's buckets (their files removed once read), and
    (process id, CPU seconds)."""
    started = time.process_time()
    count_bits = count_bits_for(len(task.frequencies), task.buckets_in_all)
    found = np.zeros(0, dtype=SCORED)
    for bucket in task.buckets:
        # concatenate copies: the records are writable (sorted in place) whatever their source
        records = np.concatenate([np.zeros(0, np.uint64)] + [
            np.frombuffer(data, dtype=np.uint64)
            for _, data in read_bucket(task.folder, bucket_name(bucket),
                                                    remove=True)])
        keys, counts = summed_records(records, count_bits)
        scored = score_pairs(keys * task.buckets_in_all + bucket, counts, task.frequencies,
                             task.total_tokens, task.min_count, task.queries)
        found = np.concatenate([found, scored])
        if len(found) > 4 * task.limit:
            found = best(found, task.limit)
    return best(found, task.limit), (os.getpid(), time.process_time() - started)


def vocabulary_ids(spill_words: pa.Array, words: pa.Array) -> np.ndarray:
    """For each word of a spill file, its index in the sorted vocabulary (-1: not in it)."""
    found = pc.index_in(spill_words, value_set=words)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def summed_records(records: np.ndarray, count_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (within the bucket) of packed records and their summed counts."""
    if records.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    records.sort()  # a record's key is in its high bits: equal keys end up side by side
    keys = (records >> np.uint64(count_bits)).astype(np.int64)
    counts = (records & np.uint64((1 << count_bits) - 1)).astype(np.int64)
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return keys[starts], np.add.reduceat(counts, starts)


def score_pairs(keys: np.ndarray, totals: np.ndarray, frequencies: np.ndarray, total_tokens: int,
                min_count: int, allowed: np.ndarray | None = None) -> np.ndarray:
    """The pairs with summed counts ≥ min_count and at least one `allowed` word, and their PMI."""
    frequent = totals >= min_count
    if allowed is not None:
        first, second = np.divmod(keys, len(frequencies))
        frequent &= allowed[first] | allowed[second]
    scored = np.empty(int(frequent.sum()), dtype=SCORED)
    scored["key"] = keys[frequent]
    scored["count"] = totals[frequent]
    first, second = np.divmod(scored["key"], len(frequencies))
    scored["pmi"] = np.log2(scored["count"] * float(total_tokens)
                            / (frequencies[first] * frequencies[second]))
    return scored
