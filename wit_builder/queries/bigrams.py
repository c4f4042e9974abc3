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
import pyarrow.parquet as pq

BUCKET_ROWS = 8_000_000  # spilled rows per bucket, on average: ~128 MB of keys and counts


@dataclass(frozen=True)
class Bigram:
    query: str
    count: int
    pmi: float


def select_bigrams(spills: list[str], unigrams: dict[str, int], vocabulary: list[str],
                   total_tokens: int, min_count: int, limit: int, work_dir: Path) -> list[Bigram]:
    """The `limit` highest-PMI pairs of `vocabulary` words seen at least `min_count` times."""
    if not vocabulary or limit <= 0 or total_tokens <= 0:
        return []
    vocabulary = sorted(vocabulary)
    words = pa.array(vocabulary, pa.string())
    frequencies = np.array([unigrams[word] for word in vocabulary], dtype=np.float64)
    rows = sum(pq.ParquetFile(path).metadata.num_rows for path in spills)
    buckets = max(1, math.ceil(rows / BUCKET_ROWS))
    bucket_paths = scatter_to_buckets(spills, words, buckets, work_dir)
    found: list[Bigram] = []
    for keys_path, counts_path in bucket_paths:
        found.extend(sum_bucket(keys_path, counts_path, vocabulary, frequencies, total_tokens,
                                min_count))
        keys_path.unlink()
        counts_path.unlink()
    found.sort(key=lambda bigram: (-bigram.pmi, bigram.query))
    return found[:limit]


def scatter_to_buckets(spills: list[str], words: pa.Array, buckets: int,
                       work_dir: Path) -> list[tuple[Path, Path]]:
    """Append every kept pair's (key, count) to the file pair of its bucket."""
    paths = [(work_dir / f"bucket-{b:05d}.keys", work_dir / f"bucket-{b:05d}.counts")
             for b in range(buckets)]
    handles = [(open(keys, "wb"), open(counts, "wb")) for keys, counts in paths]
    try:
        for spill in spills:
            for batch in pq.ParquetFile(spill).iter_batches(batch_size=1 << 20):
                keys, counts = pair_keys(batch, words)
                bucket_of = keys % buckets
                for bucket, (keys_handle, counts_handle) in enumerate(handles):
                    chosen = bucket_of == bucket if buckets > 1 else slice(None)
                    keys[chosen].tofile(keys_handle)
                    counts[chosen].tofile(counts_handle)
    finally:
        for keys_handle, counts_handle in handles:
            keys_handle.close()
            counts_handle.close()
    return paths


def pair_keys(batch: pa.RecordBatch, words: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """int64 keys (id1 · V + id2) and counts of a spill batch's pairs of vocabulary words."""
    first = pc.index_in(batch.column("w1"), value_set=words)
    second = pc.index_in(batch.column("w2"), value_set=words)
    kept = pc.and_(pc.is_valid(first), pc.is_valid(second))
    first = pc.filter(first, kept).to_numpy().astype(np.int64)
    second = pc.filter(second, kept).to_numpy().astype(np.int64)
    counts = pc.filter(batch.column("count"), kept).to_numpy().astype(np.int64)
    return first * len(words) + second, counts


def sum_bucket(keys_path: Path, counts_path: Path, vocabulary: list[str],
               frequencies: np.ndarray, total_tokens: int, min_count: int) -> list[Bigram]:
    """The pairs of one bucket with their summed counts ≥ min_count, and their PMI."""
    keys = np.fromfile(keys_path, dtype=np.int64)
    counts = np.fromfile(counts_path, dtype=np.int64)
    if keys.size == 0:
        return []
    unique, inverse = np.unique(keys, return_inverse=True)
    # float64 sums are exact below 2**53 occurrences, far above any dump's token count.
    totals = np.bincount(inverse, weights=counts, minlength=unique.size).astype(np.int64)
    frequent = totals >= min_count
    unique, totals = unique[frequent], totals[frequent]
    first, second = np.divmod(unique, len(vocabulary))
    pmi = np.log2(totals * float(total_tokens) / (frequencies[first] * frequencies[second]))
    return [Bigram(f"{vocabulary[a]} {vocabulary[b]}", int(n), float(p))
            for a, b, n, p in zip(first.tolist(), second.tolist(), totals.tolist(), pmi.tolist())]
