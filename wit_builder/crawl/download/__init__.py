"""Download the selection into raw WebDataset shards (`data/raw/NNNNN.tar` + one manifest per
shard), with the native downloader or img2dataset; both give the same contract (DESIGN.md)."""

from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from typing import TYPE_CHECKING

from wit_builder.core import store
from wit_builder.crawl.download import writer
from wit_builder.crawl.download.fetch import FetchSettings, header_directives
from wit_builder.crawl.download.images import ImageSettings
from wit_builder.crawl.download.native import (COLUMNS, DownloadSettings, download_shard, finish_shard,
                                          log_done_check, plan_shards, warn_unrecorded)
from wit_builder.crawl.download.stats import progress_postfix, status_table, summary
from wit_builder.core.options import WitError

if TYPE_CHECKING:  # the workers' fork server imports this package: only what they run
    from wit_builder.crawl.config import CrawlConfig

log = logging.getLogger(__name__)

__all__ = ["download_selection", "status_table", "download_settings"]


def check_selection(config: CrawlConfig, selection: store.Location) -> None:
    if not store.is_file(selection):
        raise WitError(f"selection '{selection}' does not exist; run `wit crawl --no-download` "
                       f"first or check --workdir")
    names = set(store.parquet_file(selection).schema_arrow.names)
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        raise WitError(f"selection '{selection}' lacks column(s) {', '.join(missing)}")
    for name in ("samples_per_shard", "concurrency", "image_size", "download_per_host"):
        if getattr(config, name) < 1:
            raise WitError(f"--{name.replace('_', '-')} must be at least 1, "
                           f"not {getattr(config, name)}")


def download_settings(config: CrawlConfig) -> DownloadSettings:
    """What a worker needs (picklable), taken from the crawl settings."""
    fetch = FetchSettings(user_agent=config.user_agent, timeout=config.timeout,
                          retries=config.retries, max_bytes=config.max_bytes,
                          concurrency=config.concurrency, per_host=config.download_per_host,
                          allow_private=config.allow_private,
                          trusted_origins=tuple(config.trusted_origins),
                          disallowed_directives=header_directives(
                              config.disallowed_header_directives))
    image = ImageSettings(image_size=config.image_size, resize_mode=config.resize_mode,
                          min_size=config.min_size, max_aspect_ratio=config.max_aspect_ratio,
                          quality=config.quality)
    return DownloadSettings(workdir=str(config.workdir), fetch=fetch, image=image)


def remove_shards_past_selection(config: CrawlConfig, count: int) -> None:
    """Remove the raw shards an earlier, larger selection left past this one's `count`."""
    removed = writer.remove_shards_from(config.workdir, count)
    if removed:
        log.info("download: removed raw shard(s) %s: the selection now fills %d shard(s)",
                 ", ".join(f"{number:05d}" for number in removed), count)


def download_selection(config: CrawlConfig, selection: store.Location) -> dict:
    """Download every row of `selection` (a path or URL) into raw shards, redoing the shards
    whose rows or image settings changed; return the counts per status."""
    check_selection(config, selection)
    shards = plan_shards(selection, config.samples_per_shard)
    remove_shards_past_selection(config, len(shards))
    if config.downloader == "img2dataset":
        from wit_builder.crawl.download.img2dataset_backend import download_with_img2dataset

        return download_with_img2dataset(config, selection, shards)
    # This process writes the manifests, and pyarrow's first list → Arrow conversion imports
    # pandas (~0.35 CPU s): load it now, not between two shards (workers never need it).
    import pandas  # noqa: F401
    from tqdm import tqdm

    from wit_builder.core.engine import run_partitions

    started = time.monotonic()
    work = functools.partial(download_shard, settings=download_settings(config))
    statuses: Counter = Counter()
    skipped = unrecorded = 0
    bar = tqdm(total=len(shards), desc="crawl: download", unit="shard")
    try:
        for result in run_partitions(work, shards, workers=config.workers,
                                     engine=config.engine, progress=False):
            finish_shard(result, str(config.workdir))
            statuses.update(result["statuses"])
            skipped += result["skipped"]
            unrecorded += result["check"].unrecorded
            log_done_check(result["shard"], result["check"])
            bar.update()
            bar.set_postfix(progress_postfix(statuses, time.monotonic() - started))
    finally:
        bar.close()
    warn_unrecorded(unrecorded)
    return summary(statuses, len(shards), skipped, time.monotonic() - started, "native")
