"""Both downloaders write the same contract: keys, members and `.json` fields read back with
webdataset, manifests with our status names read back with pyarrow."""

from __future__ import annotations

import io
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from aiohttp import web
from PIL import Image

from support.hostile_web import Server, image_bytes, write_selection
from wit_builder.cli import load_config
from wit_builder.core.options import WitError
from wit_builder.crawl.download import download_selection
from wit_builder.crawl.download.img2dataset_backend import convert_shard
from wit_builder.crawl.download.plan import DownloadShard

BODIES = {f"/img/{i}.jpg": image_bytes(w, h, seed=i)
          for i, (w, h) in enumerate([(300, 200), (50, 40), (120, 260), (64, 64), (400, 300)])}
EXPECTED = ["ok", "ok", "ok", "ok", "ok", "http_error", "opted_out", "blocked_address",
            "too_small"]


async def small_site(request: web.Request) -> web.StreamResponse:
    if request.path in BODIES:
        return web.Response(body=BODIES[request.path], content_type="image/jpeg")
    if request.path == "/noai.jpg":
        return web.Response(body=BODIES["/img/0.jpg"], content_type="image/jpeg",
                            headers={"X-Robots-Tag": "noindex, noai"})
    if request.path == "/tiny.jpg":
        return web.Response(body=image_bytes(10, 10), content_type="image/jpeg")
    raise web.HTTPNotFound()


def run_backend(tmp_path, downloader: str) -> tuple[list[dict], list[dict]]:
    with Server(small_site) as server:
        urls = [server.url + path for path in BODIES] + [
            server.url + "/missing.jpg", server.url + "/noai.jpg", "http://10.0.0.1/a.jpg",
            server.url + "/tiny.jpg"]
        workdir = tmp_path / downloader
        selection = write_selection(workdir / "manifests" / "selection.parquet", urls)
        config = load_config("crawl", None, {
            "workdir": str(workdir), "downloader": downloader, "workers": 1,
            "samples_per_shard": 4, "concurrency": 4, "image_size": 96, "min_size": 20,
            "timeout": 5.0, "retries": 0, "trusted_origins": [server.origin]})
        stats = download_selection(config, selection)
    assert stats["attempted"] == len(urls) and stats["shards"] == 3
    manifests = [row for path in sorted((workdir / "manifests" / "crawl").glob("*.parquet"))
                 for row in pq.read_table(path).to_pylist()]
    samples = list(wds.WebDataset(sorted(str(p) for p in (workdir / "data" / "raw").glob("*.tar")),
                                  shardshuffle=False))
    return manifests, samples


def check_contract(manifests: list[dict], samples: list[dict]) -> None:
    assert [row["status"] for row in manifests] == EXPECTED
    assert [row["key"] for row in manifests if row["status"] == "ok"] == \
        ["0000000000", "0000000001", "0000000002", "0000000003", "0000100000"]
    assert [s["__key__"] for s in samples] == [row["key"] for row in manifests if row["key"]]
    assert all(row["faces"] is None for row in manifests)   # --blur-faces off: null
    for sample, row in zip(samples, manifests):
        meta = json.loads(sample["json"])
        assert set(meta) == {"uid", "url", "page_url", "query_ids", "width", "height",
                             "original_width", "original_height", "sha256"}
        assert meta["uid"] == row["uid"] and meta["sha256"] == row["sha256"]
        image = Image.open(io.BytesIO(sample["jpg"]))
        assert image.size == (meta["width"], meta["height"])
        assert max(image.size) == min(96, max(meta["original_width"], meta["original_height"]))
        assert sample["txt"].decode().startswith("a picture number")


def test_native_backend_writes_the_contract(tmp_path):
    check_contract(*run_backend(tmp_path, "native"))


def test_img2dataset_backend_is_converted_to_the_same_contract(tmp_path):
    manifests, samples = run_backend(tmp_path, "img2dataset")
    check_contract(manifests, samples)
    assert [row["http_status"] for row in manifests if row["status"] == "http_error"] == [404]
    assert not (tmp_path / "img2dataset" / "data" / ".img2dataset").exists()


def test_img2dataset_tar_cut_short_keeps_the_whole_samples_before_and_counts_the_rest(tmp_path):
    selection = write_selection(tmp_path / "selection.parquet",
                                [f"http://example.com/{i}.jpg" for i in range(3)])
    uids = pq.read_table(selection)["uid"].to_pylist()
    output = tmp_path / "output"
    output.mkdir()
    theirs = [{"uid": uid, "key": f"{i:09d}", "status": "success", "error_message": None,
               "width": 8, "height": 8, "original_width": 8, "original_height": 8,
               "sha256": f"{i:064x}"} for i, uid in enumerate(uids)]
    pq.write_table(pa.Table.from_pylist(theirs), output / "00000.parquet")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for row in theirs:
            data = row["key"].encode() * 200  # their image, as far as the conversion cares
            info = tarfile.TarInfo(f"{row['key']}.jpg")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (output / "00000.tar").write_bytes(archive.getvalue()[:2 * 2560 + 1000])  # into the third
    shard = DownloadShard(0, str(selection), 0, 3)
    counts = convert_shard(shard, output, str(tmp_path / "work"), blocked=set())
    # The sample being read when the tar broke off may have lost members: it goes too.
    assert counts == {"ok": 1, "connection_error": 2}
    manifest = pq.read_table(tmp_path / "work" / "manifests" / "crawl" / "00000.parquet")
    assert all("truncated" in error for error in manifest["error"].to_pylist()[1:])
    samples = list(wds.WebDataset(str(tmp_path / "work" / "data" / "raw" / "00000.tar"),
                                  shardshuffle=False))
    assert [json.loads(s["json"])["uid"] for s in samples] == uids[:1]
    assert samples[0]["jpg"] == b"000000000" * 200


def test_img2dataset_on_ray_is_refused_before_any_work(tmp_path, monkeypatch):
    selection = write_selection(tmp_path / "manifests" / "selection.parquet",
                                ["http://example.com/a.jpg"])
    stale = tmp_path / "data" / "raw" / "00001.tar"  # past the selection: removed by a download
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")
    monkeypatch.setattr("wit_builder.core.engine.ray_session",
                        lambda *args: pytest.fail("no Ray session for a refused download"))
    config = load_config("crawl", None, {"workdir": str(tmp_path), "downloader": "img2dataset",
                                         "engine": "ray"})
    with pytest.raises(WitError) as refused:
        download_selection(config, selection)
    assert str(refused.value) == ("--downloader img2dataset runs on this machine only: use "
                                  "--engine local, or --downloader native on Ray")
    assert stale.exists()
