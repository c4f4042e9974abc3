"""Web archives (Common Crawl layout: WARC or WARC.gz, one gzip member per record), local or
streamed over HTTP(S) through net.http's guarded client (the crawl's address policy, at every
hop): the HTML of every successful response record, as (page URL, body)."""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import BinaryIO

from fastwarc.warc import ArchiveIterator, WarcRecordType

from wit_builder.core import store
from wit_builder.core.options import WitError
from wit_builder.crawl.sources.html import is_html_type
from wit_builder.crawl.sources.paths import expand_input_paths
from wit_builder.net.guard import AddressPolicy
from wit_builder.net.http import FetchFailed, is_http_url, open_stream

log = logging.getLogger(__name__)

COMMON_CRAWL_PREFIX = "https://data.commoncrawl.org/"


def expand_warc_locations(spec: str, prefix: str = COMMON_CRAWL_PREFIX,
                          policy: AddressPolicy = AddressPolicy()) -> list[str]:
    """An HTTP(S) URL, or a file, a directory (its *.warc / *.warc.gz) or a glob, local or on a
    store (s3://...), as a sorted list; or the WARCs of a listing (`@FILE`, or a name ending in
    .paths / .paths.gz like Common Crawl's warc.paths.gz), in its order, relative lines resolved
    against `prefix`. A listing on the web is read under `policy`."""
    if spec.startswith("@"):
        return listed_warc_locations(spec[1:], prefix, policy)
    if is_listing_name(spec):
        return listed_warc_locations(spec, prefix, policy)
    if is_http_url(spec):
        return [spec]
    if store.is_url(spec):
        return store.expand(spec, is_warc_name, "warc")
    return expand_input_paths(spec, is_warc_name, "warc")


def is_warc_name(name: str) -> bool:
    return name.endswith((".warc", ".warc.gz"))


def is_listing_name(name: str) -> bool:
    return name.endswith((".paths", ".paths.gz"))


def listed_warc_locations(listing: str, prefix: str, policy: AddressPolicy) -> list[str]:
    """The locations a listing names, one a line (blank lines and # comments skipped), each
    resolved against `prefix`; duplicates kept once. Local WARCs must exist."""
    locations = list(dict.fromkeys(resolve_listed(line, prefix)
                                   for line in read_listing_lines(listing, policy)))
    if not locations:
        raise WitError(f"warc: listing '{listing}' names no WARC file")
    for location in locations:
        if not store.is_url(location) and not os.path.isfile(location):
            raise WitError(f"warc: '{location}' (from listing '{listing}') does not exist; "
                           f"check --warc-prefix")
    log.info("warc: listing '%s' names %d WARC files", listing, len(locations))
    return locations


def read_listing_lines(listing: str, policy: AddressPolicy) -> list[str]:
    """The useful lines of a listing file (local, on a store or over HTTP(S)), gunzipped when it
    is gzip whatever its name; a WitError when it cannot be read."""
    try:
        with open_location(listing, policy) as stream:
            data = stream.read()
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        text = data.decode("utf-8")
    except WitError:
        raise
    except FileNotFoundError:
        raise WitError(f"warc: listing '{listing}' does not exist") from None
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as error:
        raise WitError(f"warc: listing '{listing}' cannot be read: {error}") from None
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def resolve_listed(line: str, prefix: str) -> str:
    """A listing's line as a location: absolute paths and URLs as they are, relative ones under
    `prefix` (a URL, joined with '/', or a local directory)."""
    if store.is_url(line) or os.path.isabs(line):
        return line
    if store.is_url(prefix):
        return f"{prefix.rstrip('/')}/{line.lstrip('/')}"
    return os.path.join(prefix, line)


@contextmanager
def open_location(location: str, policy: AddressPolicy, timeout: float = 60.0
                  ) -> Iterator[BinaryIO]:
    """A binary stream of a file (local or on a store) or of an HTTP(S) body, read as it arrives
    (never saved, never decoded: the WARC's own gzip members are decoded by FastWARC), every hop
    of it allowed by `policy`."""
    if not is_http_url(location):
        with store.open(location, "rb") as handle:
            yield handle
        return
    with ExitStack() as stack:
        try:
            stream = stack.enter_context(open_stream(location, policy, timeout=timeout))
        except FetchFailed as failure:
            raise WitError(cannot_fetch(location, failure)) from None
        yield stream


def cannot_fetch(location: str, failure: FetchFailed) -> str:
    message = f"warc: cannot fetch '{location}': {failure}"
    if failure.status == "blocked_address":
        message += ("; the address guard refuses non-public addresses: --trusted-origins "
                    "HOST:PORT opens one server (a local mirror), --allow-private all of them")
    return message


def declared_length(record) -> int | None:
    value = record.http_headers.get("Content-Length")
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() else None


def read_html_responses(location: str, dropped: Counter,
                        policy: AddressPolicy = AddressPolicy()) -> Iterator[tuple[str, bytes]]:
    """(target URL, HTML body) of each 200 HTML response record; other response and revisit
    records are counted in `dropped` by reason. A record whose Content-Length is wrong is counted
    (warc_record_error) and reading goes on at the next `WARC/1.` header (as warcio does), also
    when the wrong length runs past the end of the file (the records it swallowed are read; its
    page is kept up to that header); a file that is not a WARC, or is cut short, ends with a
    warning; an ARC file is a WitError. A WARC on the web is read under `policy`."""
    start: tuple[int, int | None] = (0, None)  # raw offset; offset in the decoded stream, if any
    last_position, cut_counted = 0, 0
    while True:
        last: int | None = None
        overran: tuple[int, str | None, bytes, int | None] | None = None
        with open_location(location, policy) as stream:
            # Every record type is walked (its position is where a resynchronisation starts).
            records = ArchiveIterator(resume_stream(stream, start), parse_http=True)
            try:
                for record in records:
                    last, cut_counted = record.stream_pos, dropped["truncated_record"]
                    url = page_target(record, dropped) if record.record_type & READ_TYPES \
                        else None
                    body = record.reader.read() if url else b""
                    # A block shorter than its Content-Length ran into the end of the file:
                    # either the file is cut short or the length is wrong and swallowed the
                    # records after it (only the last record of a stream can be short).
                    if len(body) + record.reader.consume() < record.content_length:
                        overran = (record.stream_pos, url, body,
                                   declared_length(record) if url else None)
                        break
                    if url and body_is_whole(declared_length(record), body, dropped):
                        yield url, body
            except (OSError, EOFError, zlib.error) as error:
                if last is None and start == (0, None):
                    refuse_arc(location, policy)
                    dropped["invalid_warc"] += 1
                    log.warning("warc: '%s' is not a readable WARC (%s); skipped", location, error)
                    return
                if last is not None:  # counted once per damaged stretch, not per retry
                    dropped["warc_record_error"] += 1
                    log.warning("warc: '%s': the record at offset %d is not where its "
                                "predecessor's Content-Length says (%s); reading on at the next "
                                "WARC/1. header", location, last, error)
                start = next_header(location, policy, resume_point(start, last or 0))
                if start is None:
                    return
                continue
        if overran is not None:
            position, url, body, expected = overran
            following = next_header(location, policy, resume_point(start, position), quiet=True)
            if following is None:
                dropped["truncated_record"] += 1
                log.warning("warc: '%s' ends inside the record at offset %d (file cut short); "
                            "that record skipped", location, position)
                return
            dropped["warc_record_error"] += 1
            log.warning("warc: '%s': the record at offset %d declares a Content-Length past the "
                        "end of the file; reading on at the next WARC/1. header inside it",
                        location, position)
            header = body.find(b"\n" + HEADER)
            if url and header >= 0 and body_is_whole(expected, body[:header], dropped):
                yield url, body[:header]
            start = following
            continue
        if start == (0, None):
            last_position = last or 0
        break
    last_record_was_cut = dropped["truncated_record"] > cut_counted
    if start == (0, None) and not store.is_url(location) and not last_record_was_cut \
            and gzip_tail_is_cut(location, last_position):
        dropped["truncated_record"] += 1
        log.warning("warc: '%s' ends inside a record (file cut short); that record skipped",
                    location)


READ_TYPES = WarcRecordType.response | WarcRecordType.revisit
HEADER = b"WARC/1."


class DecodedStream:
    """A stream read from `offset` of a decoded (gunzipped) stream: a resumption's reader."""

    def __init__(self, stream: BinaryIO, raw_offset: int, offset: int):
        skip(stream, raw_offset)
        head = stream.read(2)
        self.decoded = gzip.GzipFile(fileobj=PrefixedStream(head, stream)) \
            if head == b"\x1f\x8b" else PrefixedStream(head, stream)
        skip(self.decoded, offset)
        self.position = 0

    def read(self, size: int = -1) -> bytes:
        data = self.decoded.read(size)
        self.position += len(data)
        return data

    def tell(self) -> int:
        return self.position

    def readable(self) -> bool:
        return True


class PrefixedStream:
    def __init__(self, prefix: bytes, stream: BinaryIO):
        self.prefix, self.stream = prefix, stream

    def read(self, size: int = -1) -> bytes:
        if self.prefix:
            if size is None or size < 0:
                data, self.prefix = self.prefix + self.stream.read(), b""
                return data
            data, self.prefix = self.prefix[:size], self.prefix[size:]
            return data if len(data) == size else data + self.stream.read(size - len(data))
        return self.stream.read(size)


def skip(stream, count: int) -> None:
    while count > 0:
        data = stream.read(min(count, 1 << 20))
        if not data:
            return
        count -= len(data)


def resume_stream(stream: BinaryIO, start: tuple[int, int | None]):
    return stream if start == (0, None) else DecodedStream(stream, start[0], start[1] or 0)


def next_header(location: str, policy: AddressPolicy, start: tuple[int, int],
                quiet: bool = False) -> tuple[int, int] | None:
    """Where the next `WARC/1.` line after the record at `start` begins (in the decoded
    stream), or None (said in the log unless `quiet`) when no record follows."""
    raw, offset = start
    position, tail = offset + 1, b""
    try:
        with open_location(location, policy) as stream:
            decoded = DecodedStream(stream, raw, position)
            while True:
                data = decoded.read(1 << 20)
                if not data:
                    break
                window = tail + data
                found = window.find(b"\n" + HEADER)
                if found >= 0:
                    return raw, position - len(tail) + found + 1
                tail = window[-len(HEADER):]
                position += len(data)
    except (OSError, EOFError, zlib.error):
        pass
    if not quiet:
        log.warning("warc: '%s': no WARC record follows the damaged one", location)
    return None


def refuse_arc(location: str, policy: AddressPolicy) -> None:
    """A WitError naming the file when it is an ARC file (Internet Archive's older format)."""
    try:
        with open_location(location, policy) as stream:
            head = stream.read(4096)
        if head[:2] == b"\x1f\x8b":
            head = zlib.decompressobj(wbits=31).decompress(head)
    except (OSError, EOFError, zlib.error):
        return
    if head.lstrip().startswith(b"filedesc://"):
        raise WitError(f"warc: '{location}' is an ARC file (the Internet Archive format before "
                       f"WARC), not a WARC; convert it to WARC first")


def gzip_tail_is_cut(path: str, start: int) -> bool:
    """True when the gzip members from `start` to the end of the file do not all end: FastWARC
    stops silently at a member cut short, so a cut file would otherwise lose a record unseen."""
    with open(path, "rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return False
        handle.seek(start)
        data = handle.read()
    while data:
        member = zlib.decompressobj(wbits=31)
        try:
            member.decompress(data)
        except zlib.error:
            return True
        if not member.eof:
            return True
        data = member.unused_data
    return False


def target_uri(value: str | None) -> str | None:
    """WARC-Target-URI as WARC 1.1 writes it or in WARC 1.0's angle brackets (GNU wget)."""
    value = (value or "").strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return value or None


def resume_point(start: tuple[int, int | None], position: int) -> tuple[int, int]:
    """Where the record at `position` of the stream read from `start` begins, as a start."""
    return (start[0], start[1] + position) if start[1] is not None else (position, 0)


def page_target(record, dropped: Counter) -> str | None:
    """The URL of a record worth parsing (its body not read yet), else None with the reason
    counted."""
    url = target_uri(record.headers.get("WARC-Target-URI"))
    if not url:
        dropped["truncated_record"] += 1
        return None
    if record.record_type == WarcRecordType.revisit:  # a duplicate the crawler did not store
        dropped["revisit"] += 1
        return None
    if record.http_headers is None:
        dropped["not_http"] += 1
        return None
    if record.http_headers.status_code != 200:
        dropped["http_status"] += 1
        return None
    if not is_html_type(record.http_headers.get("Content-Type")):
        dropped["not_html"] += 1
        return None
    return url


def body_is_whole(expected: int | None, body: bytes, dropped: Counter) -> bool:
    """False (counted) when a page's body is shorter than its HTTP Content-Length `expected`."""
    # A record the crawler cut at its size limit (WARC-Truncated) still holds usable HTML; a body
    # shorter than its own Content-Length means the file itself was cut.
    if expected is not None and len(body) < expected:
        dropped["truncated_record"] += 1
        return False
    return True
