"""Fetch one image URL for the native downloader: net.http's guarded client (the address guard at
every hop, redirects followed by hand and capped, the body abandoned past the byte cap), plus
retries with exponential backoff for timeouts, resets and 5xx, the image host's robots.txt
(net.robots, RFC 9309: fetched once per host by each worker's `RobotsCache`, checked at every hop;
status `robots`, also when robots.txt cannot be read: 5xx, unreachable), and the image opt-outs of
`X-Robots-Tag` (net.optout's table); URLs on a `--block-urls` list are refused at every hop
(crawl.blocklists).

Failures are results, not exceptions: every URL ends as a `Fetched` with a manifest status.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import cached_property

import aiohttp

from wit_builder.crawl.blocklists import Blocklist
from wit_builder.net.guard import AddressPolicy
from wit_builder.net.http import Client, FetchFailed, check_status
from wit_builder.net.optout import (HEADER_OPT_OUTS, header_directives, opt_out_message,
                                    opted_out, user_agent_token)
from wit_builder.net.robots import MAX_ROBOTS_BYTES, RobotsCache

# header_directives: crawl.download builds FetchSettings from the crawl's options with it
__all__ = ["FetchSettings", "Fetched", "open_session", "robots_cache", "fetch",
           "header_directives"]


@dataclass(frozen=True)
class FetchSettings:
    user_agent: str = "witbuilder/0.1"
    timeout: float = 20.0
    retries: int = 2
    backoff: float = 0.5       # seconds before the first retry, doubled at each one
    max_bytes: int = 20_000_000
    max_redirects: int = 5
    concurrency: int = 128
    per_host: int = 16
    allow_private: bool = False
    trusted_origins: tuple[str, ...] = ()
    disallowed_directives: tuple[str, ...] = HEADER_OPT_OUTS  # () stores every image
    image_robots: bool = True  # obey each image host's robots.txt
    blocklist: Blocklist = Blocklist()  # --block-urls (checked at every hop), --block-hashes

    @cached_property
    def policy(self) -> AddressPolicy:
        return AddressPolicy(self.allow_private, self.trusted_origins)


@dataclass
class Fetched:
    status: str                # a manifest status; "ok" means `body` holds the image bytes
    http_status: int | None = None
    error: str | None = None
    body: bytes = b""
    seconds: float = 0.0


def open_session(settings: FetchSettings) -> Client:
    """One client per worker (`async with`): pooled connections, a DNS cache, the guard."""
    return Client(settings.policy, user_agent=settings.user_agent, timeout=settings.timeout,
                  concurrency=settings.concurrency, per_host=settings.per_host)


def robots_cache(client: Client, settings: FetchSettings) -> RobotsCache | None:
    """The robots.txt rules of the hosts `client` fetches from (one fetch per host, through the
    same guarded client), or None when `settings.image_robots` is off."""
    if not settings.image_robots:
        return None

    async def answer(robots_url: str) -> tuple[int, bytes]:
        response = await client.get(robots_url, max_bytes=MAX_ROBOTS_BYTES,
                                    max_redirects=settings.max_redirects,
                                    read_body=lambda _, reply: reply.status == 200)
        return response.status, response.body

    return RobotsCache(answer)


async def fetch(client: Client, url: str, settings: FetchSettings,
                robots: RobotsCache | None = None) -> Fetched:
    """Download `url`, retrying transient failures; never raises for network problems. With
    `robots` (`robots_cache`), every hop must be allowed by its host's robots.txt."""
    started = time.monotonic()
    agent = user_agent_token(settings.user_agent)

    @asynccontextmanager
    async def hop(hop_url: str):
        if settings.blocklist.blocks_url(hop_url):
            raise FetchFailed("blocked_url", "on a --block-urls list")
        refused = await robots.denial(hop_url, settings.user_agent) if robots is not None \
            else None
        if refused is not None:
            raise FetchFailed("robots", refused)
        yield

    def read_body(_: str, response: aiohttp.ClientResponse) -> bool:
        """Only a 200's body, and not when it opts out (decided before the body is read)."""
        if response.status != 200:
            return False
        robots_tags = response.headers.getall("X-Robots-Tag", [])
        if opted_out(robots_tags, agent, settings.disallowed_directives):
            raise FetchFailed("opted_out", opt_out_message(robots_tags), 200)
        return True

    for attempt in range(settings.retries + 1):
        try:
            answer = await client.get(url, max_bytes=settings.max_bytes,
                                      max_redirects=settings.max_redirects, read_body=read_body,
                                      hop=hop if robots is not None or settings.blocklist
                                      else None)
            check_status(answer.status)
            return Fetched("ok", 200, None, answer.body, time.monotonic() - started)
        except FetchFailed as failure:
            if not failure.retry or attempt == settings.retries:
                return Fetched(failure.status, failure.http_status, failure.error, b"",
                               time.monotonic() - started)
        await asyncio.sleep(settings.backoff * 2 ** attempt)
    raise AssertionError("unreachable")
