"""WARC source: HTML response records of local and HTTP-streamed WARC files; damage is counted."""

from __future__ import annotations

import gzip
import random
import re
import http.server
import threading
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiohttp import web

from support.servers import Server
from wit_builder.cli import load_config
from wit_builder.crawl.run import select
from wit_builder.core.options import WitError
from wit_builder.crawl.sources.html import extract_images
from wit_builder.crawl.sources.warc import expand_warc_locations, read_html_responses
from wit_builder.net.guard import AddressPolicy


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
        origin = f"127.0.0.1:{server.server_address[1]}"
        url = f"http://{origin}/CC-MAIN-x.warc.gz"
        with pytest.raises(WitError, match="non-public address.*--trusted-origins"):
            list(read_html_responses(url, Counter()))  # the guard's default: public only
        pages = list(read_html_responses(url, Counter(), AddressPolicy(trusted_origins=(origin,))))
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


# ---- listings: Common Crawl's warc.paths.gz, warc:@list.txt ----------------------------------

def page_warc(number: int) -> bytes:
    """A one-page WARC whose page URL says which file it came from."""
    html = (f"<img src=pic{number}.jpg alt='a photograph of a bright red star drawn "
            f"on white paper, number {number}'>").encode()
    return warc_record("response", f"http://s.test/{number}.html", http_response(html), number)


def write_mirror(root, names: list[str]) -> None:
    for number, name in enumerate(names):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(page_warc(number))


CC_NAMES = ["crawl-data/CC-MAIN-2024-10/segments/1/warc/CC-MAIN-1-00000.warc.gz",
            "crawl-data/CC-MAIN-2024-10/segments/1/warc/CC-MAIN-1-00001.warc.gz",
            "crawl-data/CC-MAIN-2024-10/segments/2/warc/CC-MAIN-2-00000.warc.gz"]


def page_urls(locations: list[str], policy: AddressPolicy = AddressPolicy()) -> list[str]:
    return [url for location in locations
            for url, _ in read_html_responses(location, Counter(), policy)]


def test_gzipped_paths_listing_resolves_relative_lines_against_a_local_prefix(tmp_path):
    mirror = tmp_path / "mirror"
    write_mirror(mirror, CC_NAMES)
    extra = tmp_path / "elsewhere" / "own.warc.gz"
    write_mirror(tmp_path / "elsewhere", ["own.warc.gz"])
    listing = tmp_path / "warc.paths.gz"
    lines = ["# CC-MAIN-2024-10, first files", CC_NAMES[1], "", CC_NAMES[0], str(extra),
             CC_NAMES[1], CC_NAMES[2]]
    listing.write_bytes(gzip.compress("\n".join(lines).encode() + b"\n"))
    locations = expand_warc_locations(str(listing), prefix=str(mirror))
    # The listing's order, absolute lines as they are, a repeated line once.
    assert locations == [str(mirror / CC_NAMES[1]), str(mirror / CC_NAMES[0]), str(extra),
                         str(mirror / CC_NAMES[2])]
    assert page_urls(locations) == ["http://s.test/1.html", "http://s.test/0.html",
                                    "http://s.test/0.html", "http://s.test/2.html"]


def test_at_listing_and_http_prefix_stream_each_warc_from_an_aiohttp_server(tmp_path):
    files = {f"/{name}": page_warc(number) for number, name in enumerate(CC_NAMES)}
    files["/lists/warc.paths.gz"] = gzip.compress("\n".join(CC_NAMES).encode())
    served = Counter()

    async def handler(request: web.Request) -> web.Response:
        served[request.path] += 1
        if request.path not in files:
            raise web.HTTPNotFound()
        return web.Response(body=files[request.path], content_type="application/octet-stream")

    plain = tmp_path / "list.txt"
    plain.write_text("\n".join(CC_NAMES[:2]) + "\n")
    with Server(handler) as server:
        trusted = AddressPolicy(trusted_origins=(server.origin,))
        from_at = expand_warc_locations(f"@{plain}", prefix=server.url + "/")
        from_url = expand_warc_locations(server.url + "/lists/warc.paths.gz",
                                         prefix=server.url, policy=trusted)
        assert from_at == [f"{server.url}/{name}" for name in CC_NAMES[:2]]
        assert from_url == [f"{server.url}/{name}" for name in CC_NAMES]
        assert page_urls(from_url, trusted) == [f"http://s.test/{n}.html" for n in range(3)]
        with pytest.raises(WitError, match="cannot fetch.*HTTP 404"):
            expand_warc_locations(server.url + "/lists/gone.paths.gz", policy=trusted)
    assert all(served[f"/{name}"] == 1 for name in CC_NAMES)


def test_empty_or_unreadable_listing_is_a_clear_error(tmp_path):
    cases = {"comments.paths": (b"# nothing yet\n\n", "names no WARC file"),
             "broken.paths.gz": (gzip.compress(b"crawl-data/a.warc.gz\n")[:-12], "cannot be read"),
             "binary.paths": (b"\xff\xfe\x00garbage", "cannot be read")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(WitError, match=f"listing '.*{name}' {message}"):
            expand_warc_locations(str(tmp_path / name), prefix=str(tmp_path))
    with pytest.raises(WitError, match="listing '.*absent.paths' does not exist"):
        expand_warc_locations(str(tmp_path / "absent.paths"))
    with pytest.raises(WitError, match="listing '.*none.txt' does not exist"):
        expand_warc_locations(f"@{tmp_path / 'none.txt'}")
    (tmp_path / "one.paths").write_text(CC_NAMES[0] + "\n")
    with pytest.raises(WitError, match="CC-MAIN-1-00000.warc.gz' .*does not exist; check "
                                       "--warc-prefix"):
        expand_warc_locations(str(tmp_path / "one.paths"), prefix=str(tmp_path))


def test_crawl_reads_a_listing_under_its_warc_prefix(tmp_path):
    mirror = tmp_path / "mirror"
    write_mirror(mirror, CC_NAMES)
    (tmp_path / "warc.paths").write_text("\n".join(CC_NAMES[1:]) + "\n")
    (tmp_path / "queries").mkdir()
    pq.write_table(pa.table({"query_id": pa.array([0], pa.int32()), "query": ["red star"]}),
                   tmp_path / "queries" / "queries.parquet")
    config = load_config("crawl", None, {
        "workdir": str(tmp_path), "download": False, "workers": 1,
        "source": [f"warc:{tmp_path / 'warc.paths'}"], "warc_prefix": str(mirror)})
    stats = select(config)
    assert stats["counts"]["pages"] == 2 and "pages" not in stats["dropped"]
    selection = pq.read_table(tmp_path / "manifests" / "selection.parquet").to_pylist()
    assert sorted(row["page_url"] for row in selection) == ["http://s.test/1.html",
                                                            "http://s.test/2.html"]


def test_angle_bracketed_target_uri_of_warc_1_0_is_read(tmp_path):
    path = tmp_path / "wget.warc.gz"
    path.write_bytes(warc_record("response", "<http://s.test/a.html>",
                                 http_response(b"<img src=x.jpg alt='a red star'>"), 1))
    dropped = Counter()
    assert [url for url, _ in read_html_responses(str(path), dropped)] == ["http://s.test/a.html"]
    assert dropped == {}


def lying_record(uri: str, body: bytes, number: int, off_by: int, gzipped: bool) -> bytes:
    payload = http_response(body)
    head = (f"WARC/1.0\r\nWARC-Type: response\r\nWARC-Target-URI: {uri}\r\n"
            f"WARC-Record-ID: <urn:uuid:{number:08d}>\r\n"
            f"Content-Type: application/http; msgtype=response\r\n"
            f"Content-Length: {len(payload) + off_by}\r\n\r\n").encode()
    record = head + payload + b"\r\n\r\n"
    return gzip.compress(record, mtime=0) if gzipped else record


@pytest.mark.parametrize("gzipped", [True, False])
@pytest.mark.parametrize("off_by", [60, -60, -2])
def test_wrong_content_length_resynchronises_on_the_next_header(tmp_path, gzipped, off_by):
    records = [lying_record(f"http://s.test/{i}.html", f"<p>page {i}</p>".encode(), i,
                            off_by if i in (2, 4) else 0, gzipped) for i in range(1, 7)]
    path = tmp_path / ("lying.warc.gz" if gzipped else "lying.warc")
    path.write_bytes(b"".join(records))
    dropped = Counter()
    urls = [url for url, _ in read_html_responses(str(path), dropped)]
    for i in (1, 3, 5, 6):  # every record after a lying one is still read
        assert f"http://s.test/{i}.html" in urls
    assert dropped["warc_record_error"] == 2


def test_revisit_records_are_counted(tmp_path):
    page = http_response(b"<img src=x.jpg alt='a red star'>")
    path = tmp_path / "revisit.warc.gz"
    path.write_bytes(warc_record("response", "http://s.test/a.html", page, 1)
                     + warc_record("revisit", "http://s.test/a.html", page[:page.index(b"\r\n\r\n") + 4], 2))
    dropped = Counter()
    assert len(list(read_html_responses(str(path), dropped))) == 1
    assert dropped == {"revisit": 1}


@pytest.mark.parametrize("gzipped", [True, False])
def test_arc_file_is_a_one_line_error_naming_it(tmp_path, gzipped):
    arc = (b"filedesc://old.arc 0.0.0.0 20050101000000 text/plain 76\n"
           b"1 0 InternetArchive\nURL IP-address Archive-date Content-type Archive-length\n\n")
    path = tmp_path / ("old.warc.gz" if gzipped else "old.warc")
    path.write_bytes(gzip.compress(arc) if gzipped else arc)
    with pytest.raises(WitError, match=r"'.*old\.warc(\.gz)?' is an ARC file") as raised:
        list(read_html_responses(str(path), Counter()))
    assert "\n" not in str(raised.value)


def select_red_stars(workdir, warc) -> dict:
    """The crawl's selection of `warc` for the one query "red star", in `workdir`."""
    (workdir / "queries").mkdir()
    pq.write_table(pa.table({"query_id": pa.array([0], pa.int32()), "query": ["red star"]}),
                   workdir / "queries" / "queries.parquet")
    return select(load_config("crawl", None, {
        "workdir": str(workdir), "download": False, "workers": 1, "source": [f"warc:{warc}"]}))


def test_poison_pages_are_counted_and_every_good_pair_kept(tmp_path, monkeypatch):
    import wit_builder.crawl.run as crawl_run

    good = [warc_record("response", f"http://s.test/{i}.html", http_response(
        f"<img src=star{i}.jpg alt='a red star'>".encode()), i) for i in range(40)]
    poison = [warc_record("response", "http://s.test/sup.html", http_response(
        b"<img src=sup.jpg width='\xc2\xb2' height='1' alt='a red star'>"), 90),
              warc_record("response", "http://s.test/boom.html", http_response(
                  b"<img src=boom.jpg alt='a red star'>"), 91)]
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mixed.warc.gz").write_bytes(b"".join(good[:20] + poison + good[20:]))
    real = crawl_run.extract_images

    def extract(body, page_url):  # any exception of one page's handling, not just a known one
        if page_url.endswith("boom.html"):
            raise RuntimeError("poison")
        return real(body, page_url)

    monkeypatch.setattr(crawl_run, "extract_images", extract)
    stats = select_red_stars(tmp_path, tmp_path / "in" / "mixed.warc.gz")
    assert stats["dropped"]["page_error"] == 1
    assert stats["counts"]["pages"] == 42
    matched = pq.read_table(tmp_path / "data" / "matched").column("url").to_pylist()
    expected = {f"http://s.test/star{i}.jpg" for i in range(40)} | {"http://s.test/sup.jpg"}
    assert expected <= set(matched)


def warcio_records(count: int) -> list[bytes]:
    """`count` response records as warcio's writer writes them, one bytes each (uncompressed)."""
    from io import BytesIO

    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    records = []
    for i in range(count):
        output = BytesIO()
        writer = WARCWriter(output, gzip=False)
        body = f"<html><img src='/{i}.jpg' alt='a red star number {i}'></html>".encode()
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        writer.write_record(writer.create_warc_record(
            f"http://s.test/{i}.html", "response", payload=BytesIO(body), http_headers=http))
        records.append(output.getvalue())
    return records


def with_content_length(record: bytes, length: int) -> bytes:
    head, separator, rest = record.partition(b"\r\n\r\n")
    head = re.sub(rb"Content-Length: \d+", b"Content-Length: %d" % length, head)
    return head + separator + rest


@pytest.mark.parametrize("gzipped", [True, False])
def test_a_length_past_the_end_of_the_file_loses_no_record(tmp_path, gzipped):
    """warcio's records, the third one's Content-Length corrupted to run past the end of the
    file: the three records it swallowed are read, its own page kept up to the next header."""
    records = warcio_records(6)
    records[2] = with_content_length(records[2], 10_000_000)
    path = tmp_path / ("long.warc.gz" if gzipped else "long.warc")
    path.write_bytes(b"".join(gzip.compress(r, mtime=0) if gzipped else r for r in records))
    dropped = Counter()
    pages = dict(read_html_responses(str(path), dropped))
    assert sorted(pages) == [f"http://s.test/{i}.html" for i in range(6)]
    assert dropped == {"warc_record_error": 1}
    images = extract_images(pages["http://s.test/2.html"], "http://s.test/2.html")
    assert [pair.url for pair in images.pairs] == ["http://s.test/2.jpg"]  # not 3, 4, 5's


@pytest.mark.parametrize("gzipped", [True, False])
def test_a_length_past_the_end_with_nothing_after_is_a_cut_record(tmp_path, gzipped):
    records = warcio_records(3)
    records[2] = with_content_length(records[2], 10_000_000)
    path = tmp_path / ("cut.warc.gz" if gzipped else "cut.warc")
    path.write_bytes(b"".join(gzip.compress(r, mtime=0) if gzipped else r for r in records))
    dropped = Counter()
    assert [url for url, _ in read_html_responses(str(path), dropped)] == [
        "http://s.test/0.html", "http://s.test/1.html"]
    assert dropped == {"truncated_record": 1}


def test_a_page_over_the_parse_budget_is_counted_apart(tmp_path):
    good = [warc_record("response", f"http://s.test/{i}.html", http_response(
        f"<img src=star{i}.jpg alt='a red star'>".encode()), i) for i in range(5)]
    deep = warc_record("response", "http://s.test/deep.html", http_response(
        b"<div>" * 30_000 + b"<img src=deep.jpg alt='a red star'>"), 9)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "deep.warc.gz").write_bytes(b"".join(good[:2] + [deep] + good[2:]))
    stats = select_red_stars(tmp_path, tmp_path / "in" / "deep.warc.gz")
    assert stats["dropped"]["page_too_complex"] == 1 and "page_error" not in stats["dropped"]
    matched = pq.read_table(tmp_path / "data" / "matched").column("url").to_pylist()
    assert sorted(matched) == [f"http://s.test/star{i}.jpg" for i in range(5)]
