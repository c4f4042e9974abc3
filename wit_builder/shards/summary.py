"""`manifests/dataset.json`: what the training shards hold and what produced them.

Counts per split, per crawl status, per source, per language decision and per dedup kind, the
skipped inputs with their reasons, the parameters and the inputs (the queries file by its sha256).
No timings: the same inputs and settings give the same file. The counts are gathered in a `Tally`
while the stage streams, so nothing here holds a row per sample.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder.core import store, spill
from wit_builder.core.hashing import uid_keys
from wit_builder.shards.config import ShardsConfig

log = logging.getLogger(__name__)


@dataclass
class Tally:
    """What `wit shards` counted as it went."""
    samples_read: int = 0
    per_split: Counter = field(default_factory=Counter)       # kept samples
    per_dedup_kind: Counter = field(default_factory=Counter)
    per_source: Counter = field(default_factory=Counter)      # kept samples per crawl source
    problems: Counter = field(default_factory=Counter)        # skipped inputs, by reason
    statuses: Counter = field(default_factory=Counter)        # crawl manifest statuses
    per_exclude_set: Counter = field(default_factory=Counter)  # --exclude removals per set
    blurred: Counter = field(default_factory=Counter)   # --blur-faces: schemas.BLUR_COUNTS


def read_json_if_present(path: store.Location) -> dict:
    try:
        return store.read_json(path)
    except (OSError, ValueError):
        return {}


def selection_file(path: store.Location) -> pq.ParquetFile | None:
    """The selection, opened (its footer only), or None when there is no usable one."""
    if not store.is_file(path):
        return None
    try:
        return store.parquet_file(path)
    except (OSError, pa.ArrowException) as error:
        log.warning("shards: selection %s unreadable (%s): no per-source counts", path, error)
        return None


def uid_partitions(uids: pa.Array | pa.ChunkedArray, partitions: int) -> np.ndarray:
    """The partition of each uid for the source join (any fixed hash of uid would do: the counts
    are the same however uids are spread)."""
    if isinstance(uids, pa.ChunkedArray):
        uids = uids.combine_chunks()
    return (uid_keys(uids, 0) % np.uint64(partitions)).astype(np.int64)


class SourceCounter:
    """Kept samples per crawl source (web, warc, pool): a join of their uids with the selection's,
    partitioned by uid on disk so that no step holds more than `partition_rows` selection rows."""

    SELECTION = pa.schema([("uid", pa.string()), ("source", pa.string())])
    SAMPLES = pa.schema([("uid", pa.string()), ("count", pa.int64())])

    def __init__(self, selection: pq.ParquetFile | None, work: Path, partition_rows: int):
        self.work, self.pieces, self.partitions = work, 0, 0
        if selection is None or "source" not in selection.schema_arrow.names:
            return
        self.partitions = max(1, -(-selection.metadata.num_rows // partition_rows))
        batches = selection.iter_batches(batch_size=partition_rows, columns=["uid", "source"])
        for number, batch in enumerate(batches):
            table = pa.Table.from_batches([batch]).cast(self.SELECTION)
            spill.write_partitioned(table, uid_partitions(table["uid"], self.partitions),
                                    str(work / "selection"), self.partitions, f"{number:05d}")

    def add(self, uids: pa.Array | pa.ChunkedArray, count: int) -> None:
        """Count `uids` `count` times each (+1 for read samples, -1 for removed ones)."""
        if not self.partitions or not len(uids):
            return
        table = pa.table({"uid": uids, "count": pa.array(np.full(len(uids), count), pa.int64())})
        spill.write_partitioned(table.cast(self.SAMPLES),
                                uid_partitions(table["uid"], self.partitions),
                                str(self.work / "samples"), self.partitions, f"{self.pieces:05d}")
        self.pieces += 1

    def counts(self) -> Counter:
        """Samples counted per source, partition by partition ('unknown': not in the selection)."""
        sources: Counter = Counter()
        for number in range(self.partitions):
            selection = spill.read_partitioned(str(self.work / "selection"), number,
                                               self.partitions, self.SELECTION)
            samples = spill.read_partitioned(str(self.work / "samples"), number,
                                             self.partitions, self.SAMPLES)
            one_source = selection.group_by("uid").aggregate([("source", "min")]).rename_columns(
                ["uid", "source"])
            joined = samples.join(one_source, "uid", join_type="left outer")
            for source, count in zip(joined["source"].to_pylist(), joined["count"].to_pylist()):
                sources[source or "unknown"] += count
        return +sources


def language_decisions(selection: pq.ParquetFile | None, crawl_stats: dict) -> dict[str, int]:
    """Texts the crawl kept per detected language, and dropped for their language."""
    decisions: Counter = Counter()
    if selection is not None and "lang" in selection.schema_arrow.names:
        for batch in selection.iter_batches(columns=["lang"]):
            decisions.update(f"kept_{lang}" for lang in batch.column(0).to_pylist())
    for reason, count in crawl_stats.get("dropped", {}).items():
        if reason.startswith("not_"):
            decisions[f"dropped_{reason}"] += count
    return dict(sorted(decisions.items()))


def queries_sha256(config: ShardsConfig, crawl_stats: dict) -> str | None:
    if crawl_stats.get("queries_sha256"):
        return crawl_stats["queries_sha256"]
    queries = config.path("queries/queries.parquet")
    return store.sha256(queries) if store.is_file(queries) else None


def summarize(config: ShardsConfig, tally: Tally, written: list[dict], raw_shards: list,
              raw_bytes: int, buckets: int) -> dict:
    """The content of dataset.json."""
    manifests = config.path("manifests")
    crawl_stats = read_json_if_present(store.join(manifests, "crawl_stats.json"))
    selection = selection_file(store.join(manifests, "selection.parquet"))
    shards = Counter(row["split"] for row in written)
    duplicates = sum(tally.per_dedup_kind.values())
    return {
        "totals": {"raw_shards": len(raw_shards), "manifest_rows": sum(tally.statuses.values()),
                   "ok_in_manifests": tally.statuses.get("ok", 0),
                   "samples_read": tally.samples_read, "skipped": sum(tally.problems.values()),
                   "duplicates": duplicates, "samples": tally.samples_read - duplicates,
                   "train": tally.per_split.get("train", 0), "val": tally.per_split.get("val", 0),
                   "train_shards": shards.get("train", 0), "val_shards": shards.get("val", 0),
                   "bytes": sum(row["bytes"] for row in written)},
        "per_status": dict(sorted(tally.statuses.items())),
        "per_source": dict(sorted(tally.per_source.items())),
        "per_language": language_decisions(selection, crawl_stats),
        "per_dedup_kind": dict(sorted(tally.per_dedup_kind.items())),
        # only when the crawl blurred faces (the manifests' `faces` column)
        **({"blurred": dict(sorted(tally.blurred.items()))} if tally.blurred else {}),
        # only with --exclude: a dataset.json of a run without it is what it always was
        **({"per_exclude_set": dict(sorted(tally.per_exclude_set.items())),
            "exclude": {"sets": [str(path) for path in config.exclude],
                        "bits": config.exclude_bits}} if config.exclude else {}),
        "skipped": dict(sorted(tally.problems.items())),
        "parameters": {"samples_per_shard": config.samples_per_shard,
                       "val_fraction": config.val_fraction, "near_dup_bits": config.near_dup_bits,
                       "near_dup_check": config.near_dup_check,
                       "seed": config.seed, "memory_budget_mb": config.memory_budget_mb,
                       "buckets": buckets, "per_query": crawl_stats.get("per_query"),
                       "balance_mode": crawl_stats.get("balance_mode")},
        "inputs": {"raw": str(config.raw), "crawl_manifests": str(config.crawl_manifests),
                   "raw_bytes": raw_bytes, "sources": crawl_stats.get("sources", []),
                   "queries_sha256": queries_sha256(config, crawl_stats)},
    }
