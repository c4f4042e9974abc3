"""Balancing: no query keeps more than `per_query` (20,000) pairs — the CLIP paper's cap.

Every (pair, query) match gets a seeded 64-bit hash; the decisions are functions of that hash only,
so they are deterministic and independent of how the input is partitioned or how many workers run.

- exact: each query keeps its `per_query` matches with the smallest hashes; a pair is selected
  when any of its queries keeps it. Three passes over the matched partitions: count matches per
  query; for queries over the cap, collect the hashes under a generous bound (6 standard deviations
  above the cap's quantile) and take the cap-th smallest as the query's threshold; select.
  Memory is bounded by (queries over the cap × cap), never by the number of pairs.
- probabilistic (MetaCLIP): query q keeps a match with probability p_q = min(1, cap / count_q),
  drawn from the same hash, so a pair survives with probability 1 − Π(1 − p_q).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.core import engine, schemas, store
from wit_builder.core.hashing import splitmix64, uid_keys
from wit_builder.core.engine import map_partitions

log = logging.getLogger(__name__)

UINT64_MAX = np.uint64(2**64 - 1)
MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class BalanceSettings:
    per_query: int = 20_000
    mode: str = "exact"  # exact | probabilistic
    seed: int = 0
    workers: int | None = None  # overrides the stage's engine's worker count (tests)


@dataclass(frozen=True)
class Matches:
    """The (row, query) matches of one partition, flattened, with their hashes."""

    rows: np.ndarray       # int64 row index of each match
    queries: np.ndarray    # int32 query id of each match
    hashes: np.ndarray     # uint64 seeded hash of (uid, query)
    uid_keys: np.ndarray   # uint64 per match: tie-breaker, so thresholds are strict


def read_matches(path: str, seed: int) -> Matches:
    """The flattened matches of one partition file (only `uid` and `query_ids` are read)."""
    table = store.read_parquet(path, columns=["uid", "query_ids"])
    lists = table.column("query_ids").combine_chunks()
    queries = lists.flatten().to_numpy(zero_copy_only=False).astype(np.int32)
    rows = np.asarray(lists.value_parent_indices(), dtype=np.int64) if len(queries) else \
        np.zeros(0, dtype=np.int64)
    rows, queries = distinct_matches(rows, queries)
    keys = uid_keys(table.column("uid").combine_chunks(), seed)[rows]
    hashes = splitmix64(keys ^ splitmix64(queries.astype(np.uint64)))
    return Matches(rows=rows, queries=queries, hashes=hashes, uid_keys=keys)


def distinct_matches(rows: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each (row, query) once, ordered by row then query: a query listed twice in a row must not
    count twice."""
    if not len(rows):
        return rows, queries
    combined = np.unique(rows * np.int64(2**31) + queries.astype(np.int64))
    return combined // np.int64(2**31), (combined % np.int64(2**31)).astype(np.int32)


def count_partition(path: str, seed: int, query_count: int) -> np.ndarray:
    """Matches per query in one partition."""
    return np.bincount(read_matches(path, seed).queries, minlength=query_count).astype(np.int64)


def hash_bounds(counts: np.ndarray, cap: int) -> np.ndarray:
    """Per query, a hash bound under which at least `cap` matches fall with near certainty
    (UINT64_MAX, i.e. keep everything, for queries at or under the cap)."""
    bounds = np.full(len(counts), UINT64_MAX, dtype=np.uint64)
    over = np.flatnonzero(counts > cap)
    n = counts[over].astype(np.float64)
    p = cap / n
    fraction = p + 6.0 * np.sqrt(p * (1 - p) / n) + 16.0 / n
    inside = fraction < 1.0
    bounds[over[inside]] = (fraction[inside] * 2.0**64).astype(np.uint64)
    return bounds


def collect_below_bounds(path: str, seed: int, bounds: np.ndarray, over_cap: np.ndarray
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(query, hash, uid key) of the matches of over-cap queries whose hash is under the bound."""
    matches = read_matches(path, seed)
    keep = over_cap[matches.queries] & (matches.hashes <= bounds[matches.queries])
    return matches.queries[keep], matches.hashes[keep], matches.uid_keys[keep]


def thresholds_from_candidates(queries: np.ndarray, hashes: np.ndarray, keys: np.ndarray,
                               counts: np.ndarray, cap: int
                               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per query, the (hash, key) of its cap-th smallest match, and which queries had fewer than
    `cap` candidates under their bound (their bound must be widened)."""
    threshold_hash = np.full(len(counts), UINT64_MAX, dtype=np.uint64)
    threshold_key = np.full(len(counts), UINT64_MAX, dtype=np.uint64)
    order = np.lexsort((keys, hashes, queries))
    queries, hashes, keys = queries[order], hashes[order], keys[order]
    over = np.flatnonzero(counts > cap)
    starts = np.searchsorted(queries, over, side="left")
    ends = np.searchsorted(queries, over, side="right")
    short = over[(ends - starts) < cap]
    enough = (ends - starts) >= cap
    picks = starts[enough] + cap - 1
    threshold_hash[over[enough]] = hashes[picks]
    threshold_key[over[enough]] = keys[picks]
    return threshold_hash, threshold_key, short


def exact_thresholds(paths: list[str], counts: np.ndarray, settings: BalanceSettings
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the largest (hash, key) it keeps, found in one pass (rarely two)."""
    bounds = hash_bounds(counts, settings.per_query)
    pending = counts > settings.per_query
    threshold_hash = np.full(len(counts), UINT64_MAX, dtype=np.uint64)
    threshold_key = np.full(len(counts), UINT64_MAX, dtype=np.uint64)
    while pending.any():
        collect = functools.partial(collect_below_bounds, seed=settings.seed, bounds=bounds,
                                    over_cap=pending)
        parts = map_partitions(collect, paths, desc="balance: thresholds")
        queries, hashes, keys = (np.concatenate([part[i] for part in parts]) for i in range(3))
        pending_counts = np.where(pending, counts, 0)
        found_hash, found_key, short = thresholds_from_candidates(
            queries, hashes, keys, pending_counts, settings.per_query)
        done = pending.copy()
        done[short] = False
        threshold_hash[done], threshold_key[done] = found_hash[done], found_key[done]
        pending = np.zeros_like(pending)
        pending[short] = True
        bounds[short] = UINT64_MAX  # a 6-sigma miss: retry those queries with no bound at all
        if len(short):
            log.info("balance: %d queries needed a second threshold pass", len(short))
    return threshold_hash, threshold_key


def keep_probabilities(counts: np.ndarray, cap: int) -> np.ndarray:
    """MetaCLIP's p_q = min(1, cap / count_q), as a bound on the 64-bit hash."""
    with np.errstate(divide="ignore"):
        p = np.minimum(1.0, cap / np.maximum(counts, 1).astype(np.float64))
    bounds = (p * 2.0**64).astype(np.float64)
    result = np.full(len(counts), UINT64_MAX, dtype=np.uint64)
    below = bounds < 2.0**64
    result[below] = bounds[below].astype(np.uint64)
    return result


def kept_mask(matches: Matches, rule: dict) -> np.ndarray:
    """Which matches their query keeps, under the exact or the probabilistic rule."""
    q = matches.queries
    if "probability_bounds" in rule:
        return matches.hashes < rule["probability_bounds"][q]
    limit_hash, limit_key = rule["threshold_hash"][q], rule["threshold_key"][q]
    return (matches.hashes < limit_hash) | \
        ((matches.hashes == limit_hash) & (matches.uid_keys <= limit_key))


def select_partition(job: tuple[str, str], seed: int, rule: dict, query_count: int) -> np.ndarray:
    """Write the selected rows of one partition (with `selected_by`); return selected per query."""
    source, target = job
    matches = read_matches(source, seed)
    kept = kept_mask(matches, rule)
    table = store.read_parquet(source)
    per_row = np.bincount(matches.rows[kept], minlength=table.num_rows)
    offsets = np.concatenate([[0], np.cumsum(per_row)]).astype(np.int32)
    selected_by = pa.ListArray.from_arrays(pa.array(offsets),
                                           pa.array(matches.queries[kept], pa.int32()))
    rows = np.flatnonzero(per_row > 0)
    table = table.append_column("selected_by", selected_by).take(pa.array(rows))
    schema = selection_schema(table.schema)  # with a pool's additional columns, if any
    store.write_parquet(target, table.select(schema.names).cast(schema))
    return np.bincount(matches.queries[kept], minlength=query_count).astype(np.int64)


def selection_schema(matched: pa.Schema) -> pa.Schema:
    """SELECTION, followed by the pool's additional columns the matched rows carry."""
    return schemas.with_additional(schemas.SELECTION,
                                   schemas.additional_fields(matched, schemas.SELECTION))


def merge_parquet(parts: list[str], target: store.Location, schema: pa.Schema) -> int:
    """Concatenate part files into one parquet file, streaming; returns the row count."""
    rows = 0
    with store.atomic_path(target) as temporary:
        with pq.ParquetWriter(temporary, schema, compression="zstd") as writer:
            for part in parts:
                table = store.read_parquet(part).cast(schema)
                rows += table.num_rows
                writer.write_table(table)
    return rows


def balance_by_query(matched: list[str], query_count: int, manifests: store.Location,
                     scratch: store.Location, settings: BalanceSettings) -> dict:
    """Select from the matched partitions; write selection.parquet and balance.parquet (on the
    stage's engine)."""
    with engine.using(workers=settings.workers):
        return balance_partitions(matched, query_count, manifests, scratch, settings)


def balance_partitions(matched: list[str], query_count: int, manifests: store.Location,
                       scratch: store.Location, settings: BalanceSettings) -> dict:
    paths = sorted(str(p) for p in matched)
    count = functools.partial(count_partition, seed=settings.seed, query_count=query_count)
    counts = np.sum(map_partitions(count, paths, desc="balance: count"),
                    axis=0, dtype=np.int64) if paths else np.zeros(query_count, np.int64)
    if settings.mode == "exact":
        threshold_hash, threshold_key = exact_thresholds(paths, counts, settings)
        rule = {"threshold_hash": threshold_hash, "threshold_key": threshold_key}
    else:
        rule = {"probability_bounds": keep_probabilities(counts, settings.per_query)}
    store.makedirs(scratch)
    jobs = [(path, str(store.join(scratch, f"selection-{i:05d}.parquet")))
            for i, path in enumerate(paths)]
    select = functools.partial(select_partition, seed=settings.seed, rule=rule,
                               query_count=query_count)
    selected = np.sum(map_partitions(select, jobs, desc="balance: select"),
                      axis=0, dtype=np.int64) if jobs else np.zeros(query_count, np.int64)
    schema = selection_schema(store.parquet_file(paths[0]).schema_arrow) if paths \
        else schemas.SELECTION
    rows = merge_parquet([target for _, target in jobs], store.join(manifests, "selection.parquet"),
                         schema)
    balance_table = pa.table({"query_id": np.arange(query_count, dtype=np.int32),
                              "matched": counts, "selected": selected}, schema=schemas.BALANCE)
    store.write_parquet(store.join(manifests, "balance.parquet"), balance_table)
    for _, target in jobs:
        store.remove(target)
    return {"matched_pairs": int(sum(store.parquet_file(p).metadata.num_rows for p in paths)),
            "selected_pairs": rows, "queries_over_cap": int((counts > settings.per_query).sum()),
            "queries_matched": int((counts > 0).sum())}
