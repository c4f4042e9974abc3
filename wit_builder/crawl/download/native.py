"""The native downloader: `download_with_native` runs `download_shard` on the stage's engine, one
download shard (a slice of the selection, plan.py) per partition. Inside it, one asyncio loop
keeps `concurrency` requests in flight while decode threads decode and resize, so the network
never waits on the CPU. Every row's `writer.Outcome` becomes its sample and manifest row through
`writer.raw_sample`; samples are written in selection order (not arrival order), so a shard's
bytes do not depend on the network's timing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import time
from collections import Counter

import cv2
import pyarrow as pa

from wit_builder.crawl.allocator import keep_freed_memory
from wit_builder.crawl.blocklists import Blocklist
from wit_builder.crawl.download import writer
from wit_builder.crawl.download.fetch import Fetched, fetch, open_session, robots_cache
from wit_builder.crawl.download.images import ImageRejected, ImageSettings, process_image, sha256_hex
from wit_builder.crawl.download.plan import (DownloadSettings, DownloadShard, check_done,
                                             log_done_check, read_rows, shard_inputs,
                                             warn_unrecorded)
from wit_builder.crawl.download.stats import progress_postfix, summary
from wit_builder.crawl.download.writer import Outcome, RawSample, raw_sample

try:  # optional: libuv's event loop costs ~0.14 CPU ms an image less than asyncio's own
    import uvloop
except ImportError:
    uvloop = None

log = logging.getLogger(__name__)

QUEUE_HIGH, QUEUE_LOW = 32, 16   # fetched images queued for decoding (see DecodeQueue)


def fetch_failed(fetched: Fetched) -> Outcome:
    return Outcome(fetched.status, fetched.http_status, fetched.error, len(fetched.body),
                   seconds=fetched.seconds)


def stored_outcome(fetched: Fetched, image_settings: ImageSettings,
                   blocklist: Blocklist = Blocklist()) -> Outcome:
    """Decode, check and re-encode fetched bytes (runs in a decode thread); a picture near a
    listed pHash is dropped once decoded, with no hash of it kept."""
    started = time.monotonic()
    digest = sha256_hex(fetched.body)
    try:
        image = process_image(fetched.body, image_settings,
                              blocklist.blocks_picture if blocklist.phashes.size else None)
    except Exception as error:  # a hostile file must cost one sample, never the shard
        status = error.status if isinstance(error, ImageRejected) else "decode_error"
        if status == "blocked_hash":
            return fetch_failed(Fetched(status, fetched.http_status, str(error)))
        return Outcome(status, fetched.http_status, str(error)[:300] or type(error).__name__,
                       len(fetched.body), digest, fetched.seconds + time.monotonic() - started,
                       nsfw_score=getattr(error, "nsfw_score", None))
    return Outcome("ok", fetched.http_status, None, len(fetched.body), digest,
                   fetched.seconds + time.monotonic() - started, image, image.nsfw_score)


class InOrderWriter:
    """Takes raw samples from any thread, in any order, and writes them to the tar in row order;
    the manifest rows come out in the same order."""

    def __init__(self, tar):
        self.tar = tar
        self.lock = threading.Lock()
        self.waiting: dict[int, RawSample] = {}
        self.manifest: list[dict] = []

    def add(self, index: int, sample: RawSample) -> None:
        with self.lock:
            self.waiting[index] = sample
            while len(self.manifest) in self.waiting:
                ready = self.waiting.pop(len(self.manifest))
                if ready.members is not None:
                    self.tar.write_members(ready.members)
                self.manifest.append(ready.manifest_row)


class DecodeQueue:
    """Fetched images waiting for the decode threads.

    The event loop hands images over without waiting for results (no future per image): a worker
    coroutine only pauses while `QUEUE_HIGH` images are queued, and the threads wake the loop when
    the queue has drained to `QUEUE_LOW`. That is one wake-up of the loop per 16 images instead of
    one per image, 0.17 CPU ms an image less. Images in memory stay bounded: the ones in flight,
    plus at most `QUEUE_HIGH` queued."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handle, threads: int):
        self.loop, self.handle = loop, handle
        self.items: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.queued = 0
        self.room = asyncio.Event()
        self.room.set()
        self.error: BaseException | None = None
        self.threads = [threading.Thread(target=self.decode_until_closed, name=f"decode-{number}",
                                         daemon=True) for number in range(max(1, threads))]
        for thread in self.threads:
            thread.start()

    async def put(self, *item) -> None:
        while not self.room.is_set():
            await self.room.wait()
        self.raise_failure()
        with self.lock:
            self.queued += 1
            if self.queued >= QUEUE_HIGH:
                self.room.clear()
        self.items.put(item)

    def decode_until_closed(self) -> None:
        while (item := self.items.get()) is not None:
            if self.error is None:
                try:
                    self.handle(*item)
                except BaseException as error:  # e.g. the disk is full: fail the shard, not hang
                    self.error = error
            with self.lock:
                self.queued -= 1
                reopen = self.queued == QUEUE_LOW or self.error is not None
            if reopen:
                self.loop.call_soon_threadsafe(self.reopen)

    def reopen(self) -> None:
        # Runs on the loop some time after a thread asked: puts may have filled the queue since.
        if self.queued < QUEUE_HIGH or self.error is not None:
            self.room.set()

    def raise_failure(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Wait until every queued image is handled (blocking), then stop the threads."""
        for _ in self.threads:
            self.items.put(None)
        for thread in self.threads:
            thread.join()
        self.raise_failure()


async def download_rows(rows: list[dict], shard: int, settings: DownloadSettings,
                        tar) -> list[dict]:
    """Fetch and process every row, writing stored samples to `tar` in row order; the manifest
    rows come back in the same order."""
    pending = iter(enumerate(rows))
    written = InOrderWriter(tar)
    additional = settings.additional.names

    def decode(index: int, row: dict, fetched: Fetched) -> None:
        # The sample's tar members are encoded here too, off the event loop.
        outcome = stored_outcome(fetched, settings.image, settings.fetch.blocklist)
        written.add(index, raw_sample(row, shard, index, outcome, additional))

    async def worker(session, robots, decoding: DecodeQueue) -> None:
        for index, row in pending:
            try:
                fetched = await fetch(session, row["url"], settings.fetch, robots)
            except Exception as error:  # a bug on one URL must not lose the shard
                log.exception("download: unexpected error on %s", row["url"])
                fetched = Fetched("connection_error", None, f"{type(error).__name__}: {error}")
            if fetched.status == "ok" and settings.fetch.blocklist.blocks_body(fetched.body):
                # Dropped here, in memory: never decoded, written or hashed into the manifest.
                fetched = Fetched("blocked_hash", 200, "on a --block-hashes list")
            if fetched.status == "ok":
                await decoding.put(index, row, fetched)
            else:
                written.add(index, raw_sample(row, shard, index, fetch_failed(fetched),
                                              additional))

    decoding = DecodeQueue(asyncio.get_running_loop(), decode, settings.decode_threads)
    try:
        async with open_session(settings.fetch) as session:
            robots = robots_cache(session, settings.fetch)  # each host's robots.txt read once
            count = max(1, min(settings.fetch.concurrency, len(rows)))
            await asyncio.gather(*(worker(session, robots, decoding) for _ in range(count)))
    finally:
        decoding.close()
    return written.manifest


def status_counts(manifest: list[dict]) -> Counter:
    return Counter(row["status"] for row in manifest)


def download_shard(shard: DownloadShard, settings: DownloadSettings) -> dict:
    """Download one shard's tar and return its status counts, manifest rows and inputs, for the
    caller to write with `finish_shard`. Skipped when its manifest exists and records the same
    inputs; `check` says which, or what changed.

    The manifest is written by the process that collects the results: a list → Arrow conversion
    imports pandas (~0.35 CPU s), which the workers' fork server then never needs to load."""
    rows = read_rows(shard, settings.additional.names)
    inputs = shard_inputs(rows, settings)
    check = check_done(shard, inputs, settings.workdir)
    if check.statuses is not None:
        return {"shard": shard.index, "statuses": check.statuses, "skipped": True,
                "seconds": 0.0, "manifest": None, "check": check}
    # One worker process per core already: OpenCV's own threads would only contend.
    cv2.setNumThreads(1)
    keep_freed_memory()  # each decoded image reuses freed memory: ~70 page faults less
    started = time.monotonic()
    with writer.shard_tar(writer.tar_path(settings.workdir, shard.index)) as tar:
        run_loop = uvloop.run if uvloop is not None else asyncio.run
        manifest = run_loop(download_rows(rows, shard.index, settings, tar))
    return {"shard": shard.index, "statuses": dict(status_counts(manifest)), "skipped": False,
            "seconds": time.monotonic() - started, "manifest": manifest, "inputs": inputs,
            "check": check}


def finish_shard(result: dict, workdir: str, additional: pa.Schema | None = None) -> None:
    """Write the manifest of a shard `download_shard` downloaded, with the inputs it came from
    (and the pool's `additional` columns): last, it marks the shard done."""
    if result["manifest"] is not None:
        writer.write_manifest(writer.manifest_path(workdir, result["shard"]), result["manifest"],
                              result.get("inputs"), additional)


def download_with_native(shards: list[DownloadShard], settings: DownloadSettings) -> dict:
    """Download every shard not done yet for its inputs, a shard per partition on the current
    engine, writing each manifest here as its result comes in; return `stats.summary`."""
    # This process writes the manifests, and pyarrow's first list → Arrow conversion imports
    # pandas (~0.35 CPU s): load it now, not between two shards (workers never need it).
    import pandas  # noqa: F401
    from tqdm import tqdm

    from wit_builder.core.engine import run_partitions

    started = time.monotonic()
    work = functools.partial(download_shard, settings=settings)
    statuses: Counter = Counter()
    skipped = unrecorded = 0
    bar = tqdm(total=len(shards), desc="crawl: download", unit="shard")
    try:
        for result in run_partitions(work, shards, progress=False):
            finish_shard(result, settings.workdir, settings.additional)
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
