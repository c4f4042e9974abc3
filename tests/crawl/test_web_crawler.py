"""The live crawler against a real aiohttp site on 127.0.0.1: robots.txt, redirects, limits."""

from __future__ import annotations

from collections import Counter

import pytest
from aiohttp import web

from support.servers import Server
from wit_builder.crawl.sources.html import parse_page
from wit_builder.crawl.sources.web import WebCrawlSettings, crawl_web

PAGES = {
    "/": '<a href="/a.html">a</a> <a href="b.html">b</a> <a href="/private/secret.html">s</a>'
         '<a href="/loop1">loop</a> <a href="/old">moved</a> <a href="/missing">404</a>'
         '<a href="/doc.html">doc</a> <a href="/huge.html">huge</a>'
         '<a href="http://elsewhere.test/">off</a> <a href="/nofollow.html" rel="nofollow">n</a>',
    "/a.html": '<img src="img/1.jpg" alt="a red star"><a href="/deep/1.html">deeper</a>',
    "/b.html": '<img src="/img/2.jpg" alt="two blue rings"><a href="/">home</a>',
    "/new.html": '<img src="/img/3.jpg" alt="a moved page">',
    "/deep/1.html": '<a href="/deep/2.html">more</a>',
    "/deep/2.html": '<img src="/img/4.jpg" alt="too deep">',
    "/private/secret.html": '<img src="/img/5.jpg" alt="must never be seen">',
    "/nofollow.html": "should not be visited",
}


class Site:
    """A tiny site with a request log, served from a background thread."""

    def __init__(self, robots: str = "User-agent: *\nDisallow: /private/\n", robots_status=200):
        self.requests: list[str] = []
        self.robots, self.robots_status = robots, robots_status

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.requests.append(path)
        assert "witbuilder" in request.headers["User-Agent"]
        if path == "/robots.txt":
            return web.Response(text=self.robots, status=self.robots_status)
        if path == "/old":
            raise web.HTTPMovedPermanently("/new.html")
        if path in ("/loop1", "/loop2"):
            raise web.HTTPFound("/loop2" if path == "/loop1" else "/loop1")
        if path == "/doc.html":
            return web.Response(body=b"%PDF-1.4", content_type="application/pdf")
        if path == "/huge.html":
            return web.Response(text="<p>" + "x" * 200_000, content_type="text/html")
        if path in PAGES:
            return web.Response(text=PAGES[path], content_type="text/html")
        raise web.HTTPNotFound()

    def __enter__(self) -> "Site":
        self.server = Server(self.handle).__enter__()
        self.url = self.server.url + "/"
        return self

    def __exit__(self, *exc) -> None:
        self.server.__exit__(*exc)


def crawl(site: Site, **overrides) -> tuple[dict[str, list[str]], Counter]:
    settings = WebCrawlSettings(**{"user_agent": "witbuilder-test/1", "allow_private": True,
                                   "max_page_bytes": 100_000, "timeout": 5,
                                   "max_depth": 2, **overrides})
    found: dict[str, list[str]] = {}
    stats: Counter = Counter()

    def handle(url: str, body: bytes) -> list[str]:
        images, links = parse_page(body, url)
        found[url.removeprefix(site.url[:-1])] = [pair.text for pair in images.pairs]
        return links

    crawl_web([site.url], settings, handle, stats)
    return found, stats


def test_crawl_obeys_robots_follows_links_and_counts_failures():
    with Site() as site:
        found, stats = crawl(site)
    assert found == {"/": [], "/a.html": ["a red star"], "/b.html": ["two blue rings"],
                     "/new.html": ["a moved page"], "/deep/1.html": []}
    assert not any(path.startswith("/private/") for path in site.requests)
    assert "/nofollow.html" not in site.requests
    assert site.requests.count("/robots.txt") == 1
    assert stats["robots"] == 1 and stats["redirect_loop"] == 1 and stats["http_error"] == 1
    assert stats["not_html"] == 1 and stats["too_large"] == 1 and stats["off_site_link"] == 1
    assert stats["pages"] == 5


def test_pages_on_a_url_blocklist_are_never_requested(tmp_path):
    from wit_builder.crawl.blocklists import load_blocklist

    with Site() as site:
        listed = tmp_path / "urls.txt"
        listed.write_text(f"{site.url}b.html\n{site.url}OLD#x\n".replace("OLD", "old"))
        found, stats = crawl(site, blocklist=load_blocklist([], [str(listed)]))
    assert "/b.html" not in site.requests and "/old" not in site.requests
    assert "/b.html" not in found and "/new.html" not in found and "/a.html" in found
    assert stats["blocked_url"] == 2


def test_max_pages_caps_the_crawl():
    with Site() as site:
        found, stats = crawl(site, max_pages=2, concurrency=1)
    assert len(found) == 2 and stats["max_pages_reached"] > 0


def test_loopback_is_blocked_unless_allowed():
    with Site() as site:
        found, stats = crawl(site, allow_private=False)
    assert found == {} and stats["blocked_address"] == 1
    assert site.requests == []


@pytest.mark.parametrize("robots, status, visited", [
    ("\x00\xff garbage {{{ not robots", 200, True),
    ("", 404, True),
    ("", 503, False),
    ("User-agent: witbuilder-test\nDisallow: /\n\nUser-agent: *\nAllow: /\n", 200, False),
])
def test_robots_variants(robots, status, visited):
    with Site(robots=robots, robots_status=status) as site:
        found, _ = crawl(site, max_depth=0)
    assert ("/" in found) is visited
    assert site.requests[0] == "/robots.txt"


def test_delay_spaces_requests_to_one_host():
    import time
    with Site() as site:
        started = time.monotonic()
        crawl(site, max_depth=0, delay=0.3)
        elapsed = time.monotonic() - started
    assert elapsed >= 0.3  # robots.txt, then the page 0.3 s later


def test_live_crawl_counts_a_poison_page_keeps_the_others_and_shows_a_bar(
        serve, tmp_path, monkeypatch, capfd):
    import pyarrow as pa
    import pyarrow.parquet as pq

    import wit_builder.crawl.run as crawl_run
    from wit_builder.cli import load_config

    pages = {"/": "".join(f"<a href=/p{i}.html>{i}</a>" for i in range(10))
             + "<a href=http://elsewhere.test/>off</a>",
             **{f"/p{i}.html": f"<img src=/{i}.jpg alt='a red star over house {i}'>"
                for i in range(10)}}

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path in pages:
            return web.Response(text=pages[request.path], content_type="text/html")
        raise web.HTTPNotFound()

    server = serve(handle)
    real = crawl_run.parse_page

    def parse(body, page_url, with_links=True):
        if page_url.endswith("/p3.html"):
            raise MemoryError("a page that blows up")
        return real(body, page_url, with_links=with_links)

    monkeypatch.setattr(crawl_run, "parse_page", parse)
    (tmp_path / "queries").mkdir()
    pq.write_table(pa.table({"query_id": pa.array([0], pa.int32()), "query": ["red star"]}),
                   tmp_path / "queries" / "queries.parquet")
    config = load_config("crawl", None, {
        "workdir": str(tmp_path), "download": False, "workers": 1, "allow_private": True,
        "source": [f"web:{server.url}/"], "crawl_delay": 0.0, "max_depth": 2})
    stats = crawl_run.select(config)
    assert stats["dropped"]["page_error"] == 1
    assert stats["counts"] == {"pages": 11, "off_site_link": 1}
    assert "pages" not in stats["dropped"] and "off_site_link" not in stats["dropped"]
    urls = set(pq.read_table(tmp_path / "data" / "matched").column("url").to_pylist())
    assert urls == {f"{server.url}/{i}.jpg" for i in range(10) if i != 3}
    assert "crawl: web" in capfd.readouterr().err  # the tqdm bar
