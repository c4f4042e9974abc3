"""Safety on the open web: never connect to private, loopback, link-local, multicast or reserved
addresses (cloud metadata at 169.254.169.254, the crawler's own network), in any spelling,
unless allowed.

One `AddressPolicy` guards every HTTP client we run:
- aiohttp (net.http.Client: native downloader, live crawler): `check_url` on every URL before it
  is requested (the first and each redirect target; IP literals never reach a resolver) and
  `resolver()`, which drops non-public DNS answers, so a name that points inside cannot be used
  whatever led to it;
- http.client (net.http.open_stream: WARC files, Wikipedia dumps): `check_url` on every hop and
  `guarded_connect`, which connects only to the addresses the policy allows for the host;
- urllib in img2dataset's worker processes, whose requests we never see one by one:
  `GuardedWorker` guards the process it runs in below urllib (`getaddrinfo` keeps only the
  addresses the policy allows, for the first URL, every redirect, names and literals alike).
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from yarl import URL

# Spelled out rather than left to `ipaddress.is_global`, whose lists change between Python
# versions (3.11 calls NAT64, 6to4, 192.0.0.8 and multicast global).
BLOCKED_IPV4 = tuple(IPv4Network(net) for net in (
    "0.0.0.0/8",        # "this network": 0.0.0.0 reaches the local host on Linux
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",  # private
    "100.64.0.0/10",    # carrier-grade NAT: the provider's side of the network
    "127.0.0.0/8",      # loopback
    "169.254.0.0/16",   # link-local, cloud metadata at 169.254.169.254
    "192.0.0.0/24",     # IETF protocol assignments (DS-Lite, NAT64 discovery, ...)
    "192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24",  # documentation
    "192.88.99.0/24",   # 6to4 relay anycast
    "198.18.0.0/15",    # benchmarking
    "224.0.0.0/4",      # multicast
    "240.0.0.0/4",      # reserved, and the broadcast 255.255.255.255
))
BLOCKED_IPV6 = tuple(IPv6Network(net) for net in (
    "64:ff9b:1::/48",   # local-use NAT64 (RFC 8215): may translate to any IPv4, private included
    "100::/64",         # discard-only
    "2001:db8::/32", "3fff::/20",  # documentation
    "fc00::/7",         # unique-local
    "fe80::/10",        # link-local
    "fec0::/10",        # site-local (deprecated, still routed by some stacks)
    "ff00::/8",         # multicast
))
# IPv6 prefixes whose last 32 bits are an IPv4 address that a packet reaches (or stands for):
# IPv4-mapped, IPv4-translated (SIIT), IPv4-compatible (holds :: and ::1), well-known NAT64.
IPV4_IN_LAST_32_BITS = tuple(IPv6Network(net) for net in (
    "::ffff:0:0/96", "::ffff:0:0:0/96", "::/96", "64:ff9b::/96"))
HTTP_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}


class BlockedAddressError(OSError):
    """A connection refused because the host is (or resolves only to) a non-public address."""

    def __init__(self, host: str, address: str):
        if host == address:
            super().__init__(f"{host} is a non-public address")
        else:
            super().__init__(f"{host} resolves to non-public address {address}")
        self.host, self.address = host, address


def embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address embeds (a packet to it ends up there): Teredo's
    server and client, 6to4's router, or the last 32 bits of the IPV4_IN_LAST_32_BITS forms."""
    if ip.teredo is not None:
        return ip.teredo
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if any(ip in net for net in IPV4_IN_LAST_32_BITS):
        return (IPv4Address(int(ip) & 0xFFFF_FFFF),)
    return ()


def is_public_ipv4(ip: IPv4Address) -> bool:
    return ip.is_global and not any(ip in net for net in BLOCKED_IPV4)


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses; an IPv6 address that embeds IPv4 addresses
    (mapped, NAT64, 6to4, Teredo, ...) is judged by them."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, IPv4Address):
        return is_public_ipv4(ip)
    if any(ip in net for net in BLOCKED_IPV6):
        return False
    embedded = embedded_ipv4(ip)
    if embedded:
        return all(is_public_ipv4(ipv4) for ipv4 in embedded)
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    """The canonical address if `host` is an IP literal, else None. Also the legacy IPv4 forms
    that C resolvers accept ('127.1', '2130706433', '0x7f.0.0.1', '0177.0.0.1'), and a trailing
    dot, so that no spelling of an address passes for a name."""
    host = host.strip("[]")
    host = host[:-1] if host.endswith(".") else host
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    # inet_aton ignores what follows a space: only hex digits, 'x' and dots are a number.
    if host and all(char in "0123456789abcdefxABCDEFX." for char in host):
        try:
            return socket.inet_ntoa(socket.inet_aton(host))
        except OSError:
            return None
    return None


def parse_origin(origin: str) -> tuple[str, int]:
    """('host', port) of a trusted origin: 'host:port', '[v6]:port' or 'scheme://host[:port]'."""
    url = URL(origin if "://" in origin else f"http://{origin}")
    if not url.raw_host or (url.explicit_port is None and "://" not in origin):
        raise ValueError(f"trusted origin {origin!r}: give it as HOST:PORT")
    return canonical_host(url.raw_host), url.port


def origin_netloc(host: str | None, port: int | None, scheme: str = "http") -> str:
    """'host:port' with the scheme's default port filled in (the form trusted origins take)."""
    port = port or DEFAULT_PORTS.get(scheme, 80)
    host = (host or "").lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def canonical_host(host: str) -> str:
    """A host as trusted origins are compared: literals in canonical form, names lower-cased."""
    return literal_address(host) or host.lower()


@dataclass(frozen=True)
class AddressPolicy:
    """Where a client may connect: public addresses; anywhere when `allow_private`; and the exact
    `trusted_origins` ('host:port', such as a mirror on the local network: one known server, not
    the whole network, and not the same host on another port)."""

    allow_private: bool = False
    trusted_origins: tuple[str, ...] = ()
    trusted: frozenset[tuple[str, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "trusted_origins", tuple(self.trusted_origins))
        object.__setattr__(self, "trusted",
                           frozenset(parse_origin(origin) for origin in self.trusted_origins))

    def trusts(self, host: str, port: int | None) -> bool:
        return (canonical_host(host), port) in self.trusted

    def allows(self, host: str, port: int | None, address: str) -> bool:
        """Whether a connection to `address`, reached as `host:port`, is allowed."""
        return self.allow_private or self.trusts(host, port) or is_public_address(address)

    def check_url(self, url: str) -> None:
        """Raise BlockedAddressError when the URL's host is an IP literal the policy refuses,
        ValueError when it is not an http(s) URL with a host. Parsed by yarl, as aiohttp does,
        so that the host judged is the host connected to."""
        parsed = URL(url)
        if parsed.scheme not in HTTP_SCHEMES or not parsed.raw_host:
            raise ValueError(f"not an http(s) URL with a host: {url[:200]!r}")
        address = literal_address(parsed.raw_host)
        if address is not None and not self.allows(parsed.raw_host, parsed.port, address):
            raise BlockedAddressError(parsed.raw_host, address)

    def resolver(self, resolver: AbstractResolver | None = None) -> GuardedResolver:
        """An aiohttp resolver that only returns the addresses this policy allows."""
        return GuardedResolver(self, resolver)


class GuardedResolver(AbstractResolver):
    """A resolver that only returns the addresses its policy allows. aiohttp hands it the URL's
    port too, so a trusted origin's name on another port gets public addresses only."""

    def __init__(self, policy: AddressPolicy, resolver: AbstractResolver | None = None):
        self.policy = policy
        # Threaded (the system's getaddrinfo), never aiodns: /etc/hosts and the OS's own rules
        # apply, as they do to every other program on the machine.
        self.resolver = resolver or ThreadedResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.resolver.resolve(host, port, family)
        allowed = [result for result in results
                   if self.policy.allows(host, port, result["host"])]
        if not allowed:
            raise BlockedAddressError(host, results[0]["host"] if results else "?")
        return allowed

    async def close(self) -> None:
        await self.resolver.close()


def guarded_getaddrinfo(policy: AddressPolicy, getaddrinfo: Callable) -> Callable:
    """`getaddrinfo` keeping only the answers `policy` allows; BlockedAddressError when none is
    left. Every connection through Python's sockets (urllib, ftplib, ...) resolves through it,
    IP literals included, so it sees each hop's exact host and port."""

    def resolve(host, port, *args, **kwargs):
        results = getaddrinfo(host, port, *args, **kwargs)
        name = host.decode() if isinstance(host, bytes) else str(host)
        number = int(port) if str(port).isdigit() else None  # a service name: only public
        allowed = [result for result in results if policy.allows(name, number, result[4][0])]
        if results and not allowed:
            raise BlockedAddressError(name, results[0][4][0])
        return allowed

    return resolve


def guarded_connect(policy: AddressPolicy, address: tuple[str, int],
                    timeout: float | None | object = socket._GLOBAL_DEFAULT_TIMEOUT,
                    source_address: tuple[str, int] | None = None) -> socket.socket:
    """`socket.create_connection` to (host, port) that only tries the addresses `policy` allows
    for that host and port (BlockedAddressError when it allows none): what a blocking client
    (net.http.open_stream) connects through, without guarding the whole process."""
    host, port = address
    # socket.getaddrinfo looked up now, not at import: the one this process resolves with
    resolve = guarded_getaddrinfo(policy, socket.getaddrinfo)
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in resolve(host, port, 0, socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as failure:
            error = failure
            sock.close()
    raise error or OSError(f"no address to connect to for {host!r}")


class GuardedRedirectHandler(urllib.request.HTTPRedirectHandler):
    """urllib's redirects, each target checked by the policy as the native downloader checks
    them (and only to http(s): urllib would also follow one to ftp)."""

    def __init__(self, policy: AddressPolicy):
        self.policy = policy

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        try:
            self.policy.check_url(newurl)
        except (OSError, ValueError):  # BlockedAddressError is an OSError
            fp.close()
            raise
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_unguarded_getaddrinfo: Callable | None = None
_guarded_by: AddressPolicy | None = None


def guard_this_process(policy: AddressPolicy) -> None:
    """Guard every connection this process makes through Python's sockets and urllib (no proxy,
    whose far side we could not check; redirects checked). Process-wide on purpose: for worker
    processes of a library (img2dataset) that fetches in threads we cannot reach; idempotent."""
    global _unguarded_getaddrinfo, _guarded_by
    if _guarded_by == policy:
        return
    if _unguarded_getaddrinfo is None:
        _unguarded_getaddrinfo = socket.getaddrinfo
    socket.getaddrinfo = guarded_getaddrinfo(policy, _unguarded_getaddrinfo)
    urllib.request.install_opener(urllib.request.build_opener(
        urllib.request.ProxyHandler({}), GuardedRedirectHandler(policy)))
    _guarded_by = policy


@dataclass(frozen=True)
class GuardedWorker:
    """`function`, run with the process it runs in guarded first: a picklable callable for a
    process pool, so that every worker is guarded whatever started it (spawn or fork)."""

    function: Callable
    policy: AddressPolicy

    def __call__(self, *args, **kwargs):
        guard_this_process(self.policy)
        return self.function(*args, **kwargs)
