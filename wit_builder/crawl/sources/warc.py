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
    return int(value) if value and value.strip().isdigit() else None


def read_html_responses(location: str, dropped: Counter,
                        policy: AddressPolicy = AddressPolicy()) -> Iterator[tuple[str, bytes]]:
    """(target URL, HTML body) of each 200 HTML response record; other records are counted in
    `dropped` by reason. A file that is not a WARC, or is cut short, ends with a warning. A WARC
    on the web is read under `policy`."""
    last_position, cut_counted = 0, 0
    with open_location(location, policy) as stream:
        records = ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=True)
        try:
            for record in records:
                last_position, cut_counted = record.stream_pos, dropped["truncated_record"]
                page = yield_page(record, dropped)
                if page is not None:
                    yield page
        except OSError as error:
            dropped["invalid_warc"] += 1
            log.warning("warc: '%s' stops being a readable WARC (%s); records after it skipped",
                        location, error)
            return
    last_record_was_cut = dropped["truncated_record"] > cut_counted
    if not store.is_url(location) and not last_record_was_cut \
            and gzip_tail_is_cut(location, last_position):
        dropped["truncated_record"] += 1
        log.warning("warc: '%s' ends inside a record (file cut short); that record skipped",
                    location)


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


def yield_page(record, dropped: Counter) -> tuple[str, bytes] | None:
    """The (URL, body) of a record worth parsing, else None with the reason counted."""
    url = record.headers.get("WARC-Target-URI")
    if not url:
        dropped["truncated_record"] += 1
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
    body = record.reader.read()
    expected = declared_length(record)
    # A record the crawler cut at its size limit (WARC-Truncated) still holds usable HTML; a body
    # shorter than its own Content-Length means the file itself was cut.
    if expected is not None and len(body) < expected:
        dropped["truncated_record"] += 1
        return None
    return url, body
