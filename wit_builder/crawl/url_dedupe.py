"""The crawl's URL dedupe: the first row of every image URL over all matched partitions, in
partition order, within a memory budget however large the crawl (hash buckets of the URL key on
disk past the budget; one in-memory pass below it)."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit_builder.core import engine, spill, store
from wit_builder.core.engine import map_partitions

log = logging.getLogger(__name__)


def url_key(url: str) -> int:
    return int.from_bytes(hashlib.blake2b(url.encode(), digest_size=8).digest(), "little")


DEDUPE_MEMORY_BUDGET_MB = 512.0  # the default of `wit crawl --memory-budget-mb`
# Hash buckets differ in size: the spare keeps the fullest one within the budget too.
BUCKET_SPARE = 1.25
KEY_BATCH = 65_536  # URLs made Python strings at once while their keys are computed
URL_ROW = pa.schema([("key", pa.uint64()), ("order", pa.int64()), ("uid", pa.string())])
DROP_ROW = pa.schema([("order", pa.int64()), ("same_pair", pa.bool_())])


@dataclass(frozen=True)
class DedupePlan:
    """Where the URL dedupe spills its rows and how it splits them (picklable, for workers).
    Orders are `staged partition << 32 | row`; groups are runs of consecutive staged partitions
    of about a bucket's rows, so every step holds one group or one bucket."""

    work: str
    out_dir: str
    group_starts: tuple[int, ...]   # first staged partition of each group, ascending
    buckets: int

    def groups_of(self, orders: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.group_starts, orders >> 32, side="right") - 1


@dataclass(frozen=True)
class DedupeJob:
    """One unit of work for engine.py: a group (scatter, write) or a bucket (decide). A job
    carries only its own group's files: a crawl's full list, sent with every job, would not
    stay small."""

    plan: DedupePlan
    number: int
    staged: tuple[tuple[int, str], ...] = ()  # a group's (staged partition, file)


def url_rows(path: store.Location, partition: int) -> pa.Table:
    """(URL key, order, uid) of every row of one staged partition (schema URL_ROW)."""
    table = store.read_parquet(path, columns=["uid", "url"])
    keys = np.empty(table.num_rows, np.uint64)
    for start in range(0, table.num_rows, KEY_BATCH):
        urls = table.column("url").slice(start, KEY_BATCH).to_pylist()
        keys[start:start + len(urls)] = np.fromiter(map(url_key, urls), np.uint64, len(urls))
    orders = spill.order_keys(np.full(table.num_rows, partition), np.arange(table.num_rows))
    return pa.table([pa.array(keys), pa.array(orders), table.column("uid")], schema=URL_ROW)


def later_rows_of_urls(rows: pa.Table) -> pa.Table:
    """The rows (schema DROP_ROW) that come after the first row of their URL key; `same_pair`
    when the row's uid is the first row's (same URL and text: a duplicate pair)."""
    keys, orders = spill.column(rows, "key"), spill.column(rows, "order")
    ordering = np.lexsort((orders, keys))
    first = spill.first_of_runs(keys[ordering])
    later = np.flatnonzero(~first)
    leaders = spill.run_leaders(first)[later]
    uids = rows["uid"].take(pa.array(ordering))
    same_pair = pc.equal(uids.take(pa.array(later)), uids.take(pa.array(leaders)))
    return pa.table([pa.array(orders[ordering][later]), same_pair], schema=DROP_ROW)


def drop_counts(drops: pa.Table) -> tuple[int, int]:
    """(duplicate pairs, duplicate URLs) among `drops`."""
    pairs = int(np.count_nonzero(spill.column(drops, "same_pair")))
    return pairs, drops.num_rows - pairs


def dropped_rows_by_partition(orders: np.ndarray, partitions: list[int]) -> Iterator[np.ndarray]:
    """The dropped row numbers of each staged partition of `partitions`, in their order."""
    orders = np.sort(orders)
    owners = orders >> 32
    starts = np.searchsorted(owners, partitions, side="left")
    stops = np.searchsorted(owners, partitions, side="right")
    for start, stop in zip(starts, stops):
        yield orders[start:stop] & 0xFFFFFFFF


def write_kept_rows(path: store.Location, out_dir: store.Location, dropped_rows: np.ndarray
                    ) -> None:
    """Staged partition `path` less its dropped rows, atomically, under its name in `out_dir`."""
    table = store.read_parquet(path)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[dropped_rows] = False
    store.write_parquet(store.join(out_dir, store.name(path)), table.filter(pa.array(keep)))


def scatter_url_rows(job: DedupeJob) -> int:
    """Spill a group's URL rows to hash buckets of their URL key; the rows held."""
    plan = job.plan
    rows = pa.concat_tables([url_rows(path, partition) for partition, path in job.staged])
    keys = spill.column(rows, "key")
    buckets = ((keys >> np.uint64(32)) * np.uint64(plan.buckets)) >> np.uint64(32)
    spill.write_partitioned(rows, buckets.astype(np.int64), store.join(plan.work, "urls"),
                            plan.buckets, f"{job.number:05d}")
    return rows.num_rows


def dedupe_url_bucket(job: DedupeJob) -> tuple[int, int, int]:
    """Decide one bucket (a URL's rows are all in one); spill its drops to their groups.
    (rows held, duplicate pairs, duplicate URLs)."""
    plan = job.plan
    rows = spill.read_partitioned(store.join(plan.work, "urls"), job.number, plan.buckets,
                                  URL_ROW)
    drops = later_rows_of_urls(rows)
    spill.write_partitioned(drops, plan.groups_of(spill.column(drops, "order")),
                            store.join(plan.work, "drops"), len(plan.group_starts),
                            f"{job.number:05d}")
    return (rows.num_rows, *drop_counts(drops))


def write_deduped_group(job: DedupeJob) -> int:
    """Write the kept rows of a group's staged partitions; the drops held."""
    plan = job.plan
    drops = spill.read_partitioned(store.join(plan.work, "drops"), job.number,
                                   len(plan.group_starts), DROP_ROW)
    partitions = [partition for partition, _ in job.staged]
    for (_, path), rows in zip(job.staged, dropped_rows_by_partition(
            spill.column(drops, "order"), partitions)):
        write_kept_rows(path, plan.out_dir, rows)
    return drops.num_rows


def dedupe_in_memory(staged: list[store.Location], out_dir: store.Location) -> tuple[int, int]:
    """The whole crawl's URL rows fit the budget: decide them at once, no scratch files."""
    rows = pa.concat_tables([URL_ROW.empty_table()] + [url_rows(path, partition)
                                                       for partition, path in enumerate(staged)])
    drops = later_rows_of_urls(rows)
    for path, dropped_rows in zip(staged, dropped_rows_by_partition(
            spill.column(drops, "order"), list(range(len(staged))))):
        write_kept_rows(path, out_dir, dropped_rows)
    return drop_counts(drops)


def group_jobs(staged: list[store.Location], out_dir: store.Location, rows: list[int],
               partition_rows: int) -> list[DedupeJob]:
    """Groups of staged partitions of about `partition_rows` rows each, in a plan whose URL
    buckets hold about as many."""
    groups = spill.spill_groups([(str(path), count) for path, count in zip(staged, rows)],
                                partition_rows)
    starts = [int(start) for start in np.cumsum([0] + [len(group) for group in groups[:-1]])]
    plan = DedupePlan(str(store.join(out_dir, ".dedupe")), str(out_dir), tuple(starts),
                      spill.clamp_partitions(sum(rows) * BUCKET_SPARE, partition_rows))
    return [DedupeJob(plan, number, tuple(enumerate(group, start)))
            for number, (start, group) in enumerate(zip(starts, groups))]


def dedupe_on_disk(groups: list[DedupeJob]) -> tuple[int, int]:
    """Scatter URL rows to buckets, decide each bucket, write each group's kept rows."""
    plan = groups[0].plan
    store.remove_tree(plan.work)
    held = map_partitions(scatter_url_rows, groups, desc="crawl: dedupe: scatter")
    decided = map_partitions(dedupe_url_bucket,
                             [DedupeJob(plan, number) for number in range(plan.buckets)],
                             desc="crawl: dedupe: buckets")
    held += map_partitions(write_deduped_group, groups, desc="crawl: dedupe: write")
    store.remove_tree(plan.work)
    log.info("crawl: dedupe: %d groups, %d URL buckets, at most %d rows held at once",
             len(groups), plan.buckets, max(held + [rows for rows, _, _ in decided]))
    return sum(pairs for _, pairs, _ in decided), sum(urls for _, _, urls in decided)


def dedupe_matched(staged: list[store.Location], out_dir: store.Location, dropped: Counter, *,
                   memory_budget_mb: float = DEDUPE_MEMORY_BUDGET_MB,
                   workers: int | None = None) -> list[store.Location]:
    """Keep the first occurrence of every image URL across the whole crawl (in partition order):
    the same (URL, text) is a `duplicate_pair`, the same URL with another text a `duplicate_url`.
    Memory stays within the budget however large the crawl: past it, rows go through hash
    buckets of their URL in `out_dir/.dedupe` (removed after), on the stage's engine (`workers`
    overrides its worker count: tests)."""
    rows = [store.parquet_file(path).metadata.num_rows for path in staged]
    partition_rows = spill.rows_within(memory_budget_mb)
    if sum(rows) <= partition_rows:
        pairs, urls = dedupe_in_memory(staged, out_dir)
    else:
        groups = group_jobs(staged, out_dir, rows, partition_rows)
        with engine.using(workers=workers):
            pairs, urls = dedupe_on_disk(groups)
    # Only reasons that occurred: the crawl's stats list no zero counts.
    dropped.update({reason: count for reason, count in
                    (("duplicate_pair", pairs), ("duplicate_url", urls)) if count})
    return [store.join(out_dir, store.name(path)) for path in staged]
