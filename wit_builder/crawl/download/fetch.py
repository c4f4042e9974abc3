"""Fetch one image URL with aiohttp: the address guard before every hop, redirects followed by
hand and capped, the body streamed and abandoned past the byte cap, retries with exponential
backoff for timeouts, resets and 5xx, and the image opt-outs of `X-Robots-Tag`.

Failures are results, not exceptions: every URL ends as a `Fetched` with a manifest status.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urljoin

import aiohttp

from wit_builder.net.body import BodyTooLarge, read_capped
from wit_builder.net.guard import AddressPolicy, BlockedAddressError

REDIRECTS = {301, 302, 303, 307, 308}
# img2dataset's default list, so that both downloaders refuse the same images out of the box.
OPT_OUT_DIRECTIVES = ("noai", "noimageai", "noindex", "noimageindex")


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
    disallowed_directives: tuple[str, ...] = OPT_OUT_DIRECTIVES  # () stores every image

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


class FetchFailed(Exception):
    def __init__(self, status: str, error: str, http_status: int | None = None,
                 retry: bool = False):
        super().__init__(error)
        self.status, self.error, self.http_status, self.retry = status, error, http_status, retry


def open_session(settings: FetchSettings) -> aiohttp.ClientSession:
    """One session per worker: pooled connections, a DNS cache and the guarded resolver."""
    connector = aiohttp.TCPConnector(
        limit=settings.concurrency, limit_per_host=settings.per_host, ttl_dns_cache=300,
        resolver=settings.policy.resolver())
    timeout = aiohttp.ClientTimeout(total=settings.timeout,
                                    sock_connect=min(10.0, settings.timeout),
                                    sock_read=min(10.0, settings.timeout))
    return aiohttp.ClientSession(connector=connector, timeout=timeout,
                                 headers={"User-Agent": settings.user_agent},
                                 cookie_jar=aiohttp.DummyCookieJar())


def user_agent_token(user_agent: str) -> str:
    """The product name robots directives address us by ('witbuilder/0.1 (...)' → 'witbuilder')."""
    return user_agent.split("/", 1)[0].split()[0].lower() if user_agent.strip() else ""


def header_directives(values: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The X-Robots-Tag directives to honour, from option values that may each hold a comma
    list ('noai,noindex'); empty items are dropped, so `['']` or `[]` disables the check."""
    directives = (part.strip().lower() for value in values for part in value.split(","))
    return tuple(dict.fromkeys(directive for directive in directives if directive))


def opted_out(header_values: list[str], agent: str,
              disallowed: tuple[str, ...] = OPT_OUT_DIRECTIVES) -> bool:
    """True when an X-Robots-Tag value gives one of the `disallowed` directives to everyone or
    to `agent`.

    Values look like 'noai', 'noindex, noimageai' or 'otherbot: noai' (scoped to one agent)."""
    if not disallowed:
        return False
    for value in header_values:
        scope = None
        for part in value.split(","):
            part = part.strip().lower()
            if ":" in part:
                scope, part = (piece.strip() for piece in part.split(":", 1))
            if part in disallowed and scope in (None, "*", agent):
                return True
    return False


async def request_once(session: aiohttp.ClientSession, url: str, settings: FetchSettings,
                       agent: str) -> tuple[int, str | None, bytes]:
    """(HTTP status, redirect location, body) of one request; FetchFailed on any failure."""
    try:
        async with session.get(url, allow_redirects=False) as response:
            if response.status in REDIRECTS:
                return response.status, response.headers.get("Location"), b""
            if response.status >= 500:
                raise FetchFailed("http_error", f"HTTP {response.status}", response.status,
                                  retry=True)
            if response.status != 200:
                raise FetchFailed("http_error", f"HTTP {response.status}", response.status)
            robots_tags = response.headers.getall("X-Robots-Tag", [])
            if opted_out(robots_tags, agent, settings.disallowed_directives):
                raise FetchFailed("opted_out", f"X-Robots-Tag: {'; '.join(robots_tags)}"[:300],
                                  200)
            return 200, None, await read_capped(response, settings.max_bytes)
    except BodyTooLarge as error:
        raise FetchFailed("too_large", str(error)) from None
    except asyncio.TimeoutError:
        raise FetchFailed("timeout", f"no complete answer within {settings.timeout}s",
                          retry=True) from None
    except aiohttp.ClientConnectorError as error:
        if isinstance(getattr(error, "os_error", None), BlockedAddressError):
            raise FetchFailed("blocked_address", str(error.os_error)) from None
        raise FetchFailed("connection_error", str(error) or type(error).__name__,
                          retry=True) from None
    except aiohttp.InvalidURL as error:
        raise FetchFailed("connection_error", f"invalid URL: {error}") from None
    except (aiohttp.ClientError, OSError, ValueError) as error:
        raise FetchFailed("connection_error", f"{type(error).__name__}: {error}"[:300],
                          retry=True) from None


async def follow_redirects(session: aiohttp.ClientSession, url: str, settings: FetchSettings,
                           agent: str) -> bytes:
    """The body at the end of the redirect chain, every hop checked by the address guard."""
    chain, policy = [url], settings.policy
    for _ in range(settings.max_redirects + 1):
        try:
            policy.check_url(url)
        except BlockedAddressError as error:
            raise FetchFailed("blocked_address", str(error)) from None
        except ValueError as error:
            raise FetchFailed("connection_error", f"invalid URL: {error}") from None
        status, location, body = await request_once(session, url, settings, agent)
        if status not in REDIRECTS:
            return body
        if not location:
            raise FetchFailed("http_error", f"HTTP {status} without Location", status)
        url = urljoin(url, location)
        if url in chain:
            raise FetchFailed("redirect_loop", f"redirect back to {url}", status)
        chain.append(url)
    raise FetchFailed("redirect_loop", f"more than {settings.max_redirects} redirects")


async def fetch(session: aiohttp.ClientSession, url: str, settings: FetchSettings) -> Fetched:
    """Download `url`, retrying transient failures; never raises for network problems."""
    started = time.monotonic()
    agent = user_agent_token(settings.user_agent)
    for attempt in range(settings.retries + 1):
        try:
            body = await follow_redirects(session, url, settings, agent)
            return Fetched("ok", 200, None, body, time.monotonic() - started)
        except FetchFailed as failure:
            if not failure.retry or attempt == settings.retries:
                return Fetched(failure.status, failure.http_status, failure.error, b"",
                               time.monotonic() - started)
        await asyncio.sleep(settings.backoff * 2 ** attempt)
    raise AssertionError("unreachable")
