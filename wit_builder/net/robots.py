"""robots.txt as RFC 9309 says, for every client that fetches from a host: the live crawler (its
pages) and the native downloader (its images), and the img2dataset backend's pre-filter.

Parsing is Protego's (the parser Scrapy uses): `*` and `$` in paths, the longest matching rule
wins, an allow wins a tie, fractional Crawl-delay. A host's rules come from its robots.txt: none
(a 4xx) allows everything; an unreachable one (5xx, timeout, refused) denies everything, as search
engines do, so an outage is never read as permission. A Crawl-delay above MAX_CRAWL_DELAY is
capped (and logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from protego import Protego

from wit_builder.net.http import FetchFailed

log = logging.getLogger(__name__)

MAX_CRAWL_DELAY = 60.0     # seconds: a larger Crawl-delay is capped to this
MAX_ROBOTS_BYTES = 512_000  # RFC 9309 asks parsers to read at least 500 KiB


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def robots_url(url: str) -> str:
    return origin_of(url) + "/robots.txt"


class Rules:
    """One host's robots.txt rules. `available` is False when robots.txt could not be read (the
    host is then denied)."""

    def __init__(self, text: str, available: bool = True, source: str = ""):
        self.parser = Protego.parse(text)
        self.available = available
        self.source = source
        self._delays: dict[str, float] = {}
        # No robots.txt (a 4xx) or an empty one allows every URL: Protego's ~0.04 ms a URL is
        # skipped. Any other text goes through Protego (it also reads misspelt Disallow lines).
        self.allows_everything = available and not text.strip()

    def allowed(self, url: str, user_agent: str) -> bool:
        return self.allows_everything or self.parser.can_fetch(url, user_agent)

    def delay(self, user_agent: str) -> float:
        """The Crawl-delay for `user_agent` in seconds (0.0 when none), capped."""
        if user_agent not in self._delays:
            delay = float(self.parser.crawl_delay(user_agent) or 0.0)
            if delay < 0:
                delay = 0.0
            if delay > MAX_CRAWL_DELAY:
                log.warning("robots: %s asks for Crawl-delay %g s: capped to %g s",
                            self.source or "robots.txt", delay, MAX_CRAWL_DELAY)
                delay = MAX_CRAWL_DELAY
            self._delays[user_agent] = delay
        return self._delays[user_agent]


def rules_from_text(text: str, source: str = "") -> Rules:
    """Rules from a robots.txt body (lines that are not rules are ignored: garbage allows all)."""
    return Rules(text, source=source)


def allowing_all() -> Rules:
    return Rules("")


def denying_all() -> Rules:
    return Rules("User-agent: *\nDisallow: /", available=False)


def rules_from_answer(status: int, body: bytes, source: str = "") -> Rules:
    """A host's rules from the final answer to its robots.txt: 200 → its rules; 4xx → none
    (allow all); anything else → unavailable (deny all)."""
    if status == 200:
        return rules_from_text(body.decode("utf-8", errors="replace"), source)
    if 400 <= status < 500:
        return allowing_all()
    return denying_all()


def denial(rules: Rules, url: str, user_agent: str) -> str | None:
    """None when `url` may be fetched; else why not (a manifest's `error` for status `robots`):
    robots.txt disallows it, or robots.txt could not be read (the host is skipped)."""
    if rules.allowed(url, user_agent):
        return None
    if rules.available:
        return f"robots.txt disallows {url}"[:300]
    return f"robots.txt unavailable: host skipped ({rules.source or origin_of(url)})"[:300]


class RobotsCache:
    """Per-origin rules, each robots.txt fetched once (concurrent askers wait for the one fetch).

    `fetch_answer(robots_url)` returns the final (status, body) of robots.txt, or raises: a
    `FetchFailed` whose status is 'blocked_address' is re-raised (the host is out of bounds,
    the caller's own failure), any other exception makes the host unavailable."""

    def __init__(self, fetch_answer: Callable[[str], Awaitable[tuple[int, bytes]]],
                 on_unavailable: Callable[[str, str], None] | None = None):
        self.fetch_answer = fetch_answer
        self.on_unavailable = on_unavailable
        self.rules: dict[str, Rules] = {}
        self.locks: dict[str, asyncio.Lock] = {}

    def known(self, url: str) -> Rules | None:
        return self.rules.get(origin_of(url))

    async def get(self, url: str) -> Rules:
        origin = origin_of(url)
        if origin in self.rules:
            return self.rules[origin]
        lock = self.locks.setdefault(origin, asyncio.Lock())
        async with lock:
            if origin not in self.rules:
                self.rules[origin] = await self.load(origin + "/robots.txt")
        return self.rules[origin]

    async def load(self, url: str) -> Rules:
        try:
            status, body = await self.fetch_answer(url)
        except FetchFailed as failure:
            if failure.status == "blocked_address":
                raise
            reason = failure.status
            rules = denying_all()
        except (asyncio.TimeoutError, OSError) as error:
            reason = type(error).__name__
            rules = denying_all()
        else:
            rules = rules_from_answer(status, body, url)
            reason = f"HTTP {status}"
        if not rules.available:
            rules.source = f"{url}: {reason}"
            log.info("robots: %s unavailable (%s): host skipped", url, reason)
            if self.on_unavailable is not None:
                self.on_unavailable(url, reason)
        return rules

    async def denial(self, url: str, user_agent: str) -> str | None:
        return denial(await self.get(url), url, user_agent)
