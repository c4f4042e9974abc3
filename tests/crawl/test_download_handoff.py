"""The hand-off between the event loop and the decode threads: fetched images wait in a bounded
queue (the loop pauses, it does not pile bodies up), samples are written in row order whatever the
order in which decodes finish, and a failure in a decode thread fails the shard instead of hanging
it."""

from __future__ import annotations

import asyncio
import random
import threading
import time

import pytest

from support.hostile_web import Server, StaticImages, image_bytes
from wit_builder.crawl.download import native, plan
from wit_builder.crawl.download.fetch import FetchSettings
from wit_builder.crawl.download.images import ImageSettings

IMAGES = 150


def download_settings(concurrency: int) -> plan.DownloadSettings:
    return plan.DownloadSettings(
        workdir="unused", decode_threads=2,
        fetch=FetchSettings(concurrency=concurrency, per_host=concurrency, retries=0,
                            timeout=10.0, allow_private=True),
        image=ImageSettings(image_size=32, min_size=8))


def rows_for(server: Server, count: int) -> list[dict]:
    return [{"uid": f"{i:040x}", "url": f"{server.url}/img/{i}.jpg", "text": f"picture {i}",
             "page_url": "", "query_ids": [i]} for i in range(count)]


class RecordingTar:
    """Stands in for the shard's tar: records the sample keys in the order they were written."""

    def __init__(self, fail_at: int | None = None):
        self.keys: list[str] = []
        self.fail_at = fail_at

    def write_members(self, members: bytes) -> None:
        if len(self.keys) == self.fail_at:
            raise OSError(28, "No space left on device")
        self.keys.append(members[:100].split(b"\0", 1)[0].decode().split(".")[0])


def test_queue_stays_bounded_and_samples_are_written_in_row_order(monkeypatch):
    queued_at_most = 0
    lock = threading.Lock()
    original_put = native.DecodeQueue.put
    original_process = native.process_image
    rng = random.Random(0)

    async def counting_put(self, *item):
        nonlocal queued_at_most
        await original_put(self, *item)
        with lock:
            queued_at_most = max(queued_at_most, self.queued)

    def slow_process(body, settings, blocked=None):  # decodes finish out of order, slower
        time.sleep(rng.uniform(0.0005, 0.004))          # than the network
        return original_process(body, settings, blocked)

    monkeypatch.setattr(native.DecodeQueue, "put", counting_put)
    monkeypatch.setattr(native, "process_image", slow_process)
    bodies = [image_bytes(64 + i, 48, seed=i) for i in range(5)]
    with Server(StaticImages(bodies)) as server:
        rows = rows_for(server, IMAGES)
        tar = RecordingTar()
        manifest = asyncio.run(native.download_rows(rows, 3, download_settings(64), tar))
    assert [row["uid"] for row in manifest] == [row["uid"] for row in rows]
    assert [row["status"] for row in manifest] == ["ok"] * IMAGES
    assert tar.keys == [f"00003{i:05d}" for i in range(IMAGES)]
    # The queue filled up (the loop had to pause) and never went past its bound.
    assert queued_at_most == native.QUEUE_HIGH


def test_a_failing_write_fails_the_shard_instead_of_hanging():
    with Server(StaticImages([image_bytes(64, 48)])) as server:
        tar = RecordingTar(fail_at=5)
        started = time.monotonic()
        with pytest.raises(OSError, match="No space left"):
            asyncio.run(native.download_rows(rows_for(server, IMAGES), 0, download_settings(16),
                                             tar))
    assert tar.keys == [f"00000{i:05d}" for i in range(5)]
    assert time.monotonic() - started < 30
