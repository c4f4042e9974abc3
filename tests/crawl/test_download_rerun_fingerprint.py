"""A rerun of the download reuses a raw shard only when its manifest records the same rows of the
selection and the same image settings: a re-balanced selection re-downloads the shards whose rows
changed (and removes the shards past its end), other image settings re-download, and manifests
written before manifests recorded their inputs still count as done."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from support.hostile_web import Server, StaticImages, image_bytes, write_selection
from wit_builder.cli import load_config
from wit_builder.crawl.download import download_selection

PER_SHARD = 20


def download(workdir: Path, server: Server, urls: list[str], **settings) -> dict:
    selection = write_selection(workdir / "manifests" / "selection.parquet", urls)
    values = {"workdir": str(workdir), "workers": 1, "samples_per_shard": PER_SHARD,
              "concurrency": 8, "image_size": 48, "min_size": 8, "timeout": 5.0,
              "trusted_origins": [server.origin], **settings}
    return download_selection(load_config("crawl", None, values), selection)


def raw_files(workdir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted((workdir / "data" / "raw").glob("*"))}


def manifests(workdir: Path) -> dict[str, list[dict]]:
    return {path.name: pq.read_table(path).drop_columns(["seconds"]).to_pylist()
            for path in sorted((workdir / "manifests" / "crawl").glob("*.parquet"))}


def tar_times(workdir: Path) -> dict[str, int]:
    return {path.name: path.stat().st_mtime_ns for path in (workdir / "data" / "raw").glob("*")}


def images(count: int) -> StaticImages:
    return StaticImages([image_bytes(120 + 10 * i, 90, seed=i) for i in range(count)])


def test_download_rerun_after_rebalance_redownloads_changed_shards(tmp_path, caplog):
    served = images(7)
    with Server(served) as server:
        def url(number: int) -> str:
            return f"{server.url}/img/{number}.jpg"

        work = tmp_path / "work"
        download(work, server, [url(i) for i in range(60)])
        kept = tar_times(work)["00000.tar"]
        rebalanced = [url(i) for i in range(20)] + [url(i) for i in range(100, 120)] + \
                     [url(i) for i in range(40, 45)]
        served.requests.clear()
        with caplog.at_level(logging.INFO, logger="wit_builder.crawl.download"):
            download(work, server, rebalanced)
        refetched = set(served.requests)
        download(tmp_path / "fresh", server, rebalanced)
    assert refetched == set(range(100, 120)) | set(range(40, 45))
    assert tar_times(work)["00000.tar"] == kept
    assert raw_files(work) == raw_files(tmp_path / "fresh")
    assert manifests(work) == manifests(tmp_path / "fresh")
    assert "shard 00001 downloaded again: its selection_sha256 changed" in caplog.text
    assert "shard 00002 downloaded again: its selection_rows and selection_sha256 changed" \
        in caplog.text
    texts = [sample["txt"].decode() for sample in
             wds.WebDataset(str(work / "data" / "raw" / "00001.tar"), shardshuffle=False)]
    assert texts == [f"a picture number {i}" for i in range(20, 40)]


def test_download_rerun_of_a_smaller_selection_removes_the_shards_past_its_end(tmp_path, caplog):
    with Server(images(3)) as server:
        urls = [f"{server.url}/img/{i}.jpg" for i in range(50)]
        download(tmp_path, server, urls)
        assert sorted(raw_files(tmp_path)) == ["00000.tar", "00001.tar", "00002.tar"]
        with caplog.at_level(logging.INFO, logger="wit_builder.crawl.download"):
            stats = download(tmp_path, server, urls[:25])
    assert sorted(raw_files(tmp_path)) == ["00000.tar", "00001.tar"]
    assert sorted(manifests(tmp_path)) == ["00000.parquet", "00001.parquet"]
    assert stats["attempted"] == 25
    assert "removed raw shard(s) 00002" in caplog.text


@pytest.mark.parametrize("downloader", ["native", "img2dataset"])
def test_download_rerun_with_other_image_size_redownloads(tmp_path, caplog, downloader):
    served = images(4)
    with Server(served) as server:
        urls = [f"{server.url}/img/{i}.jpg" for i in range(8)]
        download(tmp_path, server, urls, downloader=downloader)
        served.requests.clear()
        with caplog.at_level(logging.INFO, logger="wit_builder.crawl.download"):
            download(tmp_path, server, urls, image_size=24, downloader=downloader)
            assert sum(served.requests.values()) == 8
            served.requests.clear()
            download(tmp_path, server, urls, image_size=24, downloader=downloader)
            assert not served.requests  # the same inputs again: done
    sides = [max(Image.open(io.BytesIO(sample["jpg"])).size) for sample in
             wds.WebDataset(str(tmp_path / "data" / "raw" / "00000.tar"), shardshuffle=False)]
    assert len(sides) == 8 and max(sides) == 24
    assert "shard 00000 downloaded again: its image_settings changed" in caplog.text


def test_manifests_without_recorded_inputs_still_count_as_done(tmp_path, caplog):
    served = images(4)
    with Server(served) as server:
        urls = [f"{server.url}/img/{i}.jpg" for i in range(30)]
        download(tmp_path, server, urls)
        for path in (tmp_path / "manifests" / "crawl").glob("*.parquet"):
            table = pq.read_table(path)
            assert table.schema.metadata and b"witbuilder.inputs" in table.schema.metadata
            pq.write_table(table.replace_schema_metadata(None), path)  # as older versions wrote
        before = tar_times(tmp_path)
        served.requests.clear()
        with caplog.at_level(logging.INFO, logger="wit_builder.crawl.download"):
            stats = download(tmp_path, server, urls, image_size=24)
    assert not served.requests and tar_times(tmp_path) == before
    assert stats["shards_skipped"] == 2
    assert "2 shard(s) done by an older witbuilder" in caplog.text
