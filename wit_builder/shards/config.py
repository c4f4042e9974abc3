"""The settings of `wit shards` (`wit shards --help` is generated from them)."""

from __future__ import annotations

from dataclasses import dataclass

from wit_builder.core.config import PartitionedStageConfig
from wit_builder.core.options import option
from wit_builder.net.options import NetworkOptions


@dataclass
class RecheckOptions(NetworkOptions):
    """How the opt-out recheck asks the image hosts (`wit optout`, `wit shards --recheck-optout`):
    --allow-private, --trusted-origins and --user-agent as the crawl had them."""

    recheck_timeout: float = option(20.0, "seconds per request of the opt-out recheck", above=0)
    recheck_concurrency: int = option(32, "requests in flight at once during the opt-out "
                                          "recheck", min=1)
    recheck_per_host: int = option(2, "requests in flight to one host during the opt-out "
                                      "recheck (robots.txt Crawl-delay is obeyed too)", min=1)


@dataclass
class ShardsConfig(RecheckOptions, PartitionedStageConfig):
    samples_per_shard: int = option(10_000, "samples per training shard", min=1)
    val_fraction: float = option(0.01, "share of samples held out for validation", min=0,
                                  below=1)
    near_dup_bits: int = option(4, "Hamming distance of perceptual hashes counted as duplicates "
                                    "(0 disables near-duplicate removal)", min=0, max=31)
    near_dup_check: bool = option(True, "a pair within --near-dup-bits is a duplicate only if "
                                        "it also looks alike (sharpness, brightness, contrast, "
                                        "colour): blurred, greyscale, filtered edits are kept")
    exclude: list[str] = option([], "evaluation sets (folders of images and/or WebDataset tars, "
                                    "relative to the workdir unless absolute): "
                                    "every training sample that copies one of their images, "
                                    "exactly or within --exclude-bits, is removed (kind eval in "
                                    "dedup.parquet) (repeatable)", metavar="DIR")
    exclude_bits: int = option(4, "Hamming distance of perceptual hashes at which a sample "
                                  "counts as a copy of an evaluation image (looks compared as "
                                  "with --near-dup-check)", min=0, max=31)
    raw: str = option("data/raw", "directory (or fsspec URL) of the raw shards NNNNN.tar")
    crawl_manifests: str = option("manifests/crawl", "directory (or fsspec URL) of the raw "
                                                     "shards' manifests NNNNN.parquet")
    memory_budget_mb: float = option(512.0, "memory one step holds at once: sample bytes to "
                                            "shuffle, index rows to deduplicate (sets the "
                                            "number of on-disk buckets and dedup partitions)",
                                            above=0)
    report: bool = option(True, "write manifests/report.html with its PNG plots")
    takedown: list[str] = option([], "takedown lists (URLs, one a line, gzip accepted, # "
                                 "comments): samples whose image URL or page URL is listed are "
                                 "removed from the training shards and recorded in "
                                 "manifests/takedown.parquet; recorded removals stay removed in "
                                 "every rebuild (repeatable)", metavar="FILE")
    recheck_optout: bool = option(False, "after writing the shards, re-read robots.txt and the "
                                         "X-Robots-Tag answer (HEAD) of every image URL and "
                                         "remove the samples whose owners opted out since the "
                                         "crawl (see `wit optout`)")


@dataclass
class TakedownConfig(PartitionedStageConfig):
    file: str = option("", "the takedown list: URLs, one a line (gzip accepted, # comments), "
                           "compared in canonical form with each sample's image URL (reason "
                           "takedown) and page URL (reason takedown_page)", positional=True,
                       metavar="FILE")


@dataclass
class OptoutConfig(RecheckOptions, PartitionedStageConfig):
    """`wit optout`: the opt-out recheck alone, on the training shards already written."""
