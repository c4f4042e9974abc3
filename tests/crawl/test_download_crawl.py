"""`wit crawl` with the download on: a pool of image URLs served on 127.0.0.1 becomes raw shards,
and the final table of statuses is printed; bad download settings are clear errors."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from aiohttp import web

from support.hostile_web import Server, image_bytes
from wit_builder.cli import load_config
from wit_builder.crawl.run import run
from wit_builder.crawl.download import download_selection
from wit_builder.core.options import WitError

CAPTIONS = ["a red triangle drawn on a plain white background",
            "two large blue circles on a dotted background",
            "a small red star in the middle of the night sky"]


async def three_images(request: web.Request) -> web.StreamResponse:
    if request.path == "/robots.txt":  # none: every image allowed
        raise web.HTTPNotFound()
    number = int(request.path.rsplit("/", 1)[-1].split(".")[0])
    if number == 2:
        raise web.HTTPNotFound()
    return web.Response(body=image_bytes(120, 90, seed=number), content_type="image/jpeg")


def test_crawl_downloads_the_selection_and_prints_the_status_table(tmp_path, capsys):
    queries = ["blue", "circle", "red", "star", "triangle"]
    (tmp_path / "queries").mkdir()
    pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                             "query": queries}), tmp_path / "queries" / "queries.parquet")
    with Server(three_images) as server:
        pq.write_table(pa.table({"url": [f"{server.url}/img/{i}.jpg" for i in range(3)],
                                 "caption": CAPTIONS}), tmp_path / "pool.parquet")
        config = load_config("crawl", None, {
            "workdir": str(tmp_path), "source": [f"pool:{tmp_path / 'pool.parquet'}"],
            "workers": 1, "allow_private": True, "image_size": 64, "retries": 0})
        assert run(config) == 0
    table = capsys.readouterr().out
    assert "ok" in table and "http_error" in table
    samples = list(wds.WebDataset(str(tmp_path / "data" / "raw" / "00000.tar"),
                                  shardshuffle=False))
    assert sorted(s["txt"].decode() for s in samples) == sorted(CAPTIONS[:2])
    statuses = pq.read_table(tmp_path / "manifests" / "crawl" / "00000.parquet")
    assert sorted(statuses.column("status").to_pylist()) == ["http_error", "ok", "ok"]


@pytest.mark.parametrize("overrides, message", [
    ({"samples_per_shard": 0},
     r"--samples-per-shard \(\[crawl\] samples_per_shard\) must be at least 1"),
    ({"concurrency": 0}, r"--concurrency \(\[crawl\] concurrency\) must be at least 1"),
])
def test_bad_download_settings_are_clear_errors(tmp_path, overrides, message):
    with pytest.raises(WitError, match=message):  # when the settings are read, before any work
        load_config("crawl", None, {"workdir": str(tmp_path), **overrides})


def test_missing_selection_is_a_clear_error(tmp_path):
    config = load_config("crawl", None, {"workdir": str(tmp_path)})
    with pytest.raises(WitError, match="selection .* does not exist"):
        download_selection(config, tmp_path / "manifests" / "selection.parquet")
