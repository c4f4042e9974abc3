"""Blocklists applied by the download (issue 20): `--block-hashes FILE` and `--block-urls FILE`.

Hash lists come in the formats takedown and abuse lists are distributed in: one hex digest a line,
MD5 (32 hex digits), SHA-1 (40) or SHA-256 (64), lists of each kind mixed or apart, plain or gzip,
`#` comments and blank lines ignored. A downloaded body whose digest is listed is dropped in memory,
right after the fetch: it is never decoded, written to a tar, a temporary file or a cache, and its
manifest row says `blocked_hash` without any hash of the content.

URL lists hold exact URLs (`https://host/path`, compared in canonical form) and domains (`host`,
which also blocks its subdomains). A listed URL or a URL on a listed domain is never requested:
not the image, not any redirect hop to it (`blocked_url`).

A bad line is an error naming the file and the line, before anything runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from wit_builder.core.listfile import read_list_lines
from wit_builder.core.options import WitError
from wit_builder.net.urls import canonical_http_url, canonical_url

DIGEST_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}   # hex digits -> hashlib name
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Blocklist:
    """Digests (per hashlib name, as raw bytes) and URLs the download refuses."""

    digests: dict[str, frozenset[bytes]] = field(default_factory=dict)
    urls: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    fingerprint: str = ""   # sha256 of the lists' contents: what a shard's manifest records

    def __bool__(self) -> bool:
        return bool(self.urls or self.domains or any(self.digests.values()))

    def blocks_body(self, body: bytes) -> bool:
        return any(hashlib.new(kind, body).digest() in listed
                   for kind, listed in self.digests.items() if listed)

    def blocks_url(self, url: str) -> bool:
        if self.domains:
            host = (urlsplit(url).hostname or "").rstrip(".")
            while host:
                if host in self.domains:
                    return True
                host = host.partition(".")[2]
        return bool(self.urls) and canonical_url(url) in self.urls


def load_blocklist(hash_files: list[str], url_files: list[str]) -> Blocklist:
    """The blocklist of the given files (an empty one when none is given)."""
    digests: dict[str, set[bytes]] = {kind: set() for kind in DIGEST_KINDS.values()}
    urls, domains = set(), set()
    contents = hashlib.sha256()
    for path in hash_files:
        for number, line in read_list_lines(path, "blocklist"):
            digest = line.lower().split()[0]
            kind = DIGEST_KINDS.get(len(digest))
            if kind is None or not set(digest) <= HEX:
                raise WitError(f"blocklist '{path}' line {number}: '{line[:80]}' is not an MD5, "
                               f"SHA-1 or SHA-256 hex digest (32, 40 or 64 hex digits)")
            digests[kind].add(bytes.fromhex(digest))
            contents.update(f"{kind}:{digest}\n".encode())
    for path in url_files:
        for number, line in read_list_lines(path, "blocklist"):
            if "://" in line:
                canonical = canonical_http_url(line)
                if canonical is None:
                    raise WitError(f"blocklist '{path}' line {number}: '{line[:80]}' is not an "
                                   f"http(s) URL")
                urls.add(canonical)
                contents.update(f"url:{canonical}\n".encode())
            else:
                domain = line.lower().rstrip(".").removeprefix("*.")
                if not domain or any(char in domain for char in "/ \t?#@"):
                    raise WitError(f"blocklist '{path}' line {number}: '{line[:80]}' is neither "
                                   f"a URL nor a domain")
                domains.add(domain)
                contents.update(f"domain:{domain}\n".encode())
    if not (hash_files or url_files):
        return Blocklist()
    return Blocklist({kind: frozenset(found) for kind, found in digests.items() if found},
                     frozenset(urls), frozenset(domains), contents.hexdigest())
