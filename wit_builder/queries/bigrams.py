"""The reduce step for bigrams: sum the spilled pair counts of every partition, keeping only pairs
of words that passed the unigram threshold, and rank them by pointwise mutual information.

Memory stays bounded however large the dump: pairs become int64 keys (two vocabulary ids), are
scattered into hash buckets on disk, and each bucket is summed on its own with numpy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.queries.counts import read_spill

BUCKET_ROWS = 250_000  # spilled rows per bucket, on average: 4 MB of records to sort
MAX_BUCKETS = 1024  # open files while scattering
RECORD = np.dtype([("key", "<i8"), ("count", "<i8")])
SCORED = np.dtype([("key", "<i8"), ("count", "<i8"), ("pmi", "<f8")])


@dataclass(frozen=True)
class Bigram:
    query: str
    count: int
    pmi: float


def select_bigrams(spills: list[str], rows: int, unigrams: dict[str, int], vocabulary: list[str],
                   total_tokens: int, min_count: int, limit: int, work_dir: Path) -> list[Bigram]:
    """The `limit` highest-PMI pairs of `vocabulary` words seen at least `min_count` times
    (`rows`: how many pair rows the spill files hold)."""
    if not vocabulary or limit <= 0 or total_tokens <= 0:
        return []
    vocabulary = sorted(vocabulary)
    words = pa.array(vocabulary, pa.string())
    frequencies = np.array([unigrams[word] for word in vocabulary], dtype=np.float64)
    buckets = min(MAX_BUCKETS, max(1, math.ceil(rows / BUCKET_ROWS)))
    found = np.zeros(0, dtype=SCORED)
    for bucket_path in scatter_to_buckets(spills, words, buckets, work_dir):
        found = np.concatenate([found, sum_bucket(bucket_path, frequencies, total_tokens,
                                                  min_count)])
        bucket_path.unlink()
        # Only the best `limit` can be kept: trimming as we go bounds memory on huge dumps.
        if len(found) > 4 * limit:
            found = best(found, limit)
    return [Bigram(f"{vocabulary[key // len(words)]} {vocabulary[key % len(words)]}", count, pmi)
            for key, count, pmi in best(found, limit).tolist()]


def best(scored: np.ndarray, limit: int) -> np.ndarray:
    """The `limit` highest-PMI pairs, ties broken by key: the order of the query strings, since
    the vocabulary is sorted and a space sorts before every character of a word."""
    return scored[np.lexsort((scored["key"], -scored["pmi"]))][:limit]


def scatter_to_buckets(spills: list[str], words: pa.Array, buckets: int,
                       work_dir: Path) -> list[Path]:
    """Append every kept pair's (key, count) record to the file of its bucket (key % buckets)."""
    paths = [work_dir / f"bucket-{b:05d}.bin" for b in range(buckets)]
    handles = [open(path, "wb") for path in paths]
    try:
        for spill in spills:
            spill_words, batches = read_spill(spill)
            ids = vocabulary_ids(spill_words, words)
            for batch in batches:
                records = pair_records(batch, ids, len(words))
                # int16 (buckets ≤ MAX_BUCKETS): numpy's stable sort is then a radix sort
                bucket_of = (records["key"] % buckets).astype(np.int16)
                order = np.argsort(bucket_of, kind="stable")
                bounds = np.searchsorted(bucket_of[order], np.arange(buckets + 1))
                for bucket in np.flatnonzero(np.diff(bounds)):
                    handles[bucket].write(records[order[bounds[bucket]:bounds[bucket + 1]]]
                                          .tobytes())
    finally:
        for handle in handles:
            handle.close()
    return paths


def vocabulary_ids(spill_words: pa.Array, words: pa.Array) -> np.ndarray:
    """For each word of a spill file, its index in the sorted vocabulary (-1: not in it)."""
    found = pc.index_in(spill_words, value_set=words)
    return pc.fill_null(found, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def pair_records(batch: pa.RecordBatch, ids: np.ndarray, size: int) -> np.ndarray:
    """(key, count) records of a spill batch's pairs of vocabulary words; key = id1 · V + id2."""
    first = ids[batch.column("w1").to_numpy()]
    second = ids[batch.column("w2").to_numpy()]
    kept = (first >= 0) & (second >= 0)
    records = np.empty(int(kept.sum()), dtype=RECORD)
    records["key"] = first[kept] * size + second[kept]
    records["count"] = batch.column("count").to_numpy()[kept]
    return records


def sum_bucket(path: Path, frequencies: np.ndarray, total_tokens: int,
               min_count: int) -> np.ndarray:
    """The pairs of one bucket with their summed counts ≥ min_count, and their PMI."""
    records = np.fromfile(path, dtype=RECORD)
    if records.size == 0:
        return np.zeros(0, dtype=SCORED)
    order = np.argsort(records["key"])  # 10x faster than sorting the structured records
    keys, counts = records["key"][order], records["count"][order]
    starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    totals = np.add.reduceat(counts, starts)
    frequent = totals >= min_count
    scored = np.empty(int(frequent.sum()), dtype=SCORED)
    scored["key"] = keys[starts][frequent]
    scored["count"] = totals[frequent]
    first, second = np.divmod(scored["key"], len(frequencies))
    scored["pmi"] = np.log2(scored["count"] * float(total_tokens)
                            / (frequencies[first] * frequencies[second]))
    return scored
