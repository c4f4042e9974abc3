"""The settings of `wit shards` (`wit shards --help` is generated from them)."""

from __future__ import annotations

from dataclasses import dataclass

from wit_builder.core.config import PartitionedStageConfig
from wit_builder.core.options import option


@dataclass
class ShardsConfig(PartitionedStageConfig):
    samples_per_shard: int = option(10_000, "samples per training shard", min=1)
    val_fraction: float = option(0.01, "share of samples held out for validation", min=0, max=1)
    near_dup_bits: int = option(4, "Hamming distance of perceptual hashes counted as duplicates "
                                    "(0 disables near-duplicate removal)", min=0, max=64)
    near_dup_check: bool = option(True, "a pair within --near-dup-bits is a duplicate only if "
                                        "it also looks alike (sharpness, brightness, contrast, "
                                        "colour): blurred, greyscale, filtered edits are kept")
    raw: str = option("data/raw", "directory (or fsspec URL) of the raw shards NNNNN.tar")
    crawl_manifests: str = option("manifests/crawl", "directory (or fsspec URL) of the raw "
                                                     "shards' manifests NNNNN.parquet")
    memory_budget_mb: float = option(512.0, "memory one step holds at once: sample bytes to "
                                            "shuffle, index rows to deduplicate (sets the "
                                            "number of on-disk buckets and dedup partitions)",
                                            above=0)
    report: bool = option(True, "write manifests/report.html with its PNG plots")
