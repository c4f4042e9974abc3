"""WARC source: HTML response records of local and HTTP-streamed WARC files; damage is counted."""

from __future__ import annotations

import gzip
import random
import http.server
import threading
from collections import Counter

import pytest

from wit_builder.options import WitError
from wit_builder.sources.warc import expand_warc_locations, read_html_responses


def http_response(body: bytes, status: str = "200 OK", content_type: str = "text/html") -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


def warc_record(kind: str, uri: str, payload: bytes, number: int) -> bytes:
    msgtype = "request" if kind == "request" else "response"
    head = (f"WARC/1.0\r\nWARC-Type: {kind}\r\nWARC-Target-URI: {uri}\r\n"
            f"WARC-Date: 2026-01-01T00:00:00Z\r\nWARC-Record-ID: <urn:uuid:{number:08d}>\r\n"
            f"Content-Type: application/http; msgtype={msgtype}\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode()
    return gzip.compress(head + payload + b"\r\n\r\n", mtime=0)


def sample_warc() -> bytes:
    records = [
        ("request", "http://s.test/a.html", b"GET /a.html HTTP/1.1\r\nHost: s.test\r\n\r\n"),
        ("response", "http://s.test/a.html", http_response(b"<img src=x.jpg alt='a red star'>")),
        ("response", "http://s.test/img.jpg", http_response(b"\xff\xd8\xff", content_type="image/jpeg")),
        ("response", "http://s.test/gone", http_response(b"", status="404 Not Found")),
        ("response", "http://s.test/b.html", http_response(b"<p>page b</p>",
                                                           content_type="text/html; charset=utf-8")),
    ]
    return b"".join(warc_record(kind, uri, payload, i) for i, (kind, uri, payload) in
                    enumerate(records))


def test_only_successful_html_responses_are_yielded(tmp_path):
    path = tmp_path / "crawl.warc.gz"
    path.write_bytes(sample_warc())
    dropped = Counter()
    pages = list(read_html_responses(str(path), dropped))
    assert [url for url, _ in pages] == ["http://s.test/a.html", "http://s.test/b.html"]
    assert pages[0][1] == b"<img src=x.jpg alt='a red star'>"
    assert dropped == {"not_html": 1, "http_status": 1}


@pytest.mark.parametrize("keep", [-400, 100, 30, 5])
def test_truncated_file_keeps_whole_records_and_counts_the_cut_one(tmp_path, keep):
    body = random.Random(0).randbytes(5000)  # incompressible, so the cut lands inside the body
    last = warc_record("response", "http://s.test/c.html", http_response(b"<p>" + body), 9)
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(sample_warc() + last[:keep])
    dropped = Counter()
    urls = [url for url, _ in read_html_responses(str(path), dropped)]
    assert urls == ["http://s.test/a.html", "http://s.test/b.html"]
    assert dropped["truncated_record"] == 1


def test_file_that_is_not_a_warc_is_counted_not_raised(tmp_path):
    path = tmp_path / "fake.warc.gz"
    path.write_bytes(b"this is not gzip and not a WARC\n" * 20)
    dropped = Counter()
    assert list(read_html_responses(str(path), dropped)) == []
    assert dropped == {"invalid_warc": 1}


def test_uncompressed_warc_reads_the_same(tmp_path):
    path = tmp_path / "plain.warc"
    path.write_bytes(gzip.decompress(sample_warc()))
    assert len(list(read_html_responses(str(path), Counter()))) == 2


def test_streamed_over_http_without_saving(tmp_path):
    data = sample_warc()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/CC-MAIN-x.warc.gz"
        pages = list(read_html_responses(url, Counter()))
    finally:
        server.shutdown()
    assert [u for u, _ in pages] == ["http://s.test/a.html", "http://s.test/b.html"]


def test_locations_from_directory_and_glob(tmp_path):
    for name in ("b.warc.gz", "a.warc", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.rsplit("/", 1)[1] for p in expand_warc_locations(str(tmp_path))] == \
        ["a.warc", "b.warc.gz"]
    assert len(expand_warc_locations(str(tmp_path / "*.warc*"))) == 2
    with pytest.raises(WitError, match="matches no file"):
        expand_warc_locations(str(tmp_path / "none-*.warc"))
