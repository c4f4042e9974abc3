"""Blocklists applied by the download (issue 20): `--block-hashes FILE` and `--block-urls FILE`.

Hash lists come in the formats takedown and abuse lists are distributed in: one hex digest a line,
MD5 (32 hex digits), SHA-1 (40) or SHA-256 (64), lists of each kind mixed or apart, plain or gzip,
`#` comments and blank lines ignored. A downloaded body whose digest is listed is dropped in memory,
right after the fetch: it is never decoded, written to a tar, a temporary file or a cache, and its
manifest row says `blocked_hash` without any hash of the content.

A line of 16 hex digits is a 64-bit perceptual hash as `imagehash` writes it
(`str(imagehash.phash(image))`, core/phash.py), optionally with its own distance: `HEX:BITS`. The
distance rides on the hash itself, not in a second column, because the words after the first
one are a free note (`HEX  seen 12 times` must never widen a match to 12 bits); without one the
line takes `--block-phash-distance`. A picture whose pHash is within the distance of a listed one
is dropped once decoded, before the resize and before anything is written, with the same
`blocked_hash` row and no hash of it stored. Only a list with pHashes costs the decoding a pHash.

URL lists hold exact URLs (`https://host/path`, compared in canonical form) and domains (`host`,
which also blocks its subdomains). A listed URL or a URL on a listed domain is never requested:
not the image, not any redirect hop to it (`blocked_url`).

A bad line is an error naming the file and the line, before anything runs. A pHash within its
distance of the pHash of a picture of one tone (8000000000000000) or of a black one (0) would
drop every such picture, plain backgrounds and near-flat textures included: loading the list
logs a warning naming the first such line.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import cv2
import numpy as np
from PIL import Image

from wit_builder.core import phash
from wit_builder.core.listfile import read_list_lines
from wit_builder.core.options import WitError
from wit_builder.crawl.config import DEFAULT_PHASH_BITS, MAX_PHASH_BITS
from wit_builder.net.urls import canonical_http_url, canonical_url

log = logging.getLogger(__name__)

DIGEST_KINDS = {32: "md5", 40: "sha1", 64: "sha256"}   # hex digits -> hashlib name
HEX = frozenset("0123456789abcdef")
# pHashes a listed one must not be near: what it would block then
TOO_COMMON = ((phash.FLAT, "every one-tone (flat) image"), (phash.BLACK, "every all-black image"))


@dataclass(frozen=True, eq=False)   # arrays inside: compared by identity
class Blocklist:
    """Digests (per hashlib name, as raw bytes), pHashes with their distances and URLs the
    download refuses."""

    digests: dict[str, frozenset[bytes]] = field(default_factory=dict)
    urls: frozenset[str] = frozenset()
    domains: frozenset[str] = frozenset()
    fingerprint: str = ""   # sha256 of the lists' contents: what a shard's manifest records
    phashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    phash_bits: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint8))

    def __post_init__(self) -> None:
        if self.phashes.size and not self.fingerprint:  # built without load_blocklist
            object.__setattr__(self, "fingerprint", hashlib.sha256(
                self.phashes.tobytes() + self.phash_bits.tobytes()).hexdigest())

    def __bool__(self) -> bool:
        return bool(self.urls or self.domains or any(self.digests.values()) or self.phashes.size)

    def blocks_body(self, body: bytes) -> bool:
        return any(hashlib.new(kind, body).digest() in listed
                   for kind, listed in self.digests.items() if listed)

    @property
    def phash_index(self) -> phash.PhashIndex:
        # built where pictures are checked (a download worker), once per process and list: the
        # settings reach a worker anew with each shard, the index is never pickled to it
        return phash_index(self.fingerprint, self.phashes, self.phash_bits)

    def blocks_picture(self, pixels: np.ndarray) -> bool:
        """Whether a decoded picture (BGR, as OpenCV decodes) is within its distance of a listed
        pHash (never, without pHashes)."""
        return bool(self.phashes.size) and self.phash_index.near(picture_phash(pixels))

    def blocks_url(self, url: str) -> bool:
        if self.domains:
            host = (urlsplit(url).hostname or "").rstrip(".")
            while host:
                if host in self.domains:
                    return True
                host = host.partition(".")[2]
        return bool(self.urls) and canonical_url(url) in self.urls


PHASH_INDEXES: dict[str, phash.PhashIndex] = {}   # this process's, by list fingerprint
INDEXES_KEPT = 4   # a run has one list; a few more for a process that checks several in turn


def phash_index(fingerprint: str, hashes: np.ndarray, bits: np.ndarray) -> phash.PhashIndex:
    """The search index of a list's pHashes, built once per process for each list (its
    fingerprint covers the hashes and their distances)."""
    if fingerprint not in PHASH_INDEXES:
        while len(PHASH_INDEXES) >= INDEXES_KEPT:
            del PHASH_INDEXES[next(iter(PHASH_INDEXES))]   # the oldest
        PHASH_INDEXES[fingerprint] = phash.PhashIndex(hashes, bits)
    return PHASH_INDEXES[fingerprint]


def picture_phash(pixels: np.ndarray) -> int:
    """The pHash of a decoded BGR picture, made cheap for the download: OpenCV's grey (within a
    level of Pillow's) and Pillow's Lanczos with a reducing gap of 2 (a box reduction first).
    Copies land as close to their listed pHash as with imagehash's exact steps, at a fifth of
    the cost (BENCHMARKS.md)."""
    grey = Image.fromarray(pixels if pixels.ndim == 2 else cv2.cvtColor(pixels, cv2.COLOR_BGR2GRAY))
    return phash.phash_of_grey(grey, reducing_gap=2.0)


def parse_hash_line(line: str, where: str, phash_bits: int) -> tuple[str, str, int | None]:
    """(kind, hex digits, pHash distance or None) of a hash list's line."""
    entry = line.lower().split()[0]
    digest, colon, bits = entry.partition(":")
    if len(digest) == phash.HEX_DIGITS and set(digest) <= HEX:
        if not colon:
            return "phash", digest, phash_bits
        if bits.isascii() and bits.isdigit() and int(bits) <= MAX_PHASH_BITS:
            return "phash", digest, int(bits)
        raise WitError(f"blocklist {where}: '{line[:80]}': a pHash's distance is a number of "
                       f"bits from 0 to {MAX_PHASH_BITS} (HEX:BITS)")
    kind = DIGEST_KINDS.get(len(digest))
    if kind is None or colon or not set(digest) <= HEX:
        raise WitError(f"blocklist {where}: '{line[:80]}' is not an MD5, SHA-1 or SHA-256 hex "
                       f"digest (32, 40 or 64 hex digits) nor a pHash (16, optionally :BITS)")
    return kind, digest, None


def too_common(value: int, bits: int) -> str | None:
    """What a listed pHash would block besides its picture when it is within `bits` of the
    pHash of a one-tone or a black picture (TOO_COMMON), else None."""
    for common, blocked in TOO_COMMON:
        if (value ^ common).bit_count() <= bits:
            return blocked
    return None


def warn_too_common(found: list[str]) -> None:
    if found:
        more = f" ({len(found) - 1} more such line(s))" if len(found) > 1 else ""
        log.warning("%s%s; list that picture by its SHA-256 (or MD5, SHA-1) instead, or remove "
                    "the line", found[0], more)


def load_blocklist(hash_files: list[str], url_files: list[str],
                   phash_bits: int = DEFAULT_PHASH_BITS, warn: bool = True) -> Blocklist:
    """The blocklist of the given files (an empty one when none is given); `phash_bits` is the
    distance of the pHashes listed without their own. `warn`: log a warning when a pHash would
    block every one-tone or black picture (`too_common`)."""
    digests: dict[str, set[bytes]] = {kind: set() for kind in DIGEST_KINDS.values()}
    phashes: dict[int, int] = {}   # pHash -> the widest distance it is listed with
    urls, domains = set(), set()
    contents = hashlib.sha256()
    common: list[str] = []   # the lines of pHashes that block every flat picture
    for path in hash_files:
        for number, line in read_list_lines(path, "blocklist"):
            kind, digest, bits = parse_hash_line(line, f"'{path}' line {number}", phash_bits)
            if bits is None:
                digests[kind].add(bytes.fromhex(digest))
                contents.update(f"{kind}:{digest}\n".encode())
            else:
                phashes[int(digest, 16)] = max(bits, phashes.get(int(digest, 16), 0))
                contents.update(f"phash:{digest}:{bits}\n".encode())
                if blocked := too_common(int(digest, 16), bits):
                    common.append(f"blocklist '{path}' line {number}: pHash {digest} within "
                                  f"{bits} bits blocks {blocked}, plain backgrounds and "
                                  f"near-flat textures included")
    if warn:
        warn_too_common(common)
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
                     frozenset(urls), frozenset(domains), contents.hexdigest(),
                     np.fromiter(phashes.keys(), np.uint64, len(phashes)),
                     np.fromiter(phashes.values(), np.uint8, len(phashes)))
