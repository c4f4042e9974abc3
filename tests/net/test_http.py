"""The one guarded HTTP client (net/http.py): one status for one failure whichever client meets it
(the live crawler, the native downloader, the blocking stream), one vocabulary of statuses, and
the blocking stream's readers (WARC files, Wikipedia dumps) held to the address guard at every
hop. Every test runs under test_netguard's tripwire: no connection leaves loopback."""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from dataclasses import dataclass

import pytest
from aiohttp import web

from support import wiki_data as fx
from support.servers import Server
from test_netguard import check_outcomes, cases
from wit_builder.core import schemas
from wit_builder.core.options import WitError
from wit_builder.crawl.download import img2dataset_backend
from wit_builder.crawl.download.fetch import FetchSettings, fetch, open_session
from wit_builder.crawl.sources.warc import expand_warc_locations, read_html_responses
from wit_builder.crawl.sources.web import WebCrawlSettings, crawl_web
from wit_builder.net.guard import AddressPolicy
from wit_builder.net.http import STATUSES, FetchFailed, is_http_url, open_stream
from wit_builder.queries.wikipedia.pages import iter_pages
from wit_builder.queries.wikipedia.reader import plan_dump, read_partition

TIMEOUT = 1.5
MAX_BYTES = 100_000
PAGE = "<p>fine</p>"


# ---- one vocabulary -----------------------------------------------------------------------------

def test_one_status_vocabulary_and_one_opt_out_table():
    assert set(schemas.CRAWL_STATUSES) <= set(STATUSES)
    assert {ours for _, ours in img2dataset_backend.ERROR_STATUSES} <= set(STATUSES)
    with pytest.raises(ValueError, match="unknown fetch status"):
        FetchFailed("not_a_status")
    # one opt-out table: the crawl's defaults and the page meta check read it
    from wit_builder.crawl.config import CrawlConfig
    from wit_builder.crawl.sources import html
    from wit_builder.net.optout import HEADER_OPT_OUTS, META_OPT_OUTS
    assert tuple(CrawlConfig().disallowed_header_directives) == HEADER_OPT_OUTS
    assert html.META_OPT_OUTS is META_OPT_OUTS


def test_is_http_url_is_the_one_test_of_what_the_client_fetches():
    for location in ("http://a.test/x.warc.gz", "HTTPS://a.test/", "https://[::1]:8/d.xml"):
        assert is_http_url(location)
    for location in ("s3://bucket/x.warc.gz", "/data/x.warc", "x.warc", "file:///x", "ftp://a/x",
                     "httpx://a/"):
        assert not is_http_url(location)


# ---- one status for one failure, whichever client ---------------------------------------------

@dataclass(frozen=True)
class Failure:
    name: str
    path: str           # on the test server, or a whole URL
    status: str         # what every client answers
    stream: bool = True  # also asked of the blocking stream (it has no byte cap, reads later)
    crawler: str = ""   # where the crawler answers otherwise, and why


FAILURES = [
    Failure("a page", "/page.html", "ok"),
    Failure("404", "/missing.html", "http_error"),
    Failure("500", "/broken.html", "http_error"),
    Failure("redirect without Location", "/no-location.html", "http_error"),
    Failure("redirect loop", "/loop-a.html", "redirect_loop"),
    Failure("endless redirects", "/chain/0.html", "redirect_loop"),
    Failure("redirect to metadata", "/to-metadata.html", "blocked_address"),
    Failure("redirect to a name of metadata", "/to-metadata-name.html", "blocked_address"),
    Failure("redirect to an untrusted loopback port", "/to-canary.html", "blocked_address"),
    Failure("metadata literal", "http://169.254.169.254/latest/meta-data/", "blocked_address"),
    Failure("private literal", "http://10.0.0.1/page.html", "blocked_address"),
    Failure("name of metadata", "http://metadata.google.internal/page.html", "blocked_address"),
    Failure("not http", "ftp://127.0.0.1/page.html", "connection_error"),
    # the crawler asks for robots.txt first: an unreachable host is skipped, the page never asked
    Failure("connection refused", "CLOSED/page.html", "connection_error", crawler="robots"),
    Failure("slow answer", "/slow.html", "timeout"),
    Failure("body past the cap", "/huge.html", "too_large", stream=False),
    Failure("connection reset mid-body", "/reset.html", "connection_error", stream=False),
]


class FailingSite:
    def __init__(self):
        self.canary_port = 0

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/page.html":
            return web.Response(text=PAGE, content_type="text/html")
        if path == "/broken.html":
            raise web.HTTPInternalServerError()
        if path == "/no-location.html":
            return web.Response(status=302)
        if path in ("/loop-a.html", "/loop-b.html"):
            raise web.HTTPFound("/loop-b.html" if path == "/loop-a.html" else "/loop-a.html")
        if path.startswith("/chain/"):
            raise web.HTTPFound(f"/chain/{int(path[7:].split('.')[0]) + 1}.html")
        if path == "/to-metadata.html":
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")
        if path == "/to-metadata-name.html":
            raise web.HTTPFound("http://metadata.google.internal/page.html")
        if path == "/to-canary.html":
            raise web.HTTPFound(f"http://127.0.0.1:{self.canary_port}/page.html")
        if path == "/slow.html":
            await asyncio.sleep(5 * TIMEOUT)
            return web.Response(text=PAGE, content_type="text/html")
        if path == "/huge.html":
            return web.Response(text="<p>" + "x" * (2 * MAX_BYTES), content_type="text/html")
        if path == "/reset.html":
            response = web.StreamResponse(headers={"Content-Type": "text/html"})
            response.content_length = 10_000
            await response.prepare(request)
            await response.write(b"<p>" * 100)
            request.transport.abort()
            return response
        raise web.HTTPNotFound()  # /missing.html, /robots.txt (the crawler may crawl everything)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def crawler_status(url: str, settings: WebCrawlSettings) -> str:
    stats: Counter = Counter()
    crawl_web([url], settings, lambda page_url, body: [], stats)
    if stats["pages"] == 1:
        return "ok"
    counted = [status for status in stats if status != "robots_unavailable"]  # the host's
    assert len(counted) == 1 and stats[counted[0]] == 1, stats
    return counted[0]


def stream_status(url: str, policy: AddressPolicy) -> str:
    try:
        with open_stream(url, policy, timeout=TIMEOUT) as body:
            assert body.read() == PAGE.encode()
        return "ok"
    except FetchFailed as failure:
        return failure.status


def test_crawler_downloader_and_stream_answer_the_same_status(tripwire, servers):
    site = FailingSite()
    site.canary_port = servers.canary.port
    closed = f"127.0.0.1:{closed_port()}"
    with Server(site) as server:
        urls = {failure: failure.path.replace("CLOSED", f"http://{closed}")
                if "://" in failure.path or failure.path.startswith("CLOSED")
                else server.url + failure.path for failure in FAILURES}
        origins = (server.origin, closed)
        fetch_settings = FetchSettings(trusted_origins=origins, retries=0, timeout=TIMEOUT,
                                       max_bytes=MAX_BYTES)

        async def download_all() -> dict[Failure, str]:
            async with open_session(fetch_settings) as client:
                return {failure: (await fetch(client, url, fetch_settings)).status
                        for failure, url in urls.items()}

        downloader = asyncio.run(download_all())
        crawl_settings = WebCrawlSettings(
            user_agent="witbuilder-test/1", max_depth=0, timeout=TIMEOUT,
            max_page_bytes=MAX_BYTES, concurrency=1, trusted_origins=origins,
            allowed_hosts=("127.0.0.1", "169.254.169.254", "10.0.0.1",
                           "metadata.google.internal"))
        crawler = {failure: crawler_status(url, crawl_settings) for failure, url in urls.items()}
        policy = AddressPolicy(trusted_origins=origins)
        stream = {failure: stream_status(url, policy) for failure, url in urls.items()
                  if failure.stream}
    expected = {failure: failure.status for failure in FAILURES}
    assert {f.name: s for f, s in downloader.items() if s != expected[f]} == {}
    assert {f.name: s for f, s in crawler.items() if s != (f.crawler or expected[f])} == {}
    assert {f.name: s for f, s in stream.items() if s != expected[f]} == {}
    assert servers.requests == []  # the canary never reached


# ---- the blocking stream and its readers -------------------------------------------------------

def test_blocking_stream_blocks_every_spelling(tripwire, servers):
    policy = AddressPolicy(trusted_origins=servers.origins)
    outcomes = {}
    for case in cases(servers, ".html"):
        try:
            with open_stream(case.url, policy, timeout=5.0) as body:
                body.read()
            outcomes[case] = "ok"
        except FetchFailed as failure:
            outcomes[case] = failure.status
    check_outcomes(servers, outcomes)


def refused_locations(servers) -> list[str]:
    """WARC or dump URLs that lead inside: literals, names resolving inside, untrusted loopback
    ports, and redirects from a trusted origin to each."""
    targets = ["http://169.254.169.254/latest/x", "http://[::ffff:169.254.169.254]/x",
               "http://metadata.google.internal/x", "http://10.0.0.1/x",
               f"http://127.0.0.1:{servers.canary.port}/x",
               f"http://localhost:{servers.canary.port}/x"]
    return targets + [servers.redirect(target) for target in targets]


def test_warc_reader_refuses_what_the_guard_refuses(tripwire, servers, tmp_path):
    policy = AddressPolicy(trusted_origins=servers.origins)
    for location in refused_locations(servers):
        with pytest.raises(WitError, match="cannot fetch .*non-public address.*--trusted-origins"):
            list(read_html_responses(location + ".warc.gz", Counter(), policy))
    # a listing that names the metadata address: listed, then refused when read
    listing = tmp_path / "list.txt"
    listing.write_text("http://169.254.169.254/latest/meta-data/x.warc.gz\n")
    (location,) = expand_warc_locations(f"@{listing}", policy=policy)
    with pytest.raises(WitError, match="non-public address"):
        list(read_html_responses(location, Counter(), policy))
    # a listing on the web, read under the policy too; the crawl's default is public only
    with pytest.raises(WitError, match="non-public address"):
        expand_warc_locations("http://169.254.169.254/warc.paths.gz", policy=policy)
    with pytest.raises(WitError, match="non-public address"):
        expand_warc_locations(f"{servers.trusted.url}/ok/warc.paths")
    assert servers.paths() <= {"/to"}
    assert not [request for request in servers.requests if request[0] == "canary"]


def test_dump_reader_refuses_what_the_guard_refuses(tripwire, servers):
    trusting = AddressPolicy(trusted_origins=servers.origins)
    for location in refused_locations(servers):
        with pytest.raises(WitError, match="cannot be fetched: .*non-public address.*download "
                                           "the dump first"):
            plan_dump(location + ".xml.bz2", policy=trusting)
    # queries has no --allow-private: without a policy, public addresses only
    with pytest.raises(WitError, match="non-public address.*download the dump first"):
        plan_dump(f"{servers.trusted.url}/ok/dump.xml.bz2")
    assert servers.paths() <= {"/to"}
    assert not [request for request in servers.requests if request[0] == "canary"]


def test_dump_reader_streams_from_a_trusted_origin_through_a_redirect(tripwire, tmp_path):
    articles = fx.make_articles(20, seed=5)
    dump = fx.write_single_stream(tmp_path / "dump.xml.bz2", articles).read_bytes()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/latest":
            raise web.HTTPFound("/dump.xml.bz2")
        return web.Response(body=dump, content_type="application/x-bzip2")

    with Server(handle) as server:
        trusted = AddressPolicy(trusted_origins=(server.origin,))
        plan = plan_dump(server.url + "/latest", policy=trusted)
        titles = Counter(page.title for chunk in plan.chunks()
                         for fragment in read_partition(chunk) for page in iter_pages(fragment))
    assert plan.kind == "url" and titles == Counter(article.title for article in articles)
