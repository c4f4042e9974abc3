"""Raw shards are deterministic and resumable: a crawl killed with SIGKILL at random moments and
run again ends with exactly the bytes of an uninterrupted run, and never shows a partial tar."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import webdataset as wds

from support.hostile_web import Server, StaticImages, image_bytes, write_selection
from wit_builder.cli import load_config
from wit_builder.crawl.download import download_selection

IMAGES = 90
PER_SHARD = 30
RUN_DOWNLOAD = """
import json, sys
from pathlib import Path
from wit_builder.cli import load_config
from wit_builder.crawl.download import download_selection
values = json.loads(sys.argv[1])
download_selection(load_config("crawl", None, values), Path(values["workdir"]) / "sel.parquet")
"""


def settings(workdir: Path, server: Server) -> dict:
    return {"workdir": str(workdir), "workers": 1, "samples_per_shard": PER_SHARD,
            "concurrency": 4, "image_size": 48, "min_size": 8, "timeout": 5.0,
            "trusted_origins": [server.origin]}


def shard_files(workdir: Path) -> dict[str, bytes]:
    files = sorted((workdir / "data" / "raw").glob("*.tar"))
    return {path.name: path.read_bytes() for path in files}


def manifests_without_timing(workdir: Path) -> list[list[dict]]:
    tables = sorted((workdir / "manifests" / "crawl").glob("*.parquet"))
    return [pq.read_table(path).drop_columns(["seconds"]).to_pylist() for path in tables]


def kill_during_download(workdir: Path, values: dict, rng: random.Random) -> None:
    """Start the download in a process and SIGKILL it once it is writing, at a random moment."""
    process = subprocess.Popen([sys.executable, "-c", RUN_DOWNLOAD, json.dumps(values)],
                               start_new_session=True, stderr=subprocess.DEVNULL)
    raw = workdir / "data" / "raw"
    before = set(raw.iterdir()) if raw.is_dir() else set()
    deadline = time.monotonic() + 60
    while not (raw.is_dir() and set(raw.iterdir()) - before) and process.poll() is None:
        assert time.monotonic() < deadline, "download never started"
        time.sleep(0.02)
    time.sleep(rng.uniform(0.0, 1.2))
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_download_killed_twice_then_resumed_equals_uninterrupted_run(tmp_path):
    bodies = [image_bytes(w, h, seed=i) for i, (w, h) in
              enumerate([(160, 120), (40, 30), (300, 200), (64, 64), (90, 200), (120, 100)])]
    server_images = StaticImages(bodies, delay=0.08)
    rng = random.Random(5)
    with Server(server_images) as server:
        urls = [f"{server.url}/img/{i}.jpg" for i in range(IMAGES)]
        reference, resumed = tmp_path / "reference", tmp_path / "resumed"
        for workdir in (reference, resumed):
            write_selection(workdir / "sel.parquet", urls)
        download_selection(load_config("crawl", None, settings(reference, server)),
                           reference / "sel.parquet")
        expected = shard_files(reference)
        partial_tars = 0
        for _ in range(2):
            kill_during_download(resumed, settings(resumed, server), rng)
            for name, data in shard_files(resumed).items():
                assert data == expected[name], f"{name} visible under its final name, incomplete"
            partial_tars += len(list((resumed / "data" / "raw").glob(".*.tar.*.tmp")))
        assert partial_tars > 0, "no kill landed while a tar was being written"
        finished_before = len(manifests_without_timing(resumed))
        assert finished_before < 3, "the kills came too late to test anything"
        server_images.requests.clear()
        download_selection(load_config("crawl", None, settings(resumed, server)),
                           resumed / "sel.parquet")
    assert shard_files(resumed) == expected
    assert manifests_without_timing(resumed) == manifests_without_timing(reference)
    assert not [p for p in (resumed / "data" / "raw").iterdir() if p.suffix != ".tar"]
    assert sum(server_images.requests.values()) == IMAGES - finished_before * PER_SHARD, \
        "the rerun skips exactly the shards whose manifest exists"
    keys = [s["__key__"] for name in expected for s in
            wds.WebDataset(str(resumed / "data" / "raw" / name), shardshuffle=False)]
    assert len(keys) == len(set(keys)) == IMAGES
    assert keys[:2] == ["0000000000", "0000000001"] and keys[-1] == "0000200029"
    with tarfile.open(resumed / "data" / "raw" / "00000.tar") as tar:
        member = tar.getmember("0000000000.jpg")
        assert member.mtime == 0 and member.uid == 0
