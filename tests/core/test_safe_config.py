"""Safe by default: no config file is read unless the user names it (the project's own
witbuilder.toml is the demo's), the demo trusts exactly the origin it serves, and --allow-private
says once per run that the guard is off."""

from __future__ import annotations

import logging
import subprocess
import sys
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from support.hostile_web import image_bytes
from support.servers import Server
from wit_builder import cli
from wit_builder.cli import load_config
from wit_builder.crawl.run import run, trusting_site
from wit_builder.core.options import WitError

REPO = Path(__file__).resolve().parents[2]
CAPTIONS = ["a red triangle drawn on a plain white background",
            "two large blue circles on a dotted background"]
WEAKENING_KEYS = {"allow_private", "trusted_origins", "crawl_delay"}


class CountingImages:
    """An image server that counts the image requests it receives."""

    def __init__(self):
        self.requests = self.all_requests = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        self.all_requests += 1
        if request.path == "/robots.txt":  # asked before each host's first image: no rules
            raise web.HTTPNotFound()
        self.requests += 1
        return web.Response(body=image_bytes(120, 90, seed=self.requests),
                            content_type="image/jpeg")


def write_inputs(folder: Path, urls: list[str]) -> Path:
    """queries/queries.parquet and pool.parquet (one caption per URL) in `folder`."""
    (folder / "queries").mkdir(parents=True, exist_ok=True)
    queries = ["blue", "circle", "red", "triangle"]
    pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                             "query": queries}), folder / "queries" / "queries.parquet")
    pool = folder / "pool.parquet"
    pq.write_table(pa.table({"url": urls, "caption": CAPTIONS[:len(urls)]}), pool)
    return pool


def statuses(workdir: Path) -> list[str]:
    return sorted(pq.read_table(workdir / "manifests" / "crawl" / "00000.parquet")
                  .column("status").to_pylist())


def test_the_shipped_config_weakens_nothing():
    shipped = tomllib.loads((REPO / "witbuilder.toml").read_text())
    for section in shipped.values():
        if isinstance(section, dict):
            assert not WEAKENING_KEYS & set(section), section


def test_a_config_in_the_current_folder_is_not_read(tmp_path, monkeypatch, caplog):
    (tmp_path / "witbuilder.toml").write_text("[crawl]\nallow_private = true\n")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.INFO, logger="wit_builder.cli"):
        assert cli.config_path(None) is None
    assert "--config witbuilder.toml" in caplog.text
    assert cli.config_path("witbuilder.toml") == Path("witbuilder.toml")


def test_an_explicit_wiki_never_mixes_with_the_demo_inputs(monkeypatch):
    """`wit queries --wiki real.xml.bz2` from the project folder: no synthetic WordNet or
    pageviews come along."""
    seen = {}
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(cli, "resolve_runner",
                        lambda spec: (lambda config: seen.update(config=config) or 0))
    assert cli.main(["queries", "--wiki", "/data/enwiki-latest.xml.bz2"]) == 0
    config = seen["config"]
    assert config.wiki == "/data/enwiki-latest.xml.bz2"
    assert (config.wordnet, config.pageviews, config.index) == ("", [], "")


def test_a_crawl_from_a_permissive_project_folder_sends_no_request(tmp_path):
    """A witbuilder.toml that opens the guard, lying in the folder the crawl runs from, is not
    read: the loopback URLs of the pool are refused and the server sees no request."""
    images = CountingImages()
    with Server(images) as server:
        pool = write_inputs(tmp_path, [f"{server.url}/a.jpg", f"http://localhost:{server.port}/b.jpg"])
        (tmp_path / "witbuilder.toml").write_text(
            "[crawl]\nallow_private = true\ncrawl_delay = 0.0\n"
            f"trusted_origins = ['{server.origin}']\n")
        result = subprocess.run(
            [sys.executable, "-m", "wit_builder.cli", "crawl", "--source", f"pool:{pool}",
             "--workdir", str(tmp_path), "--workers", "1", "--retries", "0"],
            cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    assert images.all_requests == 0  # not even robots.txt
    assert statuses(tmp_path) == ["blocked_address", "blocked_address"]


def test_a_trusted_origin_opens_that_server_only(tmp_path):
    """The demo's way: one origin (scheme, host and port) trusted; the same host on another
    port stays behind the guard."""
    trusted, other = CountingImages(), CountingImages()
    with Server(trusted) as one, Server(other) as two:
        pool = write_inputs(tmp_path, [f"{one.url}/a.jpg", f"{two.url}/b.jpg"])
        config = load_config("crawl", None, {
            "workdir": str(tmp_path), "source": [f"pool:{pool}"], "workers": 1, "retries": 0,
            "image_size": 64})
        assert run(trusting_site(config, one.url + "/")) == 0
    assert (trusted.requests, other.requests) == (1, 0)
    assert statuses(tmp_path) == ["blocked_address", "ok"]


def test_trusting_the_site_keeps_the_guard_on():
    config = load_config("crawl", None, {"trusted_origins": ["mirror.internal:8080"]})
    trusting = trusting_site(config, "http://127.0.0.1:8765/")
    assert trusting.allow_private is False
    assert trusting.trusted_origins == ["mirror.internal:8080", "127.0.0.1:8765"]


def test_allow_private_is_said_once_per_run(tmp_path, caplog):
    pool = write_inputs(tmp_path, ["http://example.test/a.jpg"])
    config = load_config("crawl", None, {"workdir": str(tmp_path), "source": [f"pool:{pool}"],
                                         "allow_private": True, "download": False})
    with caplog.at_level(logging.WARNING):
        assert run(config) == 0
    warnings = [r for r in caplog.records if "--allow-private" in r.getMessage()]
    assert len(warnings) == 1


def test_a_trusted_origin_without_a_port_is_a_clear_error(tmp_path):
    pool = write_inputs(tmp_path, ["http://example.test/a.jpg"])
    config = load_config("crawl", None, {"workdir": str(tmp_path), "source": [f"pool:{pool}"],
                                         "trusted_origins": ["mirror.lan"], "download": False})
    with pytest.raises(WitError, match="--trusted-origins: .*HOST:PORT"):
        run(config)


def test_queries_without_a_dump_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["queries", "--workdir", str(tmp_path)]) == 2
    assert "no --wiki given" in capsys.readouterr().err


def test_img2dataset_on_ray_is_refused_before_the_crawl_starts(tmp_path):
    pool = write_inputs(tmp_path, ["http://example.test/a.jpg"])
    config = load_config("crawl", None, {"workdir": str(tmp_path), "source": [f"pool:{pool}"],
                                         "downloader": "img2dataset", "engine": "ray"})
    with pytest.raises(WitError, match="--downloader img2dataset runs on this machine only"):
        run(config)
    assert not (tmp_path / "data").exists()
