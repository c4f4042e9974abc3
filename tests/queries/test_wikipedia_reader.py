"""Reading dumps in every accepted format into pages, and refusing bad ones with one-line errors."""

from __future__ import annotations

import bz2
import http.server
import logging
import random
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from support import wiki_data as fx
from wit_builder.core.options import WitError
from wit_builder.net.guard import AddressPolicy
from wit_builder.queries.wikipedia import reader
from wit_builder.queries.wikipedia.pages import (iter_pages, namespace_declarations,
                                                 namespace_names, xml_unescape)
from wit_builder.queries.wikipedia.reader import (PartFile, StreamRange, XmlRange, plan_dump,
                                          read_partition, xml_ranges)

ARTICLES = fx.make_articles(40, seed=3)


def titles_read(source: str, index: str = "", policy: AddressPolicy | None = None) -> Counter:
    plan = plan_dump(source, index, policy=policy)
    parts = list(plan.chunks()) if plan.serial else plan.partitions
    return Counter(page.title for part in parts for fragment in read_partition(part)
                   for page in iter_pages(fragment))


def all_titles() -> Counter:
    return Counter(article.title for article in ARTICLES)


def test_multistream_dump_is_cut_into_stream_ranges_that_read_every_page_once(tmp_path):
    dump = fx.write_multistream(tmp_path, ARTICLES, per_stream=4)
    plan = plan_dump(str(dump))
    assert plan.kind == "multistream" and not plan.serial
    assert len(plan.partitions) > 1 and all(isinstance(p, StreamRange) for p in plan.partitions)
    assert titles_read(str(dump)) == all_titles()


def test_single_stream_part_files_and_plain_xml_read_the_same_pages(tmp_path):
    single = fx.write_single_stream(tmp_path / "dump.xml.bz2", ARTICLES)
    parts = fx.write_parts(tmp_path / "parts", ARTICLES, parts=3)
    plain = fx.write_plain(tmp_path / "dump.xml", ARTICLES)
    assert plan_dump(str(single)).kind == "single-stream"
    assert [type(p) for p in plan_dump(str(parts)).partitions] == [PartFile] * 3
    assert plan_dump(str(parts / "*.bz2")).kind == "parts"
    for source in (single, parts, plain, parts / "*p*.bz2"):
        assert titles_read(str(source)) == all_titles(), source


def test_plain_xml_ranges_assign_each_page_to_exactly_one_range(tmp_path):
    plain = fx.write_plain(tmp_path / "dump.xml", ARTICLES)
    size = plain.stat().st_size
    for step in (97, 1000, 4096):  # boundaries fall inside tags, titles and texts
        ranges = [XmlRange(str(plain), start, min(size, start + step)) for start in range(0, size, step)]
        read = Counter(page.title for part in ranges for fragment in read_partition(part)
                       for page in iter_pages(fragment))
        assert read == all_titles(), step
    assert len(xml_ranges(str(plain), target=1 << 16)) >= 1


def test_pages_carry_title_namespace_redirect_and_unescaped_text(tmp_path):
    plain = fx.write_plain(tmp_path / "dump.xml", ARTICLES)
    pages = iter_pages(plain.read_bytes())
    by_title = {page.title: page for page in pages}
    assert by_title["Old name"].redirect and by_title["Old name"].redirect_target == "Article 0"
    assert by_title["Talk:Article 0"].namespace == 1 and not by_title["Article 0"].redirect
    assert by_title["Article 5"].text == ARTICLES[8].wikitext  # three special pages come first
    assert xml_unescape("&lt;ref&gt; &amp;nbsp; &#233;&#x41;") == "<ref> &nbsp; éA"
    assert "Talk" in namespace_names(fx.header().encode())


def test_missing_index_falls_back_to_the_serial_reader_with_a_warning(tmp_path, caplog):
    dump = fx.write_multistream(tmp_path, ARTICLES)
    (tmp_path / "enwiki-test-pages-articles-multistream-index.txt.bz2").unlink()
    with caplog.at_level(logging.WARNING):
        plan = plan_dump(str(dump))
    assert plan.serial and "not found" in caplog.text
    assert titles_read(str(dump)) == all_titles()


def test_mismatched_index_falls_back_to_the_serial_reader_with_a_warning(tmp_path, caplog):
    dump = fx.write_multistream(tmp_path, ARTICLES)
    index = tmp_path / "enwiki-test-pages-articles-multistream-index.txt.bz2"
    index.write_bytes(bz2.compress(b"1234:1:Article 0\n5678:2:Article 1\n"))
    with caplog.at_level(logging.WARNING):
        plan = plan_dump(str(dump))
    assert plan.serial and "does not match" in caplog.text
    assert titles_read(str(dump)) == all_titles()


def test_index_that_leaves_out_the_first_streams_is_a_mismatch(tmp_path, caplog):
    dump = fx.write_multistream(tmp_path, ARTICLES, per_stream=4)
    index = tmp_path / "enwiki-test-pages-articles-multistream-index.txt.bz2"
    lines = bz2.decompress(index.read_bytes()).splitlines(keepends=True)
    index.write_bytes(bz2.compress(b"".join(lines[8:])))  # the first two streams' pages
    with caplog.at_level(logging.WARNING):
        plan = plan_dump(str(dump))
    assert plan.serial and "header stream" in caplog.text
    assert titles_read(str(dump)) == all_titles()


@pytest.mark.parametrize("content, problem", [
    (b"PK\x03\x04 this is a zip file", "neither bz2 nor XML"),
    (b"", "is empty"),
    (b"<html><body><page>no</page></body></html>", "not a MediaWiki export"),
])
def test_bad_dump_content_is_a_one_line_error_naming_the_file(tmp_path, content, problem):
    dump = tmp_path / "dump.xml.bz2"
    dump.write_bytes(content)
    with pytest.raises(WitError, match=problem) as error:
        plan_dump(str(dump))
    assert str(dump) in str(error.value) and "\n" not in str(error.value)


def test_truncated_multistream_is_an_error(tmp_path):
    dump = fx.write_multistream(tmp_path, fx.make_articles(400, seed=1))
    data = dump.read_bytes()
    dump.write_bytes(data[:len(data) - 200])
    with pytest.raises(WitError, match="truncated|not valid bz2"):
        plan = plan_dump(str(dump))
        for part in plan.partitions:
            list(read_partition(part))


def test_truncated_single_stream_is_an_error(tmp_path):
    dump = fx.write_single_stream(tmp_path / "dump.xml.bz2", ARTICLES)
    dump.write_bytes(dump.read_bytes()[:-300])
    with pytest.raises(WitError, match="truncated|not valid bz2"):
        list(plan_dump(str(dump)).chunks())


def serve_directory(directory: Path) -> tuple[http.server.HTTPServer, str]:
    handler = lambda *args: http.server.SimpleHTTPRequestHandler(*args, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_url_is_streamed_without_saving_it_first(tmp_path):
    fx.write_single_stream(tmp_path / "dump.xml.bz2", ARTICLES)
    fx.write_plain(tmp_path / "dump.xml", ARTICLES)
    server, base = serve_directory(tmp_path)
    trusted = AddressPolicy(trusted_origins=(base.removeprefix("http://"),))
    try:
        for name in ("dump.xml.bz2", "dump.xml"):
            assert plan_dump(f"{base}/{name}", policy=trusted).kind == "url"
            assert titles_read(f"{base}/{name}", policy=trusted) == all_titles()
        with pytest.raises(WitError, match="cannot be fetched"):
            plan_dump(f"{base}/missing.xml.bz2", policy=trusted)
        # queries' own policy (no --allow-private): public addresses only
        with pytest.raises(WitError, match="non-public address.*download the dump first"):
            plan_dump(f"{base}/dump.xml.bz2")
    finally:
        server.shutdown()


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 22])
def test_index_offsets_are_the_same_whatever_the_read_block(tmp_path, monkeypatch, block):
    fx.write_multistream(tmp_path, ARTICLES, per_stream=3)
    index = tmp_path / "enwiki-test-pages-articles-multistream-index.txt.bz2"
    lines = bz2.decompress(index.read_bytes()).splitlines()
    expected = list(dict.fromkeys(int(line.split(b":")[0]) for line in lines))
    monkeypatch.setattr(reader, "READ_SIZE", block)
    assert reader.read_index_offsets(index) == expected and len(expected) > 10
    index.write_bytes(bz2.compress(b"\n".join(lines)))  # no newline after the last line
    assert reader.read_index_offsets(index) == expected


def test_index_line_without_an_offset_falls_back_to_the_serial_reader(tmp_path, caplog):
    dump = fx.write_multistream(tmp_path, ARTICLES)
    index = tmp_path / "enwiki-test-pages-articles-multistream-index.txt.bz2"
    index.write_bytes(bz2.compress(bz2.decompress(index.read_bytes()) + b"no offset here\n"))
    with caplog.at_level(logging.WARNING):
        plan = plan_dump(str(dump))
    assert plan.serial and "unreadable" in caplog.text
    assert titles_read(str(dump)) == all_titles()


def test_truncated_index_falls_back_saying_why(tmp_path, caplog):
    dump = fx.write_multistream(tmp_path, ARTICLES)
    index = tmp_path / "enwiki-test-pages-articles-multistream-index.txt.bz2"
    index.write_bytes(index.read_bytes()[:-40])
    with caplog.at_level(logging.WARNING):
        plan = plan_dump(str(dump), workers=2)
    assert plan.serial and "unreadable (Compressed file ended" in caplog.text
    assert titles_read(str(dump)) == all_titles()


# The pattern namespace declarations were read with until issue 17: cubic on a header of
# repeated openings; kept here as the reference the forward scan must agree with.
NAMESPACE_REGEX = re.compile(rb"<namespace\b[^>]*\bkey=\"(-?\d+)\"[^>]*?(?:/>|>(.*?)</namespace>)",
                             re.S)
HEADER_PIECES = [b"<namespace", b' key="1"', b' key="-2"', b">", b"/>", b"/", b"</namespace>",
                 b"Talk", b" ", b"<namespaces", b'case="x"', b"\n", b'key="3"', b"<", b"0"]


def test_namespace_declarations_are_read_as_the_regex_reads_them():
    rng = random.Random(17)
    for _ in range(5000):
        header = b"".join(rng.choice(HEADER_PIECES) for _ in range(rng.randint(0, 14)))
        assert namespace_declarations(header) == NAMESPACE_REGEX.findall(header), header
    assert namespace_declarations(fx.header().encode())[:2] == [(b"0", b""), (b"1", b"Talk")]


def test_a_crafted_header_is_read_in_linear_time():
    """16,000 openings that never close: the regex took minutes (each opening rescanned every
    key after it); the scan costs what a header of real declarations of that size costs."""
    header = b'<siteinfo><namespace key="1" ' * 16_000
    plain = (b'<namespace key="1">Talk</namespace>' * 16_000)[:len(header)]
    found, seconds = timed(namespace_declarations, header)
    declared, plain_seconds = timed(namespace_declarations, plain)
    assert found == [] and len(declared) > 10_000
    assert seconds < 25 * plain_seconds


def timed(function, argument):
    started = time.perf_counter()
    result = function(argument)
    return result, time.perf_counter() - started
