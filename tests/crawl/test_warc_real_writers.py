"""WARCs as real tools write them: GNU wget (--warc-file: WARC/1.0, angle-bracketed target URIs,
request, metadata and resource records beside the responses) and warcio's writer, each recording
a site served on 127.0.0.1; the WARC crawl finds the same image URLs as the live crawl."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from support.servers import Server
from wit_builder.cli import load_config
from wit_builder.crawl.run import select

GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"\
      b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
PAGES = ["/", "/a.html", "/b.html", "/c/d.html"]


def page(index: int) -> bytes:
    links = "".join(f"<a href='{path}'>{path}</a> " for path in PAGES)
    words = ["morning", "evening", "winter", "summer"][index]
    images = (f"<img src='/img/{index}-1.gif' alt='a bright red star shining over the old "
              f"house on a cold {words}'>"
              f"<img src='img/{index}-2.gif' alt='the children painted a red star on the wall "
              f"of their school this {words}'>"
              f"<img srcset='/img/{index}-s.gif 100w, /img/{index}-l.gif 800w' src='/x.gif' "
              f"alt='a large red star hangs above the door of the shop every {words}'>"
              f"<img src='/img/{index}-pixel.gif' width=1 height=1 alt='a small red star "
              f"counter that should never be kept'>")
    return f"<html><body>{images}{links}<a href='/missing.html'>gone</a></body></html>".encode()


async def handler(request: web.Request) -> web.Response:
    path = request.path
    if path in PAGES:
        return web.Response(body=page(PAGES.index(path)), content_type="text/html")
    if path.endswith(".gif"):
        return web.Response(body=GIF, content_type="image/gif")
    return web.Response(status=404, text="not here")


@pytest.fixture
def site():
    with Server(handler) as server:
        yield server


def crawl(workdir: Path, source: str) -> tuple[set[str], dict]:
    (workdir / "queries").mkdir(parents=True)
    pq.write_table(pa.table({"query_id": pa.array([0], pa.int32()), "query": ["red star"]}),
                   workdir / "queries" / "queries.parquet")
    config = load_config("crawl", None, {
        "workdir": str(workdir), "download": False, "workers": 1, "source": [source],
        "allow_private": True, "crawl_delay": 0.0, "per_query": 1000})
    stats = select(config)
    urls = set(pq.read_table(workdir / "data" / "matched").column("url").to_pylist())
    return urls, {**stats["dropped"], **stats["counts"]}  # reasons, and the pages read


def live_urls(site: Server, tmp_path: Path) -> set[str]:
    urls, _ = crawl(tmp_path / "live", f"web:{site.url}/")
    assert len(urls) == 3 * len(PAGES)  # the 1x1 pixel dropped, the srcset's largest kept
    return urls


@pytest.mark.skipif(shutil.which("wget") is None, reason="GNU wget is not installed "
                    "(apt-get install wget): the WARC it writes cannot be tested")
def test_wget_warc_finds_what_the_live_crawl_finds(site, tmp_path):
    record = tmp_path / "record"
    record.mkdir()
    subprocess.run(["wget", "--recursive", "--level", "2", "--page-requisites",
                    f"--warc-file={tmp_path / 'site'}", "-e", "robots=off", "--no-verbose",
                    "--tries", "1", "--timeout", "10", f"{site.url}/"],
                   cwd=record, timeout=60, check=False, capture_output=True)
    warc = tmp_path / "site.warc.gz"
    assert warc.exists()
    assert b"WARC-Target-URI: <http://" in gzip.decompress(warc.read_bytes())
    urls, dropped = crawl(tmp_path / "from-warc", f"warc:{warc}")
    assert urls == live_urls(site, tmp_path)
    assert dropped["pages"] == len(PAGES)
    assert dropped.get("http_status", 0) >= 1  # /missing.html's 404 counted, not ignored
    assert not dropped.get("not_http") and not dropped.get("invalid_warc")


def test_warcio_warc_finds_what_the_live_crawl_finds(site, tmp_path):
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    warc = tmp_path / "site.warc.gz"
    with open(warc, "wb") as output:
        writer = WARCWriter(output, gzip=True)
        for path in PAGES + ["/missing.html"]:
            try:
                response = urllib.request.urlopen(f"{site.url}{path}", timeout=10)
                status, body = response.status, response.read()
                headers = list(response.headers.items())
            except urllib.error.HTTPError as error:
                status, body, headers = error.code, error.read(), list(error.headers.items())
            reason = "OK" if status == 200 else "Not Found"
            http = StatusAndHeaders(f"{status} {reason}", headers, protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(
                f"{site.url}{path}", "response", payload=BytesIO(body), http_headers=http))
    urls, dropped = crawl(tmp_path / "from-warc", f"warc:{warc}")
    assert urls == live_urls(site, tmp_path)
    assert dropped["pages"] == len(PAGES) and dropped["http_status"] == 1
