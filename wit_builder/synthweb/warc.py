"""`site.warc.gz`: the synthetic site as a polite crawler would have recorded it.

Layout of a Common Crawl WARC: a `warcinfo` record, then per fetched URL a `request` and a
`response` record (the HTTP/1.1 message in the block, sha1 base32 block and payload digests), each
record its own gzip member. The fetches are those of `site.crawl_order`: robots.txt, the pages
breadth-first from `/` (a missing page recorded as its 404) and the captioned pictures of each page;
nothing under a robots.txt-disallowed path. Responses are built by `server.site_response`, so they
are what the server sends. Dates are fixed and record ids derived from the seed, so every run
writes the same bytes.

The URLs carry one origin: `config.recorded_origin` when generated; `record_site` writes the WARC
and the pool again for another origin (the one a crawl actually served the site on).
"""

from __future__ import annotations

import base64
import datetime
import gzip
import hashlib
import logging
import uuid
from http import HTTPStatus
from pathlib import Path

from wit_builder.core import atomic
from wit_builder.synthweb import pool, site
from wit_builder.synthweb.server import SiteResponse, StaticSite, site_response

log = logging.getLogger(__name__)

WARC_NAME = "site.warc.gz"
USER_AGENT = "witbuilder/0.1 (+https://github.com/witbuilder/witbuilder)"
CRAWL_START = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def sha1_base32(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def record_id(seed: int, number: int) -> str:
    return f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'synthweb:{seed}:{number}')}>"


def warc_date(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def warc_record(fields: list[tuple[str, str]], block: bytes) -> bytes:
    """One WARC/1.0 record (header fields, Content-Length, block), as its own gzip member."""
    head = "WARC/1.0\r\n" + "".join(f"{name}: {value}\r\n" for name, value in fields)
    head += f"Content-Length: {len(block)}\r\n\r\n"
    return gzip.compress(head.encode() + block + b"\r\n\r\n", compresslevel=6, mtime=0)


def http_request(path: str, host: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\n"
            f"Accept: */*\r\nAccept-Encoding: identity\r\n\r\n").encode()


def http_response(answer: SiteResponse, moment: datetime.datetime) -> tuple[bytes, bytes]:
    """(HTTP head, body) of a server answer as it travels on the wire."""
    lines = [f"HTTP/1.1 {answer.status} {HTTPStatus(answer.status).phrase}",
             f"Date: {moment.strftime('%a, %d %b %Y %H:%M:%S GMT')}", "Server: synthweb",
             *(f"{name}: {value}" for name, value in answer.headers.items()),
             f"Content-Length: {len(answer.body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), answer.body


def warcinfo_record(seed: int, origin: str, moment: datetime.datetime) -> bytes:
    block = (f"software: witbuilder synthweb\r\nformat: WARC File Format 1.0\r\n"
             f"operator: wit synthweb generate\r\nrobots: obey\r\nhttp-header-user-agent: "
             f"{USER_AGENT}\r\ndescription: the synthetic site served at {origin}\r\n").encode()
    return warc_record([("WARC-Type", "warcinfo"), ("WARC-Date", warc_date(moment)),
                        ("WARC-Filename", WARC_NAME), ("WARC-Record-ID", record_id(seed, 0)),
                        ("Content-Type", "application/warc-fields")], block)


def exchange_records(path: str, origin: str, answer: SiteResponse, number: int, seed: int,
                     moment: datetime.datetime) -> bytes:
    """The request and response records of one fetch."""
    uri, info_id = origin + path, record_id(seed, 0)
    request_id, response_id = record_id(seed, 2 * number + 1), record_id(seed, 2 * number + 2)
    request = http_request(path, origin.split("://", 1)[1])
    head, body = http_response(answer, moment)
    common = [("WARC-Target-URI", uri), ("WARC-Date", warc_date(moment)),
              ("WARC-Warcinfo-ID", info_id)]
    request_fields = [("WARC-Type", "request"), *common, ("WARC-Record-ID", request_id),
                      ("WARC-Concurrent-To", response_id),
                      ("Content-Type", "application/http; msgtype=request"),
                      ("WARC-Block-Digest", sha1_base32(request))]
    response_fields = [("WARC-Type", "response"), *common, ("WARC-Record-ID", response_id),
                       ("WARC-Concurrent-To", request_id), ("WARC-IP-Address", "127.0.0.1"),
                       ("Content-Type", "application/http; msgtype=response"),
                       ("WARC-Payload-Digest", sha1_base32(body)),
                       ("WARC-Block-Digest", sha1_base32(head + body))]
    return warc_record(request_fields, request) + warc_record(response_fields, head + body)


def write_warc(out: Path, config, origin: str | None = None, path: Path | None = None) -> dict:
    """Record the generated site under `out` into `path` (default `out/site.warc.gz`)."""
    origin = site.check_origin(origin or config.recorded_origin)
    truth = site.read_truth(out)
    static = StaticSite.open(Path(out) / "site")
    path = Path(path) if path else Path(out) / WARC_NAME
    statuses: dict[int, int] = {}
    with atomic.atomic_path(path) as temporary, open(temporary, "wb") as handle:
        handle.write(warcinfo_record(config.seed, origin, CRAWL_START))
        for number, url_path in enumerate(site.crawl_order(truth)):
            moment = CRAWL_START + datetime.timedelta(seconds=number + 1)
            answer = site_response(static, url_path, origin)
            statuses[answer.status] = statuses.get(answer.status, 0) + 1
            handle.write(exchange_records(url_path, origin, answer, number, config.seed, moment))
    log.info("synthweb: recorded %d fetches of %s into %s", sum(statuses.values()), origin, path)
    return {"path": path.name, "origin": origin, "fetches": sum(statuses.values()),
            "statuses": {str(code): count for code, count in sorted(statuses.items())},
            "bytes": path.stat().st_size, "sha256": atomic.sha256_file(path)}


def record_site(out: Path, config, origin: str, dest: Path) -> dict:
    """Write `dest/site.warc.gz` and `dest/pool.parquet` for the site served at `origin`."""
    dest = Path(dest)
    return {"warc": write_warc(out, config, origin, dest / WARC_NAME),
            "pool": pool.write_pool(out, config, origin, dest / pool.POOL_NAME)}
