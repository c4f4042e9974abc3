"""`manifests/dataset.json`: what the training shards hold and what produced them.

Counts per split, per crawl status, per source, per language decision and per dedup kind, the
skipped inputs with their reasons, the parameters and the inputs (the queries file by its sha256).
No timings: the same inputs and settings give the same file.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from wit_builder import atomic
from wit_builder.config import ShardsConfig

log = logging.getLogger(__name__)


def read_json_if_present(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_selection_columns(path: Path) -> pa.Table | None:
    """The selection's uid, source and lang columns, or None when there is no usable selection."""
    if not path.is_file():
        return None
    try:
        names = set(pq.read_schema(path).names)
        return pq.read_table(path, columns=[c for c in ("uid", "source", "lang") if c in names])
    except (OSError, pa.ArrowException) as error:
        log.warning("shards: selection %s unreadable (%s): no per-source counts", path, error)
        return None


def per_source_counts(kept_uids: pa.Table, selection: pa.Table | None) -> dict[str, int]:
    """Kept samples per crawl source (web, warc, pool), by the selection's row of each uid."""
    if selection is None or "source" not in selection.column_names:
        return {}
    joined = kept_uids.join(selection.select(["uid", "source"]).group_by("uid").aggregate(
        [("source", "min")]).rename_columns(["uid", "source"]), "uid", join_type="left outer")
    sources = Counter(source or "unknown" for source in joined["source"].to_pylist())
    return dict(sorted(sources.items()))


def language_decisions(selection: pa.Table | None, crawl_stats: dict) -> dict[str, int]:
    """Texts the crawl kept per detected language, and dropped for their language."""
    decisions: Counter = Counter()
    if selection is not None and "lang" in selection.column_names:
        decisions.update(f"kept_{lang}" for lang in selection["lang"].to_pylist())
    for reason, count in crawl_stats.get("dropped", {}).items():
        if reason.startswith("not_"):
            decisions[f"dropped_{reason}"] += count
    return dict(sorted(decisions.items()))


def queries_sha256(config: ShardsConfig, crawl_stats: dict) -> str | None:
    if crawl_stats.get("queries_sha256"):
        return crawl_stats["queries_sha256"]
    queries = Path(config.path("queries/queries.parquet"))
    return atomic.sha256_file(queries) if queries.is_file() else None


def summarize(config: ShardsConfig, index: pa.Table, mask: np.ndarray, removals: list[dict],
              problems: Counter, statuses: Counter, written: list[dict], raw_shards: list,
              raw_bytes: int, buckets: int) -> dict:
    """The content of dataset.json."""
    manifests = Path(config.path("manifests"))
    crawl_stats = read_json_if_present(manifests / "crawl_stats.json")
    selection = read_selection_columns(manifests / "selection.parquet")
    kept = index.filter(pa.array(mask))
    splits = Counter(kept["split"].to_pylist())
    shards = Counter(row["split"] for row in written)
    return {
        "totals": {"raw_shards": len(raw_shards), "manifest_rows": sum(statuses.values()),
                   "ok_in_manifests": statuses.get("ok", 0), "samples_read": index.num_rows,
                   "skipped": sum(problems.values()), "duplicates": len(removals),
                   "samples": kept.num_rows, "train": splits.get("train", 0),
                   "val": splits.get("val", 0), "train_shards": shards.get("train", 0),
                   "val_shards": shards.get("val", 0),
                   "bytes": sum(row["bytes"] for row in written)},
        "per_status": dict(sorted(statuses.items())),
        "per_source": per_source_counts(kept.select(["uid"]), selection),
        "per_language": language_decisions(selection, crawl_stats),
        "per_dedup_kind": dict(sorted(Counter(r["kind"] for r in removals).items())),
        "skipped": dict(sorted(problems.items())),
        "parameters": {"samples_per_shard": config.samples_per_shard,
                       "val_fraction": config.val_fraction, "near_dup_bits": config.near_dup_bits,
                       "seed": config.seed, "memory_budget_mb": config.memory_budget_mb,
                       "buckets": buckets, "per_query": crawl_stats.get("per_query"),
                       "balance_mode": crawl_stats.get("balance_mode")},
        "inputs": {"raw": str(config.raw), "crawl_manifests": str(config.crawl_manifests),
                   "raw_bytes": raw_bytes, "sources": crawl_stats.get("sources", []),
                   "queries_sha256": queries_sha256(config, crawl_stats)},
    }
