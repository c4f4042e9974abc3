"""Safety on the open web: never connect to private, loopback, link-local, multicast or reserved
addresses (cloud metadata at 169.254.169.254, the crawler's own network) unless allowed.

Host names are checked where they are resolved (a resolver that drops such addresses, so a name
that points inside cannot be used, whatever redirect led to it); IP literals never reach a
resolver, so every URL (the first and each redirect target) is also checked before connecting.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver


class BlockedAddressError(OSError):
    """A connection refused because the host is (or resolves only to) a non-public address."""

    def __init__(self, host: str, address: str):
        super().__init__(f"{host} resolves to non-public address {address}")
        self.host, self.address = host, address


def is_public_address(address: str) -> bool:
    """True for globally routable unicast addresses (IPv4-mapped IPv6 judged by its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def literal_address(host: str) -> str | None:
    """The address if `host` is an IP literal (brackets of IPv6 removed), else None."""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_url(url: str, allow_private: bool, trusted: Collection[str] = ()) -> None:
    """Raise BlockedAddressError when the URL's host is a non-public IP literal.

    `trusted` lists origins ('host:port') exempt from the guard, such as a local mirror: one
    known server is let through, not the whole private network."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if trusted and origin_netloc(parts.hostname, parts.port, parts.scheme) in trusted:
        return
    address = literal_address(host)
    if address is not None and not is_public_address(address):
        raise BlockedAddressError(host, address)


def origin_netloc(host: str | None, port: int | None, scheme: str = "http") -> str:
    """'host:port' with the scheme's default port filled in (the form `trusted` lists)."""
    port = port or (443 if scheme == "https" else 80)
    host = (host or "").lower()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class GuardedResolver(AbstractResolver):
    """A resolver that only returns public addresses (all of them, when allowed, or when the
    name is the host of a trusted origin: a resolver sees no port, so trust covers the host)."""

    def __init__(self, allow_private: bool = False, resolver: AbstractResolver | None = None,
                 trusted: Collection[str] = ()):
        self.allow_private = allow_private
        self.resolver = resolver or ThreadedResolver()
        self.trusted_hosts = {netloc.rsplit(":", 1)[0].strip("[]").lower() for netloc in trusted}

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        results = await self.resolver.resolve(host, port, family)
        if self.allow_private or host.lower() in self.trusted_hosts:
            return results
        public = [result for result in results if is_public_address(result["host"])]
        if not public:
            raise BlockedAddressError(host, results[0]["host"] if results else "?")
        return public

    async def close(self) -> None:
        await self.resolver.close()
