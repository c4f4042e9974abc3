"""The one guarded HTTP client, for every request that leaves the machine, and the one vocabulary
of what became of a request.

- `Client` (aiohttp; the live crawler, the native downloader): one pooled session whose resolver
  drops the addresses the `AddressPolicy` refuses, a total/connect/read timeout, the user agent,
  no cookies; `Client.get` follows redirects by hand, the policy checked at every hop, a redirect
  back into the chain or past `max_redirects` is a `redirect_loop`, the body read under a cap.
  What a caller adds to a hop (robots.txt and politeness, an opt-out header) it passes as hooks.
- `open_stream` (blocking; WARC files and Wikipedia dumps read as they arrive): the same hops,
  checks and statuses over http.client, every connection made to an address the policy allows.
- `guarded_session` (fsspec's HTTP filesystem, which `core.store` gives every http(s) URL it
  reads: pools, ranged parquet reads): an aiohttp session whose `GuardedConnector` checks every
  hop aiohttp connects for, redirects it follows by itself included, and resolves through the
  policy.

Everything that goes wrong is a `FetchFailed(status, error, http_status, retry)` whose status is
one of `STATUSES`.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import io
import ssl
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from wit_builder.core import store
from wit_builder.net.body import BodyTooLarge, read_capped
from wit_builder.net.guard import HTTP_SCHEMES, AddressPolicy, BlockedAddressError, guarded_connect

REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_USER_AGENT = "witbuilder/0.1 (+https://github.com/witbuilder/witbuilder)"

# status -> what it means. The first block is the crawl manifest's (core.schemas.CRAWL_STATUSES,
# DESIGN.md), whichever downloader ran; the second, the live crawler's page-level counts
# (crawl_stats.json).
STATUSES = {
    "ok": "stored (a page: fetched and handed over)",
    "http_error": "the final answer was not 200 (a 5xx is worth a retry)",
    "timeout": "no complete answer within the timeout",
    "too_large": "the body passed the byte cap, declared or streamed",
    "not_image": "the body is no image format we decode",
    "decode_error": "the image does not decode (truncated, a decompression bomb, ...)",
    "too_small": "the image is smaller than --min-size",
    "bad_aspect_ratio": "the image is more elongated than --max-aspect-ratio",
    "blocked_address": "the address guard refused a hop: a non-public literal, a name that "
                       "resolves only inside, or a redirect to either",
    "opted_out": "an X-Robots-Tag opt-out (net.optout)",
    "robots": "robots.txt disallows the URL",
    "redirect_loop": "a redirect back into the chain, or more than max_redirects",
    "connection_error": "no answer: refused, reset, DNS, TLS, a body cut short, not http(s)",
    "blocked_url": "the URL, or a redirect hop, is on a --block-urls list: never requested",
    "blocked_hash": "the body's MD5, SHA-1 or SHA-256, or the decoded picture's pHash, is on a "
                    "--block-hashes list: dropped in memory, never written",
    "nsfw": "the image's NSFW score is over --nsfw-threshold: dropped before it is encoded",
    "off_site_redirect": "a page redirected to a host the crawl does not visit",
    "not_html": "a page answered 200 with something else than HTML",
    "robots_unavailable": "robots.txt failed or answered 5xx: the host is skipped",
}


class FetchFailed(Exception):
    """A request that gave no usable answer. `status` is one of STATUSES, `error` the manifest's
    message, `http_status` the last answer's code (if any), `retry` whether it is transient (a
    timeout, a reset, a 5xx)."""

    def __init__(self, status: str, error: str = "", http_status: int | None = None,
                 retry: bool = False):
        if status not in STATUSES:
            raise ValueError(f"unknown fetch status {status!r}")
        super().__init__(error or status)
        self.status, self.error, self.http_status, self.retry = status, error, http_status, retry


def is_http_url(location: object) -> bool:
    """A URL this client fetches (http or https), as opposed to a local path or a store URL."""
    # the scheme as written before "://" (urlsplit would raise on a malformed IPv6 host)
    return store.is_url(location) and str(location).split("://", 1)[0].lower() in HTTP_SCHEMES


def check_hop(policy: AddressPolicy, url: str) -> None:
    """The policy's verdict on a URL about to be requested, as a FetchFailed."""
    try:
        policy.check_url(url)
    except BlockedAddressError as error:
        raise FetchFailed("blocked_address", str(error)) from None
    except ValueError as error:
        raise FetchFailed("connection_error", f"invalid URL: {error}") from None


def next_hop(chain: list[str], url: str, location: str, http_status: int) -> str:
    """Where a redirect from `url` leads, appended to `chain`; a redirect_loop when it leads back
    into the chain."""
    target = urljoin(url, location)
    if target in chain:
        raise FetchFailed("redirect_loop", f"redirect back to {target}", http_status)
    chain.append(target)
    return target


def too_many_redirects(max_redirects: int) -> FetchFailed:
    return FetchFailed("redirect_loop", f"more than {max_redirects} redirects")


def check_status(http_status: int) -> None:
    """An http_error unless the final answer is a 200 (a redirect without Location included)."""
    if http_status == 200:
        return
    detail = " without Location" if http_status in REDIRECTS else ""
    raise FetchFailed("http_error", f"HTTP {http_status}{detail}", http_status,
                      retry=http_status >= 500)


# ---- the aiohttp client -------------------------------------------------------------------------

@dataclass
class Response:
    url: str                        # the final URL, after redirects
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes                     # b"" unless the caller's `read_body` asked for it


def answered_200(url: str, response: aiohttp.ClientResponse) -> bool:
    return response.status == 200


class Client:
    """One guarded aiohttp session (open it with `async with`). `concurrency` connections in
    all, `per_host` to one host (0: no limit); `timeout` seconds for a whole request, at most 10
    to connect and between two reads."""

    def __init__(self, policy: AddressPolicy, *, user_agent: str = DEFAULT_USER_AGENT,
                 timeout: float = 20.0, concurrency: int = 100, per_host: int = 0):
        self.policy, self.user_agent, self.timeout = policy, user_agent, timeout
        self.concurrency, self.per_host = concurrency, per_host
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        connector = aiohttp.TCPConnector(
            limit=self.concurrency, limit_per_host=self.per_host, ttl_dns_cache=300,
            resolver=self.policy.resolver())
        timeout = aiohttp.ClientTimeout(total=self.timeout, sock_connect=min(10.0, self.timeout),
                                        sock_read=min(10.0, self.timeout))
        self.session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                             headers={"User-Agent": self.user_agent},
                                             cookie_jar=aiohttp.DummyCookieJar())
        return self

    async def __aexit__(self, *exc) -> None:
        await self.session.close()

    async def get(self, url: str, *, max_bytes: int, max_redirects: int = 5,
                  read_body: Callable[[str, aiohttp.ClientResponse], bool] = answered_200,
                  hop: Callable[[str], AbstractAsyncContextManager] | None = None,
                  follow: Callable[[str], None] | None = None, method: str = "GET") -> Response:
        """The final answer to a GET (or `method`: HEAD) of `url`, whatever its status, after
        redirects; FetchFailed when there is none. Hooks: `hop(url)` is entered around each request (the crawler's
        robots check and per-host slot); `follow(target)` may refuse a redirect target by
        raising FetchFailed; `read_body(url, response)` says whether to read the final answer's
        body (under `max_bytes`), or refuses the answer by raising FetchFailed (an opt-out)."""
        chain = [url]
        for _ in range(max_redirects + 1):
            check_hop(self.policy, url)
            async with hop(url) if hop is not None else nullcontext():
                status, headers, location, body = await self.request(url, max_bytes, read_body,
                                                                     method)
            if location is None:
                return Response(url, status, headers, body)
            url = next_hop(chain, url, location, status)
            if follow is not None:
                follow(url)
        raise too_many_redirects(max_redirects)

    async def request(self, url: str, max_bytes: int,
                      read_body: Callable[[str, aiohttp.ClientResponse], bool],
                      method: str = "GET"
                      ) -> tuple[int, CIMultiDictProxy[str], str | None, bytes]:
        """(status, headers, redirect target or None, body) of one request."""
        try:
            async with self.session.request(method, url, allow_redirects=False) as response:
                location = response.headers.get("Location")
                if response.status in REDIRECTS and location:
                    return response.status, response.headers, location, b""
                body = await read_capped(response, max_bytes) if read_body(url, response) else b""
                return response.status, response.headers, None, body
        except BodyTooLarge as error:
            raise FetchFailed("too_large", str(error)) from None
        except asyncio.TimeoutError:
            raise FetchFailed("timeout", f"no complete answer within {self.timeout}s",
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


# ---- fsspec's HTTP filesystem -------------------------------------------------------------------

class GuardedConnector(aiohttp.TCPConnector):
    """A TCPConnector that connects only where `policy` allows: the URL of every connection it is
    asked for is checked first (the first request and each redirect aiohttp follows by itself:
    IP literals never reach a resolver), and names resolve through the policy's resolver."""

    def __init__(self, policy: AddressPolicy, **kwargs):
        super().__init__(resolver=policy.resolver(), **kwargs)
        self.policy = policy

    async def connect(self, req, traces, timeout):
        self.policy.check_url(str(req.url))  # BlockedAddressError (an OSError), ValueError
        return await super().connect(req, traces, timeout)


async def guarded_session(policy: AddressPolicy, **kwargs) -> aiohttp.ClientSession:
    """fsspec's `get_client` for its HTTP filesystem (bind the policy with functools.partial):
    a session that connects through a GuardedConnector, never through a proxy from the
    environment (whose far side we could not check)."""
    return aiohttp.ClientSession(**{**kwargs, "connector": GuardedConnector(policy),
                                    "trust_env": False})


def blocked_address(error: BaseException | None) -> BlockedAddressError | None:
    """The BlockedAddressError behind an error, if any (fsspec reports a refused connection as
    FileNotFoundError, aiohttp wraps it in ClientConnectorError)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, BlockedAddressError):
            return error
        nested = getattr(error, "os_error", None)
        if isinstance(nested, BlockedAddressError):
            return nested
        error = error.__cause__ or error.__context__
    return None


# ---- the blocking stream ------------------------------------------------------------------------

class GuardedHTTPConnection(http.client.HTTPConnection):
    """An http.client connection that only connects to addresses `policy` allows."""

    def __init__(self, host: str, port: int | None, policy: AddressPolicy, timeout: float):
        super().__init__(host, port, timeout=timeout)
        guard_connection(self, policy)


class GuardedHTTPSConnection(http.client.HTTPSConnection):
    """The TLS twin of GuardedHTTPConnection (certificates checked against the host name)."""

    def __init__(self, host: str, port: int | None, policy: AddressPolicy, timeout: float):
        super().__init__(host, port, timeout=timeout, context=tls_context())
        guard_connection(self, policy)


@functools.lru_cache(maxsize=1)
def tls_context() -> ssl.SSLContext:
    """The system's certificates, hostnames checked (loaded once: it takes milliseconds)."""
    return ssl.create_default_context()


def guard_connection(connection: http.client.HTTPConnection, policy: AddressPolicy) -> None:
    # http.client connects through this attribute (HTTPS wraps the socket it returns); fail
    # closed should a Python version stop doing so.
    if not callable(getattr(connection, "_create_connection", None)):
        raise RuntimeError("this Python's http.client cannot be guarded")
    connection._create_connection = functools.partial(guarded_connect, policy)


def blocking_request(url: str, policy: AddressPolicy, timeout: float, user_agent: str
                     ) -> StreamBody:
    """The answer to one GET, its body not read yet; FetchFailed when there is none."""
    parsed = URL(url)
    kind = GuardedHTTPSConnection if parsed.scheme == "https" else GuardedHTTPConnection
    connection = None
    try:
        connection = kind(parsed.raw_host, parsed.port, policy, timeout)
        # identity: the bytes as stored (a .gz stays gzip, decoded by whoever reads it)
        connection.request("GET", parsed.raw_path_qs or "/",
                           headers={"User-Agent": user_agent, "Accept-Encoding": "identity"})
        return StreamBody(connection, connection.getresponse())
    except BlockedAddressError as error:
        failure = FetchFailed("blocked_address", str(error))
    except TimeoutError:
        failure = FetchFailed("timeout", f"no complete answer within {timeout}s", retry=True)
    except (OSError, http.client.HTTPException, ValueError) as error:
        failure = FetchFailed("connection_error", f"{type(error).__name__}: {error}"[:300],
                              retry=True)
    if connection is not None:
        connection.close()
    raise failure


class StreamBody(io.RawIOBase):
    """An answer's body as a read-only binary file that knows how far it has read (`tell`, as
    archive readers such as FastWARC ask of their input); closing it closes the connection."""

    def __init__(self, connection: http.client.HTTPConnection,
                 response: http.client.HTTPResponse):
        self.connection, self.response, self.position = connection, response, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = self.response.readinto(buffer)
        self.position += count
        return count

    def tell(self) -> int:
        return self.position

    def close(self) -> None:
        self.response.close()
        self.connection.close()
        super().close()


@contextmanager
def open_stream(url: str, policy: AddressPolicy, *, timeout: float = 60.0,
                max_redirects: int = 10, user_agent: str = DEFAULT_USER_AGENT
                ) -> Iterator[BinaryIO]:
    """The body of a GET of `url` as a binary file, read as it arrives (never saved, never
    decoded), after redirects followed by hand with the policy checked at every hop and at
    connect time; FetchFailed when the final answer is not a 200 or there is none. `timeout`
    bounds each connect and each read."""
    chain = [url]
    for _ in range(max_redirects + 1):
        check_hop(policy, url)
        with blocking_request(url, policy, timeout, user_agent) as body:
            status, location = body.response.status, body.response.getheader("Location")
            if status in REDIRECTS and location:
                url = next_hop(chain, url, location, status)
                continue
            check_status(status)
            yield body
            return
    raise too_many_redirects(max_redirects)
