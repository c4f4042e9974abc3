"""The one canonical form of an http(s) URL, for images (before the dedupe, the uid and the fetch)
and pages (before the live crawler's seen-set and fetch), and for the URLs of lists that name them
(blocklists, takedown lists): `a b.jpg` and `a%20b.jpg` are one URL."""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit, urlunsplit

from wit_builder.net.guard import DEFAULT_PORTS

# Kept as they are in a path or query: RFC 3986's reserved and unreserved characters and "%"
# (an escape already there stays); a space, a non-ASCII letter, '"', '<', '>' ... are encoded.
PATH_SAFE = "/%:@!$&'()*+,;=~-._"
QUERY_SAFE = PATH_SAFE + "?[]"
ESCAPE = re.compile(r"%[0-9a-fA-F]{2}")


def canonical_url(url: str) -> str:
    """The one form of an http(s) URL: scheme and host lower-cased, the default port dropped, the
    fragment removed, dot segments resolved (RFC 3986 5.2.4), raw spaces and non-ASCII
    characters percent-encoded and escapes upper-cased, so `a b.jpg` and `a%20b.jpg` are one
    URL. Other URLs (and ones that do not parse) come back as they are."""
    try:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS or not parts.hostname:
            return url
        port = parts.port
    except ValueError:
        return url
    host = parts.hostname  # lower-cased by urlsplit, without the brackets of an IPv6 address
    host = f"[{host}]" if ":" in host else host
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (f"{userinfo}@" if userinfo else "") + host
    if port is not None and port != DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = remove_dot_segments(parts.path or "/")
    path = ESCAPE.sub(lambda m: m.group(0).upper(), quote(path, safe=PATH_SAFE))
    query = ESCAPE.sub(lambda m: m.group(0).upper(), quote(parts.query, safe=QUERY_SAFE))
    return urlunsplit((scheme, netloc, path, query, ""))


def remove_dot_segments(path: str) -> str:
    """An absolute path without its `.` and `..` segments, as RFC 3986 5.2.4 resolves them (what
    a browser and the server do): `/a/./b/../c` is `/a/c`."""
    if "/." not in path:
        return path
    output: list[str] = []
    segments = path.split("/")[1:]
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == "..":
            if output:
                output.pop()
            if last:
                output.append("")
        elif segment == ".":
            if last:
                output.append("")
        else:
            output.append(segment)
    return "/" + "/".join(output)


def canonical_http_url(text: str) -> str | None:
    """The canonical form of `text` when it is an http(s) URL with a host (a line of a URL
    list), else None."""
    url = canonical_url(text)
    parts = urlsplit(url)
    return url if parts.scheme in DEFAULT_PORTS and parts.hostname else None
