"""`wit crawl`: harvest → filter → match → English → dedupe → balance (→ download).

Every source becomes partitions (a WARC file, row groups of a pool, chunks of crawled pages);
`engine.py` runs the per-partition work (clean, match, detect language) wherever it runs; the
global steps (dedupe, balance) read the partition files back. A partition whose stats file exists
and records the same inputs (source file, queries, filter settings) is done, so a killed crawl
resumes where it stopped, and a crawl rerun with other inputs redoes what they change.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import heapq
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from wit_builder.core import atomic, cpu, markers, schemas, store
from wit_builder.crawl.allocator import keep_freed_memory
from wit_builder.crawl.balance import BalanceSettings, balance_by_query
from wit_builder.crawl.captions import CaptionLimits, caption_problem, clean_caption
from wit_builder.crawl.config import CrawlConfig
from wit_builder.crawl.language import DEFAULT_MIN_PROB, cached_detector, detector_settings
from wit_builder.crawl.blocklists import load_blocklist
from wit_builder.crawl.download import download_selection, status_table
from wit_builder.crawl.download.img2dataset_backend import check_engine
from wit_builder.crawl.download.safety import record_blur_counts, safety_settings
from wit_builder.crawl.download.safety import stats_entry as safety_stats_entry
from wit_builder.core.engine import map_partitions, stage_engine
from wit_builder.core.text import TOKENIZATION
from wit_builder.crawl.match import QueryMatcher, warn_if_other_rules
from wit_builder.net.guard import AddressPolicy, origin_netloc
from wit_builder.core.options import WitError
from wit_builder.crawl.sources.html import PageImages, extract_images, parse_page
from wit_builder.crawl.url_dedupe import dedupe_matched
from wit_builder.crawl.sources.pool import (PoolColumns, PoolPartition, additional_schema,
                                            pool_format, pool_partitions, read_pool)
from wit_builder.crawl.sources import SERVED_SOURCES
from wit_builder.net.urls import canonical_url
from wit_builder.crawl.sources.warc import expand_warc_locations, read_html_responses
from wit_builder.crawl.sources.web import Frontier, WebCrawlSettings, crawl_web, page_failure

log = logging.getLogger(__name__)

SOURCE_KINDS = ("web", "warc", "pool")  # and the served sources plugged in (sources/__init__.py)
STAGED = pa.schema([("url", pa.string()), ("text", pa.string()), ("page_url", pa.string())])
# a sorted run of a live crawl's pairs, columns in sort order: (page_url, position, url, text)
CRAWL_RUN = pa.schema([("page_url", pa.string()), ("position", pa.int64()), ("url", pa.string()),
                       ("text", pa.string())])
RUN_BATCH_ROWS = 1024  # rows of each run the final merge holds at once
# counted in crawl_stats.json apart from `dropped`: pages read (live or in WARCs) and links to
# hosts the live crawl does not visit are no pairs lost
COUNTS = ("pages", "off_site_link")
# a live crawl's pages that gave nothing: no answer, a bad one, or one that failed to parse
WEB_ERRORS = ("http_error", "timeout", "connection_error", "too_large", "redirect_loop",
              "blocked_address", "page_error", "page_too_complex", "crawler_error")


@dataclass(frozen=True)
class Source:
    kind: str
    location: str


@dataclass(frozen=True)
class Partition:
    index: int
    kind: str       # warc | pool | staged (pages crawled live, written to parquet first)
    location: str
    source: str     # the contract's `source` column: web | warc | pool
    row_groups: tuple[int, ...] = ()
    sha256: str | None = None   # of a staged chunk (None: staged by a version that kept none)
    rows: tuple[int, int] | None = None  # a pool's rows [start, stop) of those row groups
    share: tuple[int, int] | None = None  # a text pool's batches k, k + n, ... as (k, n)
    more: tuple[str, ...] = ()  # small pool files read whole after `location`


@dataclass(frozen=True)
class PartitionSettings:
    """What a worker needs to process a partition (picklable)."""

    workdir: str
    queries: str
    limits: CaptionLimits
    lang: str
    min_lang_prob: float
    lang_detector: str
    seed: int
    columns: PoolColumns
    queries_sha256: str = ""
    policy: AddressPolicy = AddressPolicy()  # where WARCs and pools on the web may be read from


def source_forms() -> str:
    served = "".join(f" or {kind}:" for kind in sorted(SERVED_SOURCES))
    return f"web:URL, web:@SEEDS_FILE, warc:PATH_OR_URL, pool:PATH{served}"


def parse_source(text: str) -> Source:
    kind, separator, location = text.partition(":")
    served = kind in SERVED_SOURCES
    if not separator or not (kind in SOURCE_KINDS and location or served):
        raise WitError(f"source '{text}' must be {source_forms()}")
    return Source(kind, location)


def web_seeds(location: str) -> list[str]:
    """The seed URLs of a web source: one URL, or a file of URLs (web:@seeds.txt)."""
    if not location.startswith("@"):
        return [location]
    path = Path(location[1:])
    if not path.is_file():
        raise WitError(f"seeds file '{path}' does not exist")
    seeds = [line.strip() for line in path.read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    if not seeds:
        raise WitError(f"seeds file '{path}' lists no URL")
    return seeds


def address_policy(config: CrawlConfig) -> AddressPolicy:
    """The address guard of every request of the crawl (pages, WARCs, images)."""
    return config.address_policy()


def crawl_settings(config: CrawlConfig) -> WebCrawlSettings:
    return WebCrawlSettings(
        max_pages=config.max_pages, max_depth=config.max_depth,
        allowed_hosts=tuple(config.allowed_hosts), user_agent=config.user_agent,
        concurrency=config.crawl_concurrency, per_host_concurrency=config.per_host_concurrency,
        delay=config.crawl_delay, timeout=config.timeout, max_page_bytes=config.max_page_bytes,
        allow_private=config.allow_private, trusted_origins=tuple(config.trusted_origins),
        checkpoint_pages=config.checkpoint_pages, blocklist=load_blocklist([], config.block_urls))


def web_crawl_inputs(seeds: list[str], config: CrawlConfig) -> dict:
    """What a live crawl's pairs depend on (its other settings only change how fast it goes)."""
    return {"seeds": list(seeds), "max_pages": config.max_pages, "max_depth": config.max_depth,
            "allowed_hosts": list(config.allowed_hosts), "user_agent": config.user_agent,
            "max_page_bytes": config.max_page_bytes, "allow_private": config.allow_private,
            "partition_rows": config.partition_rows,
            # recorded only when set, so that crawls made before the option still resume
            **({"trusted_origins": sorted(config.trusted_origins)}
               if config.trusted_origins else {}),
            **({"block_urls_sha256": load_blocklist([], config.block_urls).fingerprint}
               if config.block_urls else {})}


def stage_web_crawl(seeds: list[str], config: CrawlConfig, staging: store.Location, name: str,
                    dropped: Counter) -> list[tuple[store.Location, str | None]]:
    """Crawl from `seeds` and write the pages' (url, text, page_url) pairs to parquet chunks,
    sorted by page so the result does not depend on the order pages arrived in; returns each
    chunk with its sha256. A crawl done before with the same seeds and settings is reused; one
    killed midway goes on from its last checkpoint."""
    if config.checkpoint_pages < 0:
        raise WitError(f"--checkpoint-pages {config.checkpoint_pages}: must be 0 or more")
    marker = store.join(staging, f"{name}.json")
    inputs = web_crawl_inputs(seeds, config)
    check = markers.check(marker, inputs)
    if check.done:
        markers.log_older(log, "crawl: harvest", check.older, "live crawl", str(marker))
        CrawlRuns(staging, name, inputs).remove()  # left by a run killed right after its marker
        done = check.record
        dropped.update(done["dropped"])
        log.info("crawl: %s already crawled (%d pages); delete %s to crawl again",
                 name, done["dropped"].get("pages", 0), marker)
        digests = done.get("chunk_sha256", {})
        return [(store.join(staging, chunk), digests.get(chunk)) for chunk in done["chunks"]]
    if check.changed:
        log.info("crawl: %s is crawled again: %s changed since it was crawled",
                 name, ", ".join(check.changed))
    elif check.error:
        markers.log_unreadable(log, "crawl: harvest", check, "live crawl", name)
    runs = CrawlRuns(staging, name, inputs)
    frontier = runs.resume()
    stats: Counter = Counter()

    def handle_page(page_url: str, parsed: tuple[PageImages, list[str]]) -> list[str]:
        images, links = parsed
        stats.update(images.dropped)
        runs.add_page(page_url, images.pairs)
        progress.pairs += len(images.pairs)
        return links

    with CrawlProgress(stats, frontier) as progress:
        final = crawl_web(seeds, crawl_settings(config), handle_page, stats, runs.save, frontier,
                          parse=parse_web_page, progress=progress.update)
    if not stats["pages"] and stats["blocked_address"] >= len(set(seeds)):
        runs.remove()  # nothing to resume: a rerun with --allow-private starts afresh
        raise WitError(f"crawl: every seed ({', '.join(sorted(set(seeds))[:3])}"
                       f"{', ...' if len(set(seeds)) > 3 else ''}) resolves to a private, "
                       "loopback or link-local address the address guard blocks; pass "
                       "--allow-private (or --trusted-origins HOST:PORT) to crawl it")
    runs.save(final)  # a kill during the merge below then resumes straight into the merge
    chunks, pairs = write_crawl_chunks(runs.merged(), staging, name, config.partition_rows)
    markers.write(marker, inputs, chunks=[store.name(c) for c, _ in chunks],
                  chunk_sha256={store.name(c): digest for c, digest in chunks},
                  dropped=dict(stats))
    runs.remove()
    dropped.update(stats)
    log.info("crawl: %s: %d pages, %d image-text pairs", name, stats["pages"], pairs)
    return chunks


def parse_web_page(page_url: str, body: bytes, with_links: bool
                   ) -> tuple[PageImages, list[str]]:
    """A live page's pairs and, unless it is at the crawl's last depth, its links (run in the
    crawler's parse threads)."""
    return parse_page(body, page_url, with_links=with_links)


class CrawlProgress:
    """The live crawl's tqdm bar: pages visited, with the pairs found and the pages that failed."""

    def __init__(self, stats: Counter, frontier: Frontier | None):
        from tqdm import tqdm

        self.stats = stats
        self.pairs = 0  # found in this run
        self.bar = tqdm(desc="crawl: web", unit="page", leave=False,
                        initial=frontier.pages_started if frontier else 0)
        self.last = 0.0

    def update(self) -> None:
        self.bar.update()
        now = time.monotonic()
        if now - self.last >= 0.5:  # the postfix costs more than a page's count
            self.last = now
            self.bar.set_postfix(pairs=self.pairs, errors=self.errors(), refresh=False)

    def errors(self) -> int:
        return sum(self.stats[reason] for reason in WEB_ERRORS)

    def __enter__(self) -> CrawlProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


class CrawlRuns:
    """A live crawl's pairs on disk as it goes: every checkpoint writes the pairs gathered since
    the last one as a sorted run, then the frontier they stop at (`NAME.checkpoint.json`), so a
    killed crawl loses at most the pages since its last checkpoint and memory holds one run."""

    def __init__(self, staging: store.Location, name: str, inputs: dict):
        self.staging, self.name, self.inputs = staging, name, inputs
        self.checkpoint = store.join(staging, f"{name}.checkpoint.json")
        self.runs: list[str] = []
        self.pairs: list[tuple[str, int, str, str]] = []

    def add_page(self, page_url: str, pairs: list) -> None:
        self.pairs.extend((page_url, position, pair.url, pair.text)
                          for position, pair in enumerate(pairs))

    def resume(self) -> Frontier | None:
        """The frontier of this crawl's checkpoint, its runs kept; None (and a fresh start) when
        there is none or it was made from other inputs."""
        # A checkpoint that records no inputs is not trusted: every input counts as changed.
        check = markers.check(self.checkpoint, self.inputs, older_done=False)
        if not check.done:
            if check.changed or check.error:
                log.info("crawl: checkpoint %s discarded: %s", self.checkpoint,
                         f"{', '.join(check.changed)} changed since it was written"
                         if check.changed else f"unreadable ({check.error})")
                self.remove()
            return None
        saved = check.record
        self.runs = list(saved["runs"])
        frontier = Frontier.from_json(saved["frontier"])
        log.info("resuming the crawl of %s at %d pages", self.name, frontier.pages_started)
        return frontier

    def save(self, frontier: Frontier) -> None:
        """Write the pairs since the last checkpoint as a sorted run, then the checkpoint: a kill
        between the two leaves a run that no checkpoint names, overwritten on resume."""
        if self.pairs:
            self.pairs.sort()
            run = store.join(self.staging, f"{self.name}.run-{len(self.runs):05d}.parquet")
            table = pa.table(dict(zip(CRAWL_RUN.names, zip(*self.pairs))), schema=CRAWL_RUN)
            # row groups of one merge batch: parquet decodes a whole row group at once, so the
            # merge would otherwise hold every run whole
            store.write_parquet(run, table, row_group_size=RUN_BATCH_ROWS)
            self.runs.append(store.name(run))
            self.pairs = []
        markers.write(self.checkpoint, self.inputs, runs=self.runs, frontier=frontier.to_json())

    def merged(self) -> Iterator[tuple[str, int, str, str]]:
        """Every pair of every run, in sorted order (a k-way merge, one batch per run)."""
        return heapq.merge(*(run_pairs(store.join(self.staging, run)) for run in self.runs))

    def remove(self) -> None:
        """Delete the checkpoint and every run of this crawl (named by it or not)."""
        store.remove(self.checkpoint)
        for run in store.glob(store.join(self.staging, f"{self.name}.run-*.parquet")):
            store.remove(run)
        self.runs = []


def run_pairs(run: store.Location) -> Iterator[tuple[str, int, str, str]]:
    """The (page_url, position, url, text) pairs of a sorted run, read by batches."""
    for batch in store.parquet_file(run).iter_batches(batch_size=RUN_BATCH_ROWS):
        yield from zip(*(column.to_pylist() for column in batch.columns))


def write_crawl_chunks(pairs: Iterator[tuple[str, int, str, str]], staging: store.Location,
                       name: str, rows: int) -> tuple[list[tuple[store.Location, str]], int]:
    """Sorted pairs as chunks `NAME-MMMMM.parquet` of `rows` (one empty chunk when there are
    none); returns each chunk with its sha256, and the number of pairs."""
    chunks: list[tuple[store.Location, str]] = []
    chunk: list[tuple[str, int, str, str]] = []
    total = 0

    def write() -> None:
        path = store.join(staging, f"{name}-{len(chunks):05d}.parquet")
        store.write_parquet(path, pa.table({"url": [p[2] for p in chunk],
                                             "text": [p[3] for p in chunk],
                                             "page_url": [p[0] for p in chunk]}, schema=STAGED))
        chunks.append((path, store.sha256(path)))

    for pair in pairs:
        chunk.append(pair)
        total += 1
        if len(chunk) == rows:
            write()
            chunk = []
    if chunk or not chunks:
        write()
    return chunks, total


def source_partitions(source: Source, config: CrawlConfig, staging: store.Location, start: int,
                      dropped: Counter, sites: dict[str, str]) -> list[Partition]:
    """The partitions of one source, numbered from `start`."""
    if source.kind == "web" or source.kind in sites:
        seeds = [sites[source.kind]] if source.kind in sites else web_seeds(source.location)
        if source.kind in sites:
            config = config.replace(crawl_delay=0.0)  # a site served for us, trusted by origin
        chunks = stage_web_crawl(seeds, config, staging, f"web-{start:05d}", dropped)
        return [Partition(start + i, "staged", str(path), "web", sha256=digest)
                for i, (path, digest) in enumerate(chunks)]
    if source.kind == "warc":
        locations = expand_warc_locations(source.location, config.warc_prefix,
                                          address_policy(config))
        return [Partition(start + i, "warc", location, "warc")
                for i, location in enumerate(locations)]
    parts = pool_partitions(source.location, address_policy(config), config.partition_rows)
    return [Partition(start + i, "pool", part.path, "pool", part.row_groups, rows=part.rows,
                      share=part.share, more=part.more)
            for i, part in enumerate(parts)]


def raw_pairs(partition: Partition, settings: PartitionSettings, dropped: Counter,
              additional: list[pa.RecordBatch] | None = None) -> Iterator[tuple[str, str, str]]:
    """(image URL, text, page URL) of one partition, before any filter; a pool's additional
    columns go to `additional` (pool.read_pool)."""
    if partition.kind == "warc":
        for page_url, body in read_html_responses(partition.location, dropped, settings.policy):
            dropped["pages"] += 1
            try:
                images = extract_images(body, page_url)  # links are not followed here
            except Exception as error:  # one poison page must not end the WARC, nor the crawl
                reason = page_failure(error)
                dropped[reason] += 1
                log.warning("crawl: %s: %s on '%s' (in '%s'): %s", reason, type(error).__name__,
                            page_url, partition.location, error)
                continue
            dropped.update(images.dropped)
            for pair in images.pairs:
                yield pair.url, pair.text, page_url
    elif partition.kind == "pool":
        part = PoolPartition(partition.location, pool_format(partition.location),
                             partition.row_groups, partition.rows, partition.share,
                             partition.more)
        for url, text in read_pool(part, settings.columns, settings.policy, dropped, additional):
            yield url, text, ""
    else:
        table = store.read_parquet(partition.location)
        yield from zip(*(table.column(name).to_pylist() for name in STAGED.names))


@functools.lru_cache(maxsize=2)
def cached_matcher(queries: str, queries_sha256: str = "") -> QueryMatcher:
    """One matcher per worker process (loading it per partition would dominate small ones); keyed
    by the file's digest too, so a process that outlives one crawl never matches with the queries
    of the one before. A queries file on an object store is copied to a local cache first (once
    per machine): the matcher keeps its automaton cache beside the file it reads."""
    return QueryMatcher.for_queries_file(store.local_copy(queries), sha256=queries_sha256 or None)


def pair_uid(url: str, text: str) -> str:
    return hashlib.sha1(f"{url}\t{text}".encode("utf-8")).hexdigest()


def partition_paths(workdir: str, index: int) -> dict[str, store.Location]:
    data = store.join(workdir, "data")
    name = f"part-{index:05d}"
    return {"candidates": store.join(data, "candidates", f"{name}.parquet"),
            "matched": store.join(data, "matched", ".staging", f"{name}.parquet"),
            "stats": store.join(data, "matched", ".staging", f"{name}.json")}


def file_state(location: str) -> list[int] | None:
    """[size, modification time] of a local file; None for a URL: objects on a store or a web
    server are taken as unchanging (no request per partition on every rerun)."""
    if store.is_url(location):
        return None
    status = os.stat(location)
    return [status.st_size, status.st_mtime_ns]


def partition_inputs(partition: Partition, settings: PartitionSettings) -> dict:
    """What a partition's outputs depend on: where its pairs come from, the queries and the
    filter settings. Its done marker records them; a rerun redoes the partition when they differ."""
    if partition.kind == "staged":  # a chunk of the workdir's own harvest: its content names it
        where = {"chunk": store.name(partition.location), "chunk_sha256": partition.sha256}
    else:
        where = {"location": partition.location, "row_groups": list(partition.row_groups),
                 "file": file_state(partition.location),
                 # recorded only when set, so that pools partitioned before these were resume
                 **({"rows": list(partition.rows)} if partition.rows else {}),
                 **({"share": list(partition.share)} if partition.share else {}),
                 **({"more": [[path, file_state(path)] for path in partition.more]}
                    if partition.more else {})}
    inputs = {"kind": partition.kind, "source": partition.source, **where,
              "queries_sha256": settings.queries_sha256, "limits": asdict(settings.limits),
              "lang": settings.lang, "min_lang_prob": settings.min_lang_prob,
              "lang_detector": settings.lang_detector, "seed": settings.seed,
              "tokenization": TOKENIZATION}  # captions are cut into words to match
    if partition.kind == "pool":
        inputs["columns"] = [settings.columns.url, settings.columns.text]
        if settings.columns.additional:  # recorded only when set: older markers still match
            inputs["additional_columns"] = [[field.name, str(field.type)]
                                            for field in settings.columns.additional]
    return inputs


def process_partition(partition: Partition, settings: PartitionSettings) -> dict:
    """Clean, filter, match and language-detect one partition; write its candidates and matches,
    then its done marker (with the inputs they came from)."""
    keep_freed_memory()  # pages parse ~1.6x faster (wit_builder/crawl/allocator.py)
    paths = partition_paths(settings.workdir, partition.index)
    inputs = partition_inputs(partition, settings)  # before reading: a change meanwhile redoes it
    matcher = cached_matcher(settings.queries, settings.queries_sha256)
    detector = cached_detector(settings.lang_detector, settings.lang, settings.seed,
                               str(store.local_copy(settings.queries)), settings.queries_sha256)
    dropped: Counter = Counter()
    candidates, matched_ids = [], []
    # a pool's additional columns: read by batches beside the pairs, taken by row at the end
    additional = [] if settings.columns.additional else None
    positions = []  # the row each candidate came from (kept only with additional columns)
    for position, (url, text, page_url) in enumerate(raw_pairs(partition, settings, dropped,
                                                               additional)):
        if not url:
            dropped["no_url"] += 1
            continue
        try:
            url = canonical_url(url)
            text = clean_caption(text)
            problem = caption_problem(text, settings.limits)
            if problem:
                dropped[problem] += 1
                continue
            query_ids = matcher.match(text)
            lang, lang_prob = detector.detect(text) if query_ids else (None, None)
        except Exception as error:  # one hostile pair must not end the partition, nor the crawl
            dropped["pair_error"] += 1
            log.warning("crawl: pair_error: %s on image '%s' (page '%s', in '%s'): %s",
                        type(error).__name__, url[:300], page_url[:300], partition.location,
                        error)
            continue
        candidates.append({"uid": pair_uid(url, text), "url": url, "text": text,
                           "page_url": page_url, "source": partition.source, "lang": lang,
                           "lang_prob": lang_prob})
        if additional is not None:
            positions.append(position)
        if not query_ids:
            dropped["no_query"] += 1
        elif lang != settings.lang or lang_prob < settings.min_lang_prob:
            dropped["not_" + settings.lang] += 1
        else:
            matched_ids.append((len(candidates) - 1, query_ids))
    table = pa.Table.from_pylist(candidates, schema=schemas.CANDIDATES)
    rows = [candidates[i] | {"query_ids": ids} for i, ids in matched_ids]
    matched = pa.Table.from_pylist(rows, schema=schemas.MATCHES)
    if additional is not None:
        extra = pa.Table.from_batches(additional, settings.columns.additional).take(positions)
        table = with_columns(table, extra)
        matched = with_columns(matched, extra.take([i for i, _ in matched_ids]))
    store.write_parquet(paths["candidates"], table)
    store.write_parquet(paths["matched"], matched)
    stats = {"source": partition.source, "candidates": len(candidates), "matched": len(rows),
             "dropped": dict(dropped)}
    markers.write(paths["stats"], inputs, **stats)  # last: it marks the partition done
    return {**stats, "inputs": inputs}


def with_columns(table: pa.Table, extra: pa.Table) -> pa.Table:
    """`table` with the columns of `extra` (as many rows) after its own."""
    return pa.Table.from_arrays([*table.columns, *extra.columns],
                                schema=schemas.with_additional(table.schema, extra.schema))


def finished_partitions(partitions: list[Partition], settings: PartitionSettings
                        ) -> dict[int, dict]:
    """{partition index: its stats} of the partitions an earlier run finished on the same inputs;
    says which others it redoes because their inputs changed."""
    decisions = markers.Decisions(log, "crawl: filter + match", "partition",
                                  "data/matched/.staging")
    finished: dict[int, dict] = {}
    for partition in partitions:
        marker = partition_paths(settings.workdir, partition.index)["stats"]
        check = decisions.add(f"{partition.index:05d}",
                              markers.check(marker, functools.partial(
                                  partition_inputs, partition, settings)))
        if check.done:
            finished[partition.index] = check.record
    decisions.report()
    return finished


def query_count(queries: Path) -> int:
    table = pq.read_table(queries, columns=["query_id"])
    return int(pc.max(table.column("query_id")).as_py()) + 1 if table.num_rows else 0


@contextlib.contextmanager
def served_sites(config: CrawlConfig, sources: list[Source]) -> Iterator[dict[str, str]]:
    """The sites of the served sources among `sources` (kind -> URL), up for the whole crawl."""
    with contextlib.ExitStack() as stack:
        yield {source.kind: stack.enter_context(SERVED_SOURCES[source.kind](config))
               for source in sources if source.kind in SERVED_SOURCES}


def harvest(config: CrawlConfig, sources: list[Source], sites: dict[str, str],
            dropped: Counter) -> list[Partition]:
    staging = config.path("data/harvest")
    partitions: list[Partition] = []
    for source in sources:
        partitions += source_partitions(source, config, staging, len(partitions), dropped,
                                        sites)
    return partitions


def min_lang_prob(config: CrawlConfig) -> float:
    """The threshold the user set, else the chosen detector's own."""
    if "min_lang_prob" in getattr(config, "explicit", ()):
        return config.min_lang_prob
    return DEFAULT_MIN_PROB[config.lang_detector]


def partition_settings(config: CrawlConfig, queries: store.Location,
                       queries_sha256: str = "", additional: pa.Schema | None = None
                       ) -> PartitionSettings:
    return PartitionSettings(
        workdir=str(config.workdir), queries=str(queries),
        limits=CaptionLimits(min_chars=config.min_text_chars, max_chars=config.max_text_chars),
        lang=config.lang, min_lang_prob=min_lang_prob(config), lang_detector=config.lang_detector,
        seed=config.seed, columns=PoolColumns(url=config.url_col, text=config.text_col,
                                              additional=additional),
        queries_sha256=queries_sha256, policy=address_policy(config))


def parse_sources(config: CrawlConfig) -> list[Source]:
    sources = [parse_source(text) for text in config.source]
    if not sources:
        raise WitError(f"no --source given ({source_forms()})")
    return sources


def additional_column_names(config: CrawlConfig, sources: list[Source]) -> list[str]:
    """The pool columns --save-additional-columns names (comma lists allowed), refused for a
    source that has no columns and for a name the samples or manifests already use."""
    names = list(dict.fromkeys(name.strip() for value in config.save_additional_columns
                               for name in value.split(",") if name.strip()))
    if not names:
        return []
    for source in sources:
        if source.kind != "pool":
            raise WitError(f"--save-additional-columns: source '{source.kind}:"
                           f"{source.location}' has no columns (only pool: sources have); "
                           "drop the option or that source")
    taken = [name for name in names if name in schemas.RESERVED_COLUMNS]
    if taken:
        raise WitError(f"--save-additional-columns: {taken[0]!r} is a key witbuilder (or "
                       "img2dataset) writes itself; rename that column of the pool")
    return names


def additional_columns(config: CrawlConfig, sources: list[Source]) -> pa.Schema | None:
    """The pool columns kept beside the pairs, with the types of the first pool's first file
    (pool.additional_schema: every file checked for them, before any work); None when none."""
    names = additional_column_names(config, sources)
    if not names:
        return None
    columns = PoolColumns(url=config.url_col, text=config.text_col)
    found = [additional_schema(source.location, columns, names, address_policy(config))
             for source in sources]  # every pool checked; a later one's values take these types
    return found[0]


@stage_engine  # an entry of its own too (tests call it); inside `run`, run's engine
def select(config: CrawlConfig, sites: dict[str, str] | None = None) -> dict:
    """Everything up to the selection: manifests/selection.parquet and balance.parquet.
    `sites` gives the URL each served source is served at."""
    started = time.monotonic()
    keep_freed_memory()  # this process parses the pages of a live web crawl
    sources = parse_sources(config)
    additional = additional_columns(config, sources)
    store.check_reachable(config.workdir)
    queries = config.path(config.queries)
    if not store.exists(queries):
        raise WitError(f"queries file '{queries}' does not exist; run `wit queries` first")
    local_queries = store.local_copy(queries)
    warn_if_other_rules(queries)  # a queries file built under other tokenisation rules
    dropped: Counter = Counter()
    partitions = harvest(config, sources, sites or {}, dropped)
    queries_sha256 = atomic.sha256_file(local_queries)
    settings = partition_settings(config, queries, queries_sha256, additional)
    finished = finished_partitions(partitions, settings)
    todo = [partition for partition in partitions if partition.index not in finished]
    results = list(finished.values())
    if todo:
        cached_matcher(str(queries), queries_sha256)  # the automaton cache, before the workers
        work = functools.partial(process_partition, settings=settings)
        results += map_partitions(work, todo, desc="crawl: filter + match")
    per_source: dict[str, Counter] = {}
    for result in results:
        dropped.update(result["dropped"])
        counts = per_source.setdefault(result["source"], Counter())
        counts.update(candidates=result["candidates"], matched=result["matched"])
    staged = [partition_paths(config.workdir, p.index)["matched"] for p in partitions]
    matched = dedupe_matched(staged, config.path("data/matched"), dropped,
                             memory_budget_mb=config.memory_budget_mb)
    manifests = config.path("manifests")
    summary = balance_by_query(
        [str(p) for p in matched], query_count(local_queries), manifests,
        config.path("data/matched/.balance"),
        BalanceSettings(per_query=config.per_query, mode=config.balance, seed=config.seed))
    counts = {name: dropped.pop(name) for name in COUNTS if name in dropped}
    stats = {"sources": config.source, "counts": counts,
             "dropped": dict(sorted(dropped.items())),
             "per_source": {k: dict(v) for k, v in sorted(per_source.items())},
             "balance": summary, "per_query": config.per_query, "balance_mode": config.balance,
             "queries_sha256": queries_sha256,
             **({"additional_columns": additional.names} if additional else {}),
             **safety_stats_entry(config),   # --blur-faces, --nsfw-threshold
             "language": detector_settings(config.lang_detector, config.lang,
                                           settings.min_lang_prob),
             "seconds": round(time.monotonic() - started, 2),
             "cpu_seconds": cpu.stage_seconds()}   # the whole process tree's (core/cpu.py)
    store.write_json(store.join(manifests, "crawl_stats.json"), stats)
    return stats


def trusting_site(config: CrawlConfig, site_url: str) -> CrawlConfig:
    """The settings with the embedded site's origin (scheme, host and port) trusted by the
    address guard of the crawler and the downloader: that one server, nothing else on the
    machine or its network."""
    parts = urlsplit(site_url)
    origin = origin_netloc(parts.hostname, parts.port, parts.scheme)
    return config.replace(trusted_origins=[*config.trusted_origins, origin])


def check_settings(config: CrawlConfig) -> None:
    """Refuse what cannot run before any work: the guard's settings, img2dataset on Ray; say once
    when the guard is off."""
    if config.download and config.downloader == "img2dataset":
        check_engine(config)
    load_blocklist(config.block_hashes, config.block_urls,  # a bad line: one error, now;
                   config.block_phash_distance)  # a pHash near a flat picture's: a warning
    additional_column_names(config, parse_sources(config))  # (the pool files: in select)
    if config.download:
        safety_settings(config)   # a face detector or NSFW scorer not installed: one error, now
    try:
        address_policy(config)
    except ValueError as error:
        raise WitError(f"--trusted-origins: {error}") from None
    if config.allow_private:
        log.warning("crawl: --allow-private: the address guard is off for this run; every "
                    "request may reach private, loopback, link-local and cloud-metadata "
                    "addresses (--trusted-origins HOST:PORT opens one server instead)")


def run(config: CrawlConfig) -> int:
    """`wit crawl`: settings checked before anything starts (a Ray session included), then the
    crawl on the engine they choose."""
    check_settings(config)
    return crawl(config)


@stage_engine
def crawl(config: CrawlConfig) -> int:
    # The served sites stay up until the images are downloaded too.
    with served_sites(config, parse_sources(config)) as sites:
        for site_url in sites.values():
            config = trusting_site(config, site_url)
        stats = select(config, sites)
        balance = stats["balance"]
        log.info("crawl: %d matched pairs, %d selected (%d queries over the cap of %d)",
                 balance["matched_pairs"], balance["selected_pairs"],
                 balance["queries_over_cap"], config.per_query)
        if config.download:
            download = download_selection(config, config.path("manifests/selection.parquet"))
            record_blur_counts(config.path("manifests/crawl_stats.json"), download)
            log.info("crawl: %d of %d selected images stored", download["stored"],
                     download["attempted"])
            print(status_table(download))
    return 0
