"""The native downloader against a hostile web on 127.0.0.1, with the address guard on (only the
test server's own origin is trusted): every failure gets its own status, only good images are
stored, and nothing hangs."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pyarrow.parquet as pq
import webdataset as wds
from PIL import Image

from support.hostile_web import HostileWeb, Server, write_selection
from wit_builder.cli import load_config
from wit_builder.crawl.download import download_selection, status_table


def test_hostile_web_gets_one_status_per_failure_and_stores_only_good_images(tmp_path):
    hostile = HostileWeb()
    with Server(hostile) as server:
        hostile.port = server.port
        paths = list(HostileWeb.EXPECTED)
        selection = write_selection(tmp_path / "manifests" / "selection.parquet",
                                    [server.url + path for path in paths])
        config = load_config("crawl", None, {
            "workdir": str(tmp_path), "workers": 1, "timeout": 1.5, "retries": 1,
            "max_bytes": 2_000_000, "image_size": 64, "min_size": 8,
            "trusted_origins": [server.origin], "user_agent": "witbuilder/0.1 (test)"})
        started = time.monotonic()
        stats = download_selection(config, selection)
        elapsed = time.monotonic() - started
    manifest = pq.read_table(tmp_path / "manifests" / "crawl" / "00000.parquet").to_pylist()
    got = {row["url"].removeprefix(server.url): row["status"] for row in manifest}
    assert got == HostileWeb.EXPECTED
    assert elapsed < 20, "every hostile endpoint must end within its timeouts"
    assert hostile.requests["/flaky.jpg"] == 2, "a 500 is retried once, then succeeds"
    assert hostile.requests["/missing.jpg"] == 1, "a 404 is not retried"
    assert "169.254.169.254" not in str(hostile.requests)
    assert [row["http_status"] for row in manifest if row["status"] == "http_error"] == [404]
    stored = [row for row in manifest if row["status"] == "ok"]
    assert stats["stored"] == len(stored) and stats["attempted"] == len(paths)
    assert "blocked_address" in status_table(stats)

    samples = list(wds.WebDataset(str(tmp_path / "data" / "raw" / "00000.tar"), shardshuffle=False))
    assert [s["__key__"] for s in samples] == [row["key"] for row in stored]
    by_url = {}
    for sample in samples:
        meta = json.loads(sample["json"])
        image = Image.open(io.BytesIO(sample["jpg"]))
        assert image.format == "JPEG" and image.mode == "RGB"
        assert image.size == (meta["width"], meta["height"]) and max(image.size) <= 64
        by_url[meta["url"].removeprefix(server.url)] = np.asarray(image)
    assert sorted(by_url) == sorted(p for p, s in HostileWeb.EXPECTED.items() if s == "ok")
    alpha = by_url["/alpha.png"]
    assert alpha[:, :20].mean(axis=(0, 1))[0] > 200 and alpha[:, -20:].min() > 230, \
        "alpha composited on white"
    assert 110 < by_url["/sixteen-bit.png"].mean() < 145, "16-bit scaled to 8 bits, not clipped"
