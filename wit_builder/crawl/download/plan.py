"""The selection cut into download shards, for either downloader: the checks before a download,
the shards (consecutive slices of the selection) and each shard's rows, the inputs a shard's
manifest records and the download's done rule on them (`check_done`: what a rerun compares), and
the settings a worker needs."""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from wit_builder.core import markers, phash, schemas, store
from wit_builder.core.options import WitError
from wit_builder.crawl.blocklists import load_blocklist
from wit_builder.crawl.download import writer
from wit_builder.crawl.download.fetch import FetchSettings, header_directives
from wit_builder.crawl.download.images import ImageSettings
from wit_builder.crawl.download.safety import safety_settings

if TYPE_CHECKING:  # the workers' fork server imports this module: only what they run
    from wit_builder.crawl.config import CrawlConfig

log = logging.getLogger(__name__)

COLUMNS = ["uid", "url", "text", "page_url", "query_ids"]   # what a download reads of the selection


@dataclass(frozen=True)
class DownloadShard:
    index: int
    selection: str   # path or URL
    start: int   # rows [start, stop) of the selection
    stop: int


@dataclass(frozen=True)
class DownloadSettings:
    workdir: str
    fetch: FetchSettings
    image: ImageSettings
    decode_threads: int = 2
    # the pool's columns the selection carries (--save-additional-columns), with their types
    additional: pa.Schema = field(default_factory=lambda: pa.schema([]))


def check_selection(config: CrawlConfig, selection: store.Location) -> None:
    if not store.is_file(selection):
        raise WitError(f"selection '{selection}' does not exist; run `wit crawl --no-download` "
                       f"first or check --workdir")
    names = set(store.parquet_file(selection).schema_arrow.names)
    missing = [name for name in COLUMNS if name not in names]
    if missing:  # (the numbers' ranges are checked when the settings are read: core/config.py)
        raise WitError(f"selection '{selection}' lacks column(s) {', '.join(missing)}")


def plan_shards(selection: store.Location, samples_per_shard: int) -> list[DownloadShard]:
    """The selection cut into consecutive slices of `samples_per_shard` rows."""
    rows = store.parquet_file(selection).metadata.num_rows
    return [DownloadShard(index, str(selection), start, min(start + samples_per_shard, rows))
            for index, start in enumerate(range(0, rows, samples_per_shard))]


def remove_shards_past_selection(workdir: store.Location, count: int) -> None:
    """Remove the raw shards an earlier, larger selection left past this one's `count`."""
    removed = writer.remove_shards_from(workdir, count)
    if removed:
        log.info("download: removed raw shard(s) %s: the selection now fills %d shard(s)",
                 ", ".join(f"{number:05d}" for number in removed), count)


def plan_download(config: CrawlConfig, selection: store.Location
                  ) -> tuple[list[DownloadShard], DownloadSettings]:
    """The shards of a checked selection and what a worker needs; the raw shards past them, left
    by a larger selection, are removed."""
    shards = plan_shards(selection, config.samples_per_shard)
    remove_shards_past_selection(config.workdir, len(shards))
    additional = schemas.additional_fields(store.parquet_file(selection).schema_arrow,
                                           schemas.SELECTION)
    return shards, download_settings(config, additional)


def download_settings(config: CrawlConfig, additional: pa.Schema | None = None
                      ) -> DownloadSettings:
    """What a worker needs (picklable), taken from the crawl settings."""
    fetch = FetchSettings(user_agent=config.user_agent, timeout=config.timeout,
                          retries=config.retries, max_bytes=config.max_bytes,
                          concurrency=config.concurrency, per_host=config.download_per_host,
                          allow_private=config.allow_private,
                          trusted_origins=tuple(config.trusted_origins),
                          disallowed_directives=header_directives(
                              config.disallowed_header_directives),
                          image_robots=config.image_robots,
                          # (a pHash too near a flat picture's: `wit crawl` warned at the start)
                          blocklist=load_blocklist(config.block_hashes, config.block_urls,
                                                   config.block_phash_distance, warn=False))
    image = ImageSettings(image_size=config.image_size, resize_mode=config.resize_mode,
                          min_size=config.min_size, max_aspect_ratio=config.max_aspect_ratio,
                          quality=config.quality, decode=config.decode,
                          safety=safety_settings(config))
    return DownloadSettings(workdir=str(config.workdir), fetch=fetch, image=image,
                            additional=additional or pa.schema([]))


def read_rows(shard: DownloadShard, additional: list[str] | tuple[str, ...] = ()) -> list[dict]:
    """The shard's rows (COLUMNS and the `additional` ones), reading only the row groups that
    overlap it (flat memory)."""
    parquet = store.parquet_file(shard.selection)
    rows, offset = [], 0
    for group in range(parquet.metadata.num_row_groups):
        count = parquet.metadata.row_group(group).num_rows
        if offset < shard.stop and offset + count > shard.start:
            table = parquet.read_row_group(group, columns=[*COLUMNS, *additional])
            low, high = max(shard.start - offset, 0), min(shard.stop - offset, count)
            rows += table.slice(low, high - low).to_pylist()
        offset += count
    return rows


def shard_inputs(rows: list[dict], settings: DownloadSettings) -> dict:
    """What a shard's tar and manifest depend on, recorded in its manifest: a digest of its rows
    of the selection (a re-balanced selection moves rows between shards), the image settings and
    the opt-out directives, whether robots.txt is obeyed and the blocklists (they decide which
    images are stored), and the pool's additional columns (the samples' `.json` holds them)."""
    names = [*COLUMNS, *settings.additional.names]
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps([row[name] for name in names], ensure_ascii=False,
                                 default=str).encode())
        digest.update(b"\n")
    inputs = {"selection_rows": len(rows), "selection_sha256": digest.hexdigest(),
              "image_settings": asdict(settings.image),
              "disallowed_directives": list(settings.fetch.disallowed_directives),
              "image_robots": settings.fetch.image_robots}
    del inputs["image_settings"]["safety"]   # recorded apart, only when on (as the lists)
    if settings.image.safety:
        inputs["safety"] = settings.image.safety.recorded()
    if settings.additional:  # recorded when set, as the blocklists
        inputs["additional_columns"] = [[item.name, str(item.type)]
                                        for item in settings.additional]
    if settings.fetch.blocklist:  # recorded when given: a new list redoes the shards
        inputs["blocklists_sha256"] = settings.fetch.blocklist.fingerprint
    if settings.fetch.blocklist.phashes.size:  # and new pHash rules (their bits changed)
        inputs["phash"] = phash.VERSION
    return inputs


@dataclass(frozen=True)
class DoneCheck:
    """Whether a shard is done for its inputs now: `statuses` (its manifest's counts) when it is,
    else what `changed` since it was done (nothing when it never was); `unrecorded` when its
    manifest, from an older witbuilder, records no inputs (it then counts as done); `marker`: the
    decision itself (markers.Check: an unreadable manifest is downloaded again)."""

    statuses: dict | None
    changed: tuple[str, ...] = ()
    unrecorded: bool = False
    marker: markers.Check | None = None


def check_done(shard: DownloadShard, inputs: dict, workdir: str) -> DoneCheck:
    """A shard's marker is its manifest, whose schema metadata records the inputs (writer.py);
    one from an older witbuilder, which records none, counts as done."""
    manifest_file = writer.manifest_path(workdir, shard.index)
    check = markers.check(manifest_file, inputs, key=None, read=writer.manifest_inputs)
    if not check.done:
        return DoneCheck(None, check.changed, marker=check)
    table = writer.read_manifest(manifest_file)
    return DoneCheck(dict(Counter(table.column("status").to_pylist())), (), check.older, check)


def log_done_check(index: int, check: DoneCheck) -> None:
    if check.statuses is not None:
        log.info("download: shard %05d already done (manifest exists): skipped", index)
    elif check.changed:
        log.info("download: shard %05d downloaded again: its %s changed since it was done",
                 index, " and ".join(check.changed))
    elif check.marker is not None and check.marker.error:
        markers.log_unreadable(log, "download", check.marker, "shard", f"{index:05d}")


def warn_unrecorded(count: int) -> None:
    markers.log_older(log, "download", count, "shard", "their manifests/crawl/NNNNN.parquet")
