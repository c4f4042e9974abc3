"""Exact and near-duplicate removal over an index on disk, with memory bounded by a budget.

Every sample is known by its order key (raw shard << 32 | position in the raw shard); the first
occurrence in that order is kept. Nothing here holds all samples: each step reads one partition.
  1. spill: index rows go to `exact_partitions` partitions by the prefix of their sha256;
  2. exact: each exact partition keeps the first sample of every sha256 ("exact" removals); the
     survivors' pHashes are cut into `near_dup_bits + 1` bands (two hashes within `near_dup_bits`
     bits agree exactly on at least one band: pigeonhole) and each (band, value) row goes to a band
     partition by a hash of it;
  3. candidates: each band partition groups its rows by (band, value) and confirms pairs by Hamming
     distance, then (`near_dup_check`) by their look signatures (phash.same_look: a blurred,
     greyscale or colour-filtered edit is not a copy); a pair is reported by the lowest band on
     which it agrees, so exactly once;
  4. resolve: order ranges (runs of raw shards) are decided one after the other, earliest first.
     Visiting samples in order, one within `near_dup_bits` of an earlier *surviving* sample is
     removed ("near") and names the earliest such sample; the rest survive. A range's survivors
     send their edges to later ranges as messages (time-forward processing), so a range needs only
     its own edges and its inbox.
Samples whose pHash and signature equal an earlier sample's exactly (solid colours, placeholders
re-encoded) are compared once, through their first occurrence: they are always removed and name what it names
(itself when it survives), which the rule above gives them anyway. This keeps a band value shared
by thousands of identical hashes linear instead of quadratic.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.core import store
from wit_builder.core.spill import (order_keys, clamp_partitions, column, first_of_runs,
                                   read_partitioned, rows_within, run_leaders, spill_groups,
                                   write_partitioned)
from wit_builder.core.hashing import HEX_VALUES
from wit_builder.core.engine import map_partitions
from wit_builder.shards.phash import bands, same_look

log = logging.getLogger(__name__)

MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9))

EXACT_ROW = pa.schema([("order", pa.int64()), ("sha256", pa.string()), ("phash", pa.uint64()),
                       ("signature", pa.uint64()), ("uid", pa.string())])
BAND_ROW = pa.schema([("band", pa.int8()), ("value", pa.uint64()), ("order", pa.int64()),
                      ("phash", pa.uint64()), ("signature", pa.uint64()), ("uid", pa.string())])
EDGE = pa.schema([("earlier", pa.int64()), ("later", pa.int64()), ("distance", pa.int32()),
                  ("earlier_uid", pa.string()), ("later_uid", pa.string())])
FOLLOWER = pa.schema([("order", pa.int64()), ("uid", pa.string()), ("first", pa.int64()),
                      ("first_uid", pa.string())])
REMOVAL = pa.schema([("order", pa.int64()), ("uid", pa.string()), ("duplicate_of", pa.string()),
                     ("kind", pa.string()), ("distance", pa.int32())])


@dataclass(frozen=True)
class DedupPlan:
    """Where the search spills its rows and how they are partitioned (picklable, for workers)."""
    work: str
    near_dup_bits: int
    exact_partitions: int
    band_partitions: int
    range_starts: tuple[int, ...]  # first raw shard of each order range, ascending
    partition_rows: int            # rows a partition is sized for
    near_dup_check: bool = True    # a near pair must also look alike (phash.same_look)

    def ranges_of(self, orders: np.ndarray) -> np.ndarray:
        """The order range of each order key."""
        return np.searchsorted(self.range_starts, orders >> 32, side="right") - 1

    def destinations(self, kind: str) -> int:
        """How many partitions the rows of `kind` are spread over."""
        return {"exact": self.exact_partitions, "bands": self.band_partitions}.get(
            kind, len(self.range_starts))


@dataclass(frozen=True)
class PartitionJob:
    """One unit of work for engine.py: a partition of one step."""
    plan: DedupPlan
    number: int                    # the partition (spill: the group of pieces)
    sources: tuple[str, ...] = ()  # spill: the index pieces to read


@dataclass
class DedupStats:
    """How the search was partitioned and the most it held at once."""
    exact_partitions: int
    band_partitions: int
    ranges: int
    largest_partition_rows: int   # the most rows one step held at once
    edges: int                    # confirmed near pairs


def plan_dedup(work: str | Path, rows_per_shard: dict[int, int], near_dup_bits: int,
               memory_budget_mb: float, near_dup_check: bool = True) -> DedupPlan:
    """Partition counts and order ranges sized so each step holds about the budget."""
    partition_rows = rows_within(memory_budget_mb)
    total = sum(rows_per_shard.values())
    starts, filled = [], 0
    for shard in sorted(rows_per_shard):
        if not starts or (filled and filled + rows_per_shard[shard] > partition_rows):
            starts.append(shard)
            filled = 0
        filled += rows_per_shard[shard]
    band_rows = total * (near_dup_bits + 1)
    return DedupPlan(str(work), near_dup_bits, clamp_partitions(total, partition_rows),
                     clamp_partitions(band_rows, partition_rows) if near_dup_bits > 0 else 0,
                     tuple(starts or [0]), partition_rows, near_dup_check)


def route(table: pa.Table, keys: np.ndarray, plan: DedupPlan, kind: str, name: str) -> None:
    write_partitioned(table, keys, store.join(plan.work, kind), plan.destinations(kind), name)


def read_partition(plan: DedupPlan, kind: str, number: int, schema: pa.Schema) -> pa.Table:
    return read_partitioned(store.join(plan.work, kind), number, plan.destinations(kind),
                            schema)


# ---- 1. spill the index by sha256 prefix ----------------------------------------------------

def spill_exact(job: PartitionJob) -> int:
    """Scatter index pieces (uid, sha256, phash, signature, raw_shard, position) to exact
    partitions (signatures as 0 when the look check is off: then only pHashes count)."""
    piece = pa.concat_tables([
        store.read_parquet(source, columns=["uid", "sha256", "phash", "signature", "raw_shard",
                                            "position"])
        for source in job.sources])
    orders = order_keys(column(piece, "raw_shard"), column(piece, "position"))
    signatures = piece["signature"] if job.plan.near_dup_check else \
        pa.array(np.zeros(piece.num_rows, np.uint64))
    rows = pa.table([pa.array(orders), piece["sha256"], piece["phash"], signatures,
                     piece["uid"]], schema=EXACT_ROW)
    prefixes = digest_prefixes(piece["sha256"])
    partitions = (prefixes * np.uint64(job.plan.exact_partitions)) >> np.uint64(32)
    route(rows, partitions.astype(np.int64), job.plan, "exact", f"{job.number:05d}")
    return piece.num_rows


def digest_prefix(digest: str) -> int:
    """The first 32 bits of a hex sha256 (uniform); a CRC of anything else a raw JSON holds."""
    try:
        prefix = bytes.fromhex(digest[:8])
    except ValueError:
        prefix = b""
    if len(prefix) == 4:
        return int.from_bytes(prefix, "big")
    return zlib.crc32(digest.encode("utf-8", "surrogatepass"))


def digest_prefixes(digests: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """`digest_prefix` of every digest (uint64): hex heads are read all at once, only the rare
    digest that is not hex is handled row by row."""
    if isinstance(digests, pa.ChunkedArray):
        digests = digests.combine_chunks()
    heads = pc.utf8_slice_codeunits(digests, 0, 8).cast(pa.binary())
    eight = pc.fill_null(pc.equal(pc.binary_length(heads), 8), False).to_numpy(
        zero_copy_only=False)
    fixed = heads.filter(pa.array(eight))
    start = int(np.frombuffer(fixed.buffers()[1], np.int32)[fixed.offset]) if len(fixed) else 0
    digits = HEX_VALUES[np.frombuffer(fixed.buffers()[2] or b"", np.uint8)
                        [start:start + 8 * len(fixed)]].reshape(-1, 8)
    # A non-hex character reads as 255: its high nibble is set. Eight digits are one uint64.
    hexadecimal = np.zeros(len(digests), dtype=bool)
    hexadecimal[eight] = (np.ascontiguousarray(digits).view(np.uint64).ravel()
                          & np.uint64(0xF0F0F0F0F0F0F0F0)) == 0
    shifts = np.arange(28, -4, -4, dtype=np.uint32)
    prefixes = np.zeros(len(digests), dtype=np.uint64)
    prefixes[eight] = (digits.astype(np.uint32) << shifts).sum(axis=1, dtype=np.uint64)
    for row in np.flatnonzero(~hexadecimal).tolist():
        prefixes[row] = digest_prefix(digests[row].as_py())
    return prefixes


# ---- 2. exact duplicates, then the survivors' bands -----------------------------------------

def removal_table(orders: np.ndarray, uids: list | pa.Array, duplicate_of: list | pa.Array,
                  kind: str, distances: np.ndarray) -> pa.Table:
    return pa.table([pa.array(orders, pa.int64()), pa.array(uids, pa.string()),
                     pa.array(duplicate_of, pa.string()),
                     pa.array([kind] * len(orders), pa.string()),
                     pa.array(distances, pa.int32())], schema=REMOVAL)


def dedupe_exact_partition(job: PartitionJob) -> int:
    """Keep the first sample of every sha256 in the partition; spill the survivors' bands."""
    plan = job.plan
    rows = read_partition(plan, "exact", job.number, EXACT_ROW)
    if not rows.num_rows:
        return 0
    rows = rows.sort_by([("sha256", "ascending"), ("order", "ascending")])
    first = first_of_runs(column(rows, "sha256"))
    copies = np.flatnonzero(~first)
    leaders = run_leaders(first)[copies]
    orders, uids = column(rows, "order"), rows["uid"]
    removed = removal_table(orders[copies], uids.take(pa.array(copies)),
                            uids.take(pa.array(leaders)), "exact", np.zeros(len(copies)))
    route(removed, plan.ranges_of(orders[copies]), plan, "removed", f"exact-{job.number:05d}")
    if plan.near_dup_bits > 0:
        spill_bands(rows.filter(pa.array(first)), plan, job.number)
    return rows.num_rows


def band_partition(band: np.ndarray, value: np.ndarray, partitions: int) -> np.ndarray:
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps on purpose: a mixing hash
        mixed = (value + band.astype(np.uint64) * MIX[0]) * MIX[1]
    return ((mixed >> np.uint64(32)) % np.uint64(partitions)).astype(np.int64)


def spill_bands(survivors: pa.Table, plan: DedupPlan, source: int) -> None:
    """(band, band value, order, phash, signature, uid) rows of every band, routed by (band,
    value)."""
    hashes = column(survivors, "phash").astype(np.uint64)
    tables, values, band_numbers = [], [], []
    for number, (shift, mask) in enumerate(bands(plan.near_dup_bits)):
        value = (hashes >> np.uint64(shift)) & np.uint64(mask)
        band = np.full(len(hashes), number, dtype=np.int8)
        tables.append(pa.table([pa.array(band), pa.array(value), survivors["order"],
                                survivors["phash"], survivors["signature"], survivors["uid"]],
                               schema=BAND_ROW))
        values.append(value)
        band_numbers.append(band)
    keys = band_partition(np.concatenate(band_numbers), np.concatenate(values),
                          plan.band_partitions)
    route(pa.concat_tables(tables), keys, plan, "bands", f"{source:05d}")


# ---- 3. near candidates per band partition --------------------------------------------------

def lowest_agreeing_band(xor: np.ndarray, near_dup_bits: int) -> np.ndarray:
    """For each XOR of two hashes, the first band on which they agree (bands count if none)."""
    ranges = bands(near_dup_bits)
    agree = np.stack([((xor >> np.uint64(shift)) & np.uint64(mask)) == 0 for shift, mask in ranges])
    return np.where(agree.any(axis=0), agree.argmax(axis=0), len(ranges))


def group_pairs(first: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(earlier rows, later rows) of every pair inside each run, one distance apart at a time."""
    run_stops = np.r_[np.flatnonzero(first)[1:], len(first)]
    run_stop = run_stops[np.cumsum(first) - 1]
    step = 1
    active = np.flatnonzero(np.arange(len(first)) + step < run_stop)
    while active.size:
        yield active, active + step
        step += 1
        active = active[active + step < run_stop[active]]


def find_near_candidates(job: PartitionJob) -> tuple[int, int]:
    """Write the confirmed near pairs (edges) and identical-hash followers of one band partition;
    (rows read, edges written)."""
    plan = job.plan
    rows = read_partition(plan, "bands", job.number, BAND_ROW)
    if not rows.num_rows:
        return 0, 0
    rows = rows.sort_by([("band", "ascending"), ("value", "ascending"), ("phash", "ascending"),
                         ("signature", "ascending"), ("order", "ascending")])
    band, value, hashes = column(rows, "band"), column(rows, "value"), column(rows, "phash")
    first = first_of_runs(band, value, hashes, column(rows, "signature"))
    write_followers(rows, first, plan, job.number)
    firsts = rows.filter(pa.array(first)).sort_by(
        [("band", "ascending"), ("value", "ascending"), ("order", "ascending")])
    band, hashes, orders = column(firsts, "band"), column(firsts, "phash"), column(firsts, "order")
    signatures = column(firsts, "signature")
    empty = np.zeros(0, np.int64)
    earlier_rows, later_rows, distances = [empty], [empty], [empty]
    for earlier, later in group_pairs(first_of_runs(band, column(firsts, "value"))):
        xor = hashes[earlier] ^ hashes[later]
        distance = np.bitwise_count(xor)
        close = distance <= plan.near_dup_bits
        close[close] &= lowest_agreeing_band(xor[close], plan.near_dup_bits) == band[earlier[close]]
        if plan.near_dup_check:
            close[close] &= same_look(signatures[earlier[close]], signatures[later[close]])
        earlier_rows.append(earlier[close])
        later_rows.append(later[close])
        distances.append(distance[close])
    earlier, later = np.concatenate(earlier_rows), np.concatenate(later_rows)
    uids = firsts["uid"]
    edges = pa.table([pa.array(orders[earlier]), pa.array(orders[later]),
                      pa.array(np.concatenate(distances).astype(np.int32)),
                      uids.take(pa.array(earlier)), uids.take(pa.array(later))], schema=EDGE)
    route(edges, plan.ranges_of(orders[earlier]), plan, "edges", f"{job.number:05d}")
    return rows.num_rows, edges.num_rows


def write_followers(rows: pa.Table, first: np.ndarray, plan: DedupPlan, partition: int) -> None:
    """Samples whose pHash and signature equal an earlier one's (seen once: in band 0), by the
    first's range."""
    followers = np.flatnonzero(~first & (column(rows, "band") == 0))
    if not followers.size:
        return
    leaders = run_leaders(first)[followers]
    orders, uids = column(rows, "order"), rows["uid"]
    table = pa.table([pa.array(orders[followers]), uids.take(pa.array(followers)),
                      pa.array(orders[leaders]), uids.take(pa.array(leaders))], schema=FOLLOWER)
    route(table, plan.ranges_of(orders[leaders]), plan, "followers", f"{partition:05d}")


# ---- 4. resolve order ranges, earliest first ------------------------------------------------

def resolve_range(plan: DedupPlan, number: int) -> int:
    """Decide the near duplicates of one order range; send survivors' edges to later ranges."""
    inbox = read_partition(plan, "inbox", number, EDGE)
    edges = read_partition(plan, "edges", number, EDGE)
    later_range = plan.ranges_of(column(edges, "later"))
    inside = pa.concat_tables([inbox, edges.filter(pa.array(later_range == number))])
    removed = choose_survivors(inside)
    outgoing = edges.filter(pa.array(later_range > number))
    leaving = ~np.isin(column(outgoing, "earlier"), np.fromiter(removed, np.int64, len(removed)))
    outgoing = outgoing.filter(pa.array(leaving))
    route(outgoing, plan.ranges_of(column(outgoing, "later")), plan, "inbox", f"{number:05d}")
    reps = sorted(removed.items())
    route(removal_table(np.array([order for order, _ in reps], np.int64),
                        [later_uid for _, (_, _, later_uid) in reps],
                        [named for _, (named, _, _) in reps], "near",
                        np.array([distance for _, (_, distance, _) in reps], np.int32)),
          np.full(len(reps), number), plan, "removed", f"near-{number:05d}")
    resolve_followers(plan, number, removed)
    return inbox.num_rows + edges.num_rows


def choose_survivors(edges: pa.Table) -> dict[int, tuple[str, int, str]]:
    """{removed order: (uid it duplicates, distance, its own uid)} given every edge that ends in
    the range: visiting later samples in order, each takes its earliest surviving neighbour."""
    edges = edges.sort_by([("later", "ascending"), ("earlier", "ascending")])
    removed: dict[int, tuple[str, int, str]] = {}
    decided = None
    for earlier, later, distance, earlier_uid, later_uid in zip(
            *(edges[name].to_pylist() for name in EDGE.names)):
        if later == decided or earlier in removed:
            continue
        removed[later] = (earlier_uid, distance, later_uid)
        decided = later
    return removed


def resolve_followers(plan: DedupPlan, number: int, removed: dict[int, tuple[str, int, str]]
                      ) -> None:
    """Identical-hash followers of this range's samples name what their first sample names."""
    followers = read_partition(plan, "followers", number, FOLLOWER)
    if not followers.num_rows:
        return
    named, distances = [], []
    for first, first_uid in zip(followers["first"].to_pylist(),
                                followers["first_uid"].to_pylist()):
        uid, distance, _ = removed.get(first, (first_uid, 0, None))
        named.append(uid)
        distances.append(distance)
    orders = column(followers, "order")
    route(removal_table(orders, followers["uid"], named, "near", np.array(distances)),
          plan.ranges_of(orders), plan, "removed", f"followers-{number:05d}")


# ---- the whole search -----------------------------------------------------------------------

def deduplicate(plan: DedupPlan, pieces: list[tuple[str, int]], *,
                progress: bool = True) -> DedupStats:
    """Find every duplicate among the index pieces ((parquet path, rows), in raw shard order);
    `removals(plan)` reads them back in order. `plan.work` is scratch: emptied first."""
    store.remove_tree(plan.work)
    options = {"progress": progress}
    groups = spill_groups(pieces, plan.partition_rows)
    spilled = map_partitions(spill_exact, [PartitionJob(plan, number, group)
                                           for number, group in enumerate(groups)],
                             desc="dedup: spill", **options)
    exact = map_partitions(dedupe_exact_partition,
                           [PartitionJob(plan, p) for p in range(plan.exact_partitions)],
                           desc="dedup: exact", **options)
    near, resolved, edges = [], [], 0
    if plan.near_dup_bits > 0:
        near = map_partitions(find_near_candidates,
                              [PartitionJob(plan, q) for q in range(plan.band_partitions)],
                              desc="dedup: near candidates", **options)
        edges = sum(found for _, found in near)
        resolved = [resolve_range(plan, r) for r in range(len(plan.range_starts))]
    stats = DedupStats(plan.exact_partitions, plan.band_partitions, len(plan.range_starts),
                       max([*spilled, *exact, *(rows for rows, _ in near), *resolved, 0]), edges)
    log.info("dedup: %d exact and %d band partitions, %d order ranges, %d near pairs, "
             "at most %d rows held at once", stats.exact_partitions, stats.band_partitions,
             stats.ranges, stats.edges, stats.largest_partition_rows)
    return stats


def removals(plan: DedupPlan) -> Iterator[pa.Table]:
    """Every removal (schema REMOVAL), one order range at a time, in order."""
    for number in range(len(plan.range_starts)):
        table = read_partition(plan, "removed", number, REMOVAL)
        if table.num_rows:
            yield table.sort_by("order")
