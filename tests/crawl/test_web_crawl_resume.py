"""The live crawl writes its pairs as sorted runs and its frontier at every checkpoint: a crawl
killed midway goes on from there, and the merged chunks and marker are byte-identical to those
of a crawl never interrupted."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from wit_builder.crawl import run as crawl_module
from wit_builder.cli import load_config
from wit_builder.crawl.run import CRAWL_RUN, stage_web_crawl
from wit_builder.crawl.sources.html import parse_page
from wit_builder.crawl.sources.web import (SEEN_PER_CHECKPOINT_PAGE, Crawler, Frontier, WebCrawlSettings,
                                     crawl_web)
from wit_builder.synthweb.server import SiteServer

NAME = "web-00000"
CHILD = """
import sys
from collections import Counter
from test_web_crawl_resume import NAME, crawl_config
from wit_builder.crawl.run import stage_web_crawl
seed, staging, delay, every = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
stage_web_crawl([seed], crawl_config(every, delay), staging, NAME, Counter())
"""


def crawl_config(checkpoint_pages: int, delay: float = 0.0):
    return load_config("crawl", None, {"allow_private": True, "crawl_delay": delay,
                                       "crawl_concurrency": 2, "per_host_concurrency": 1,
                                       "checkpoint_pages": checkpoint_pages,
                                       "partition_rows": 40})


def crawl_here(server: SiteServer, staging: Path, checkpoint_pages: int) -> int:
    """Crawl the site into `staging` in this process; returns the pages it requested."""
    before = len(page_requests(server))
    stage_web_crawl([server.url + "/"], crawl_config(checkpoint_pages), staging, NAME, Counter())
    return len(page_requests(server)) - before


def page_requests(server: SiteServer) -> list[str]:
    return [path for path in server.paths() if path != "/robots.txt"]


def has_a_run(checkpoint: Path) -> bool:
    return checkpoint.exists() and bool(json.loads(checkpoint.read_text())["runs"])


def outputs(staging: Path) -> dict[str, bytes]:
    """Every file the crawl left in `staging`, by name (the chunks and the marker); a write
    the kill cut short leaves a hidden temporary file, which is no output."""
    return {path.name: path.read_bytes() for path in sorted(staging.iterdir())
            if not path.name.startswith(".")}


@pytest.fixture(scope="module")
def site(synthweb_dir):
    with SiteServer(synthweb_dir / "site") as server:
        yield server


@pytest.fixture(scope="module")
def uninterrupted(site, tmp_path_factory):
    """The chunks and marker of a crawl of the whole site never interrupted, and its page count."""
    staging = tmp_path_factory.mktemp("uninterrupted")
    pages = crawl_here(site, staging, checkpoint_pages=0)
    return outputs(staging), pages


def test_killed_web_crawl_resumes_and_writes_the_same_chunks(site, uninterrupted, tmp_path,
                                                              caplog):
    expected, all_pages = uninterrupted
    assert len([name for name in expected if name.endswith(".parquet")]) > 1  # several chunks
    checkpoint = tmp_path / f"{NAME}.checkpoint.json"
    paths = [Path(__file__).parent, Path(__file__).parents[1], Path(crawl_module.__file__).parents[2]]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, paths))}
    child = subprocess.Popen([sys.executable, "-c", CHILD, site.url + "/", str(tmp_path),
                              "0.2", "3"], env=env)
    try:
        deadline = time.monotonic() + 20
        while not has_a_run(checkpoint) and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(10)
    assert child.returncode == -signal.SIGKILL  # killed, not finished
    assert checkpoint.exists() and not (tmp_path / f"{NAME}.json").exists()
    saved = json.loads(checkpoint.read_text())
    assert saved["runs"] and saved["frontier"]["pending"]

    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.run"):
        resumed_pages = crawl_here(site, tmp_path, checkpoint_pages=3)
    assert f"resuming the crawl of {NAME} at {saved['frontier']['pages_started']} pages" \
        in caplog.text
    assert 0 < resumed_pages < all_pages
    assert outputs(tmp_path) == expected  # runs and checkpoint gone, chunks and marker equal


def test_web_crawl_holds_at_most_one_run_of_pairs(site, uninterrupted, tmp_path, monkeypatch):
    expected, _ = uninterrupted
    held: list[int] = []
    save = crawl_module.CrawlRuns.save

    def counting_save(runs, frontier):
        held.append(len(runs.pairs))
        save(runs, frontier)
        assert runs.pairs == []  # written out, not kept
        for run in runs.runs:  # every run is sorted, in the run schema
            table = pq.read_table(tmp_path / run)
            assert table.schema == CRAWL_RUN
            rows = list(zip(*table.to_pydict().values()))
            assert rows == sorted(rows)

    monkeypatch.setattr(crawl_module.CrawlRuns, "save", counting_save)
    crawl_here(site, tmp_path, checkpoint_pages=2)
    assert outputs(tmp_path) == expected
    marker = json.loads(expected[f"{NAME}.json"])
    chunk_rows = [pq.read_table(tmp_path / chunk).to_pylist() for chunk in marker["chunks"]]
    per_page = Counter(row["page_url"] for rows in chunk_rows for row in rows)
    most_two_pages = sum(sorted(per_page.values())[-2:])
    assert len([count for count in held if count]) >= 3  # several runs
    assert max(held) <= most_two_pages and sum(held) == sum(per_page.values())


def test_checkpoint_of_other_seeds_is_discarded(site, uninterrupted, tmp_path, caplog):
    expected, _ = uninterrupted
    stale_run = tmp_path / f"{NAME}.run-00000.parquet"
    pq.write_table(CRAWL_RUN.empty_table(), stale_run)
    other_inputs = {**crawl_module.web_crawl_inputs(["http://other.invalid/"], crawl_config(2))}
    (tmp_path / f"{NAME}.checkpoint.json").write_text(json.dumps({
        "inputs": other_inputs, "runs": [stale_run.name],
        "frontier": {"seen": [], "pending": [], "pages_started": 99, "stats": {"pages": 99}}}))
    with caplog.at_level(logging.INFO, logger="wit_builder.crawl.run"):
        crawl_here(site, tmp_path, checkpoint_pages=2)
    assert "discarded: seeds changed" in caplog.text and "resuming" not in caplog.text
    assert outputs(tmp_path) == expected


def test_a_failing_checkpoint_stops_the_crawl_with_its_error(site):
    settings = WebCrawlSettings(allow_private=True, concurrency=2, checkpoint_pages=2)
    stats: Counter = Counter()

    def full_disk(frontier: Frontier) -> None:
        raise OSError(28, "No space left on device")

    started = time.monotonic()
    with pytest.raises(OSError, match="No space left"):
        crawl_web([site.url + "/"], settings, lambda url, body: parse_page(body, url)[1], stats,
                  full_disk)
    assert stats["pages"] == 2 and time.monotonic() - started < 10  # stopped, did not hang


def test_checkpoints_space_out_as_the_seen_set_grows():
    snapshots = []
    crawler = Crawler(WebCrawlSettings(checkpoint_pages=2), lambda url, body: [], Counter(),
                      snapshots.append)
    for _ in range(10):
        crawler.page_finished()
    assert len(snapshots) == 5  # a small crawl: every 2 pages
    crawler.seen = {f"http://site.test/{i}" for i in range(200 * SEEN_PER_CHECKPOINT_PAGE)}
    for _ in range(1000):
        crawler.page_finished()
    assert len(snapshots) == 5 + 1000 // 200  # 4,000 URLs seen: every 200 pages
