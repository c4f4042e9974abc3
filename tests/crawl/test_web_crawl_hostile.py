"""The live crawler against hostile pages on 127.0.0.1: a page that fails to parse is counted
and the crawl goes on; pages are parsed in worker threads, so fetches progress while one page
is parsed; page URLs in one canonical form (one fetch per page)."""

from __future__ import annotations

import logging
import threading
from collections import Counter

from aiohttp import web

from wit_builder.crawl.run import parse_web_page
from wit_builder.crawl.sources.html import PageImages, parse_page
from wit_builder.crawl.sources.web import Crawler, WebCrawlSettings, crawl_web

SETTINGS = {"user_agent": "witbuilder-test/1", "allow_private": True, "timeout": 10}


def settings(**overrides) -> WebCrawlSettings:
    return WebCrawlSettings(**{**SETTINGS, **overrides})


def site_handler(pages: dict[str, str], requests: list[str], on_request=None):
    async def handle(request: web.Request) -> web.StreamResponse:
        requests.append(request.raw_path)
        if on_request is not None:
            on_request(request.raw_path)
        if request.path == "/robots.txt":
            return web.Response(status=404)
        if request.raw_path in pages:
            return web.Response(text=pages[request.raw_path], content_type="text/html")
        raise web.HTTPNotFound()
    return handle


class Recorder:
    """`handle_page` of crawl_web with a parse callback: the pairs kept, per page."""

    def __init__(self, base: str):
        self.base, self.kept = base, {}

    def __call__(self, url: str, parsed: tuple[PageImages, list[str]]) -> list[str]:
        images, links = parsed
        self.kept[url.removeprefix(self.base)] = [pair.text for pair in images.pairs]
        return links


def test_poison_pages_are_counted_and_every_good_page_kept(serve, caplog):
    good = {f"/good{i}.html": f"<img src=/{i}.jpg alt='good picture {i}'>"
            f"<a href=/good{i + 1}.html>next</a><a href=/poison{i}.html>p</a>" for i in range(12)}
    poison = {f"/poison{i}.html": f"<img src=/p{i}.jpg alt='poison {i}'>" for i in range(12)}
    pages = {"/": "<a href=/good0.html>start</a>", **good, **poison}
    requests: list[str] = []
    server = serve(site_handler(pages, requests))

    def parse(url: str, body: bytes, with_links: bool):
        if "/poison" in url and int(url.split("poison")[1].split(".")[0]) % 2:
            raise RuntimeError("a parser bug")  # any exception of one page, not a known one
        if "/poison" in url:
            raise RecursionError("maximum recursion depth exceeded")
        return parse_web_page(url, body, with_links)

    recorder = Recorder(server.url)
    stats: Counter = Counter()
    with caplog.at_level(logging.WARNING):
        crawl_web([server.url + "/"], settings(max_depth=20), recorder, stats, parse=parse)
    assert stats["page_error"] == 12 and stats["pages"] == 1 + 12 + 12
    for i in range(12):  # every good page's pair kept, the good chain followed to its end
        assert recorder.kept[f"/good{i}.html"] == [f"good picture {i}"]
    assert not any(path.startswith("/poison") for path in recorder.kept)
    assert f"RuntimeError on '{server.url}/poison1.html'" in caplog.text
    assert f"RecursionError on '{server.url}/poison0.html'" in caplog.text


def test_a_page_that_fails_to_record_is_counted_too(serve):
    pages = {"/": "<img src=/a.jpg alt=one><a href=/b.html>b</a><a href=/c.html>c</a>",
             "/b.html": "<img src=/b.jpg alt=two>", "/c.html": "<img src=/c.jpg alt=three>"}
    server = serve(site_handler(pages, []))
    recorder = Recorder(server.url)

    def handle(url, parsed):
        if url.endswith("/b.html"):
            raise ValueError("cannot record")
        return recorder(url, parsed)

    stats: Counter = Counter()
    crawl_web([server.url + "/"], settings(), handle, stats, parse=parse_web_page)
    assert stats["page_error"] == 1 and set(recorder.kept) == {"/", "/c.html"}


def test_fetches_progress_while_a_page_is_parsed(serve):
    """A parse blocked until a page two links away from the home page has been fetched: on the
    event loop it would stall every fetch (and only the timeout would free it)."""
    pages = {"/": "<a href=/slow.html>slow</a><a href=/a.html>a</a>",
             "/slow.html": "<img src=/s.jpg alt=slow>",
             "/a.html": "<a href=/b.html>b</a>", "/b.html": "<a href=/c.html>c</a>",
             "/c.html": "<img src=/c.jpg alt='the last page'>"}
    events: list[str] = []
    fetched_c = threading.Event()

    def on_request(path: str) -> None:
        events.append(f"fetch {path}")
        if path == "/c.html":
            fetched_c.set()

    server = serve(site_handler(pages, [], on_request))
    released = []

    def parse(url: str, body: bytes, with_links: bool):
        if url.endswith("/slow.html"):
            events.append("slow parse starts")
            released.append(fetched_c.wait(timeout=20))
            events.append("slow parse ends")
        return parse_web_page(url, body, with_links)

    recorder = Recorder(server.url)
    crawl_web([server.url + "/"], settings(parse_threads=2), recorder, Counter(), parse=parse)
    assert released == [True]
    assert events.index("slow parse starts") < events.index("fetch /c.html") \
        < events.index("slow parse ends")
    assert recorder.kept["/slow.html"] == ["slow"]
    assert recorder.kept["/c.html"] == ["the last page"]


def test_pages_over_the_parse_budget_are_counted_and_the_others_kept(serve):
    """Real pathological pages (30,000 nested <div>, a tag of 100,000 attributes) among good
    ones: each counted as page_too_complex, every other page kept."""
    deep = "<div>" * 30_000 + "<img src=/deep.jpg alt='at the bottom'>" + "</div>" * 30_000
    wide = "<img " + " ".join(f"a{i}=1" for i in range(100_000)) + " src=/w.jpg alt=wide>"
    pages = {"/": "<a href=/deep.html>deep</a><a href=/wide.html>wide</a>" + "".join(
        f"<a href=/p{i}.html>{i}</a>" for i in range(20)), "/deep.html": deep,
        "/wide.html": wide,
        **{f"/p{i}.html": f"<img src=/{i}.jpg alt='page {i}'>" for i in range(20)}}
    server = serve(site_handler(pages, []))
    recorder, stats = Recorder(server.url), Counter()
    crawl_web([server.url + "/"], settings(max_page_bytes=5_000_000), recorder, stats,
              parse=parse_web_page)
    assert stats["pages"] == 23 and stats["page_too_complex"] == 2
    assert all(recorder.kept[f"/p{i}.html"] == [f"page {i}"] for i in range(20))
    assert "/deep.html" not in recorder.kept and "/wide.html" not in recorder.kept


def test_pages_at_the_last_depth_are_parsed_without_links(serve):
    pages = {"/": "<a href=/1.html>1</a>", "/1.html": "<a href=/2.html>2</a>",
             "/2.html": "<img src=/x.jpg alt=deepest><a href=/3.html>3</a>"}
    requests: list[str] = []
    server = serve(site_handler(pages, requests))
    calls = []

    def parse(url: str, body: bytes, with_links: bool):
        calls.append((url.removeprefix(server.url), with_links))
        return parse_web_page(url, body, with_links)

    recorder = Recorder(server.url)
    crawl_web([server.url + "/"], settings(max_depth=2), recorder, Counter(), parse=parse)
    assert sorted(calls) == [("/", True), ("/1.html", True), ("/2.html", False)]
    assert recorder.kept["/2.html"] == ["deepest"] and "/3.html" not in requests


def test_one_fetch_per_page_whatever_the_spelling_of_its_url(serve):
    requests: list[str] = []
    server = serve(site_handler({}, requests))
    host = server.url.removeprefix("http://")
    pages = {"/": f"<a href='a b.html'>1</a><a href='a%20b.html'>2</a>"
                  f"<a href='/a%20b.html#part'>3</a><a href='HTTP://{host}/a b.html'>4</a>"
                  f"<a href='http://{host}/./a%20b.html?'>5</a>",
             "/a%20b.html": "<img src=/x.jpg alt=spaced>"}
    server.handler = site_handler(pages, requests)
    recorder = Recorder(server.url)
    stats: Counter = Counter()
    crawl_web([server.url + "/"], settings(), recorder, stats, parse=parse_web_page)
    assert requests.count("/a%20b.html") == 1 and stats["pages"] == 2
    assert recorder.kept["/a%20b.html"] == ["spaced"]


def test_scheme_host_case_default_port_and_fragment_give_one_url():
    crawler = Crawler(settings(allowed_hosts=("h.test",)), lambda url, body: [], Counter())
    for url in ("http://h.test/x.html", "HTTP://H.TEST:80/x.html", "http://h.test/x.html#top",
                "http://h.test:80/x.html#"):
        crawler.enqueue(url, 0)
    assert crawler.queue.qsize() == 1 and crawler.seen == {"http://h.test/x.html"}


def test_without_a_parse_callback_pages_are_handled_on_the_loop_as_before(serve):
    pages = {"/": "<img src=/a.jpg alt=one><a href=/b.html>b</a>", "/b.html": "x"}
    server = serve(site_handler(pages, []))
    seen = []

    def handle(url, body):
        seen.append((threading.current_thread() is threading.main_thread(), type(body)))
        return parse_page(body, url)[1]

    crawl_web([server.url + "/"], settings(), handle, Counter())
    assert seen == [(True, bytes), (True, bytes)]


def test_dot_segments_resolve_as_a_browser_resolves_them():
    from urllib.parse import urljoin

    from wit_builder.net.urls import canonical_url

    for path in ("/a/b/c/./../../g", "/./a%20b.html", "/a/..", "/a/.", "/..", "/a//b/../c",
                 "/mid/content=5/../6", "/.hidden/x", "/a/b/.."):
        assert canonical_url("http://h.test" + path) == urljoin("http://h.test/", path)
