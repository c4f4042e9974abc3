"""robots.txt as RFC 9309 says (net.robots), obeyed by the live crawler and the native downloader,
and the X-Robots-Tag opt-outs both downloaders honour (net.optout)."""

from __future__ import annotations

import logging
import os
from collections import Counter

import pytest
from aiohttp import web

from support.hostile_web import Server, download_rows, image_bytes
from wit_builder.crawl.sources.html import parse_page
from wit_builder.crawl.download.img2dataset_backend import OptOutChecked
from wit_builder.crawl.sources.web import WebCrawlSettings, crawl_web
from wit_builder.net.optout import HEADER_OPT_OUTS, opted_out, user_agent_token
from wit_builder.net.robots import MAX_CRAWL_DELAY, allowing_all, denying_all, rules_from_answer, \
    rules_from_text

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # img2dataset: no version check
AGENT = "witbuilder/0.1 (+https://github.com/witbuilder/witbuilder)"


@pytest.mark.parametrize("robots, path, allowed", [
    # wildcards: * matches any run of characters, also across slashes
    ("User-agent: *\nDisallow: /*/private", "/x/private", False),
    ("User-agent: *\nDisallow: /*/private", "/a/b/private/c", False),
    ("User-agent: *\nDisallow: /*/private", "/private", True),
    ("User-agent: *\nDisallow: /*.gif", "/img/a.gif", False),
    ("User-agent: *\nDisallow: /*.gif", "/img/a.jpg", True),
    # $ anchors the end of the path
    ("User-agent: *\nDisallow: /*.gif$", "/a.gif", False),
    ("User-agent: *\nDisallow: /*.gif$", "/a.gif?size=2", True),
    ("User-agent: *\nDisallow: /a$", "/ab", True),
    # the longest match wins, whatever the order of the lines
    ("User-agent: *\nDisallow: /x/\nAllow: /x/public/", "/x/public/1.jpg", True),
    ("User-agent: *\nAllow: /x/public/\nDisallow: /x/", "/x/public/1.jpg", True),
    ("User-agent: *\nAllow: /x\nDisallow: /x/deep", "/x/deep/1", False),
    # an allow wins a tie
    ("User-agent: *\nDisallow: /page\nAllow: /page", "/page", True),
    ("User-agent: *\nAllow: /page\nDisallow: /page", "/page", True),
    # groups: ours by product token (case-insensitive), else *
    ("User-agent: WitBuilder\nDisallow: /\n\nUser-agent: *\nAllow: /", "/a", False),
    ("User-agent: otherbot\nDisallow: /\n\nUser-agent: *\nAllow: /", "/a", True),
    ("", "/a", True),
    ("\x00\xff garbage {{{", "/a", True),
])
def test_rfc9309_rules(robots, path, allowed):
    assert rules_from_text(robots).allowed("http://h.test" + path, AGENT) is allowed


def test_crawl_delay_fractional_and_capped(caplog):
    assert rules_from_text("User-agent: *\nCrawl-delay: 1.5").delay(AGENT) == 1.5
    assert rules_from_text("User-agent: *\nDisallow: /x").delay(AGENT) == 0.0
    with caplog.at_level(logging.WARNING, logger="wit_builder.net.robots"):
        rules = rules_from_text("User-agent: *\nCrawl-delay: 86400", "http://h.test/robots.txt")
        assert rules.delay(AGENT) == MAX_CRAWL_DELAY
    assert "capped" in caplog.text and "h.test" in caplog.text


def test_answers_4xx_allow_all_5xx_deny_all():
    assert rules_from_answer(404, b"").allowed("http://h.test/a", AGENT)
    assert rules_from_answer(403, b"").allowed("http://h.test/a", AGENT)
    unavailable = rules_from_answer(503, b"User-agent: *\nAllow: /")
    assert not unavailable.allowed("http://h.test/a", AGENT) and not unavailable.available
    assert allowing_all().allowed("http://h.test/", AGENT)
    assert not denying_all().allowed("http://h.test/", AGENT)


# ---- the live crawler on a loopback site ---------------------------------------------------------

PAGES = {
    "/": '<a href="/x/private/1.html">p</a> <a href="/x/public.html">q</a>'
         '<a href="/private/2.html">r</a>',
    "/x/private/1.html": '<img src="/i/1.jpg" alt="must never be seen">',
    "/x/public.html": '<img src="/i/2.jpg" alt="a public picture">',
    "/private/2.html": '<img src="/i/3.jpg" alt="allowed: no slash before private">',
}


def test_crawler_obeys_wildcard_disallow():
    requests: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        requests.append(request.path)
        if request.path == "/robots.txt":
            return web.Response(text="User-agent: *\nDisallow: /*/private\nCrawl-delay: 0.05\n")
        if request.path in PAGES:
            return web.Response(text=PAGES[request.path], content_type="text/html")
        raise web.HTTPNotFound()

    found: dict[str, list[str]] = {}
    stats: Counter = Counter()
    with Server(handle) as server:
        def page(url: str, body: bytes) -> list[str]:
            images, links = parse_page(body, url)
            found[url.removeprefix(server.url)] = [pair.text for pair in images.pairs]
            return links

        settings = WebCrawlSettings(user_agent=AGENT, allow_private=True, timeout=5)
        crawl_web([server.url + "/"], settings, page, stats)
    assert set(found) == {"/", "/x/public.html", "/private/2.html"}
    assert "/x/private/1.html" not in requests and stats["robots"] == 1
    assert requests.count("/robots.txt") == 1


# ---- X-Robots-Tag: one table, both downloaders ---------------------------------------------------

# (header values of one response, opted out for witbuilder with the default directives)
X_ROBOTS_TAGS = [
    ([], False),
    (["noai"], True),
    (["NoImageAI"], True),
    (["noindex, nofollow"], True),
    (["nofollow, noarchive"], False),
    (["max-image-preview:large, noimageai"], True),
    (["max-image-preview: large"], False),
    (["max-snippet:-1, max-video-preview:-1, noai"], True),
    (["unavailable_after: 25 Jun 2010 15:00:00 PST, noai"], True),
    (["unavailable_after: 25 Jun 2010 15:00:00 PST"], False),
    (["otherbot: noai"], False),
    (["otherbot: noai, noindex"], False),
    (["otherbot: max-image-preview:large, noai"], False),
    (["witbuilder: noimageindex"], True),
    (["WitBuilder:noai"], True),
    (["witbuilder: max-image-preview:large, noai"], True),
    (["witbuilder: nofollow"], False),
    (["*: noai"], True),
    (["otherbot: noai", "nofollow"], False),
    (["otherbot: nofollow", "noindex"], True),
]


def their_headers(values: list[str]):
    """img2dataset's headers object for a response (urllib's http.client.HTTPMessage)."""
    import email.parser
    import http.client
    text = "".join(f"X-Robots-Tag: {value}\r\n" for value in values) + "\r\n"
    return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)


@pytest.mark.parametrize("values, expected", X_ROBOTS_TAGS)
def test_x_robots_tag_table_native(values, expected):
    assert opted_out(values, user_agent_token(AGENT)) is expected


@pytest.mark.parametrize("values, expected", X_ROBOTS_TAGS)
def test_x_robots_tag_table_img2dataset(values, expected, monkeypatch):
    """What img2dataset's workers run (its `is_disallowed`, replaced by OptOutChecked)."""
    downloader = pytest.importorskip("img2dataset.downloader")
    monkeypatch.setattr(downloader, "is_disallowed", downloader.is_disallowed)  # undone after
    OptOutChecked(lambda: None)()
    assert downloader.is_disallowed(their_headers(values), user_agent_token(AGENT),
                                    list(HEADER_OPT_OUTS)) is expected


def test_directives_can_be_chosen_and_turned_off():
    assert opted_out(["max-image-preview:large, noimageai"], "witbuilder", ("noimageai",))
    assert not opted_out(["noai"], "witbuilder", ("noindex",))
    assert not opted_out(["noai"], "witbuilder", ())


# ---- the downloaders and each image host's robots.txt ---------------------------------------------

PICTURE = image_bytes(120, 80, seed=7)
IMAGE_PATHS = {  # path → X-Robots-Tag served with the picture
    "/img/a.jpg": None,
    "/x/private/b.jpg": None,                              # robots.txt: Disallow: /*/private
    "/img/preview.jpg": "max-image-preview:large, noimageai",
    "/img/after.jpg": "unavailable_after: 25 Jun 2010 15:00:00 PST, noai",
    "/img/other.jpg": "otherbot: noai",
}


class ImageSite:
    def __init__(self, robots_status: int = 200):
        self.requests: list[str] = []
        self.robots_status = robots_status

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        if request.path == "/robots.txt":
            return web.Response(text="User-agent: *\nDisallow: /*/private\n",
                                status=self.robots_status)
        if request.path not in IMAGE_PATHS:
            raise web.HTTPNotFound()
        tag = IMAGE_PATHS[request.path]
        return web.Response(body=PICTURE, content_type="image/jpeg",
                            headers={"X-Robots-Tag": tag} if tag else {})


def download(workdir, **options) -> tuple[list[str], ImageSite, list[str]]:
    site = ImageSite(options.pop("robots_status", 200))
    with Server(site.handle) as server:
        rows = download_rows(workdir, [server.url + path for path in IMAGE_PATHS], server.origin,
                             image_size=64, **options)
    return [row["status"] for row in rows], site, [row["error"] for row in rows]


EXPECTED = ["ok", "robots", "opted_out", "opted_out", "ok"]


def test_native_downloader_obeys_image_robots(tmp_path):
    statuses, site, errors = download(tmp_path)
    assert errors[1].startswith("robots.txt disallows http://")
    assert statuses == EXPECTED
    assert "/x/private/b.jpg" not in site.requests and site.requests.count("/robots.txt") == 1


def test_no_image_robots_fetches_the_disallowed_image(tmp_path):
    statuses, site, _ = download(tmp_path, image_robots=False)
    assert statuses == ["ok", "ok", "opted_out", "opted_out", "ok"]
    assert "/robots.txt" not in site.requests


def test_unavailable_robots_skips_the_host(tmp_path):
    statuses, site, errors = download(tmp_path, robots_status=503)
    assert all(error.startswith("robots.txt unavailable: host skipped") for error in errors)
    assert statuses == ["robots"] * len(IMAGE_PATHS)
    assert site.requests == ["/robots.txt"]


def test_img2dataset_backend_gives_the_same_answers(tmp_path):
    pytest.importorskip("img2dataset")
    statuses, site, errors = download(tmp_path, downloader="img2dataset")
    assert errors[1].startswith("robots.txt disallows http://")
    assert statuses == EXPECTED
    assert "/x/private/b.jpg" not in site.requests and site.requests.count("/robots.txt") == 1


def test_image_robots_option(cli_overrides):
    assert cli_overrides(["crawl", "--no-image-robots"])["image_robots"] is False
