"""The synthetic Wikipedia dump, pageviews and WordNet are what they claim: real formats, read back
with Python's own bz2/gzip/xml modules, and a ground truth that an independent reader reproduces."""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import html
import json
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import TEST_SYNTHWEB
from wit_builder.config import SynthwebConfig
from wit_builder.options import WitError
from wit_builder.synthweb import wiki, wordnet

NS = "{http://www.mediawiki.org/xml/export-0.11/}"
WIKI_SIZES = {key: TEST_SYNTHWEB[key] for key in ("articles", "vocab_size", "words_per_article")}


def small_config(**changes) -> SynthwebConfig:
    return dataclasses.replace(SynthwebConfig(**WIKI_SIZES), **changes)


@pytest.fixture(scope="module")
def wiki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wiki")
    wiki.write_wikipedia(out, small_config())
    return out


@pytest.fixture(scope="module")
def truth(wiki_dir: Path) -> dict:
    return json.loads((wiki_dir / wiki.TRUTH).read_text())


# --- an independent reader: the documented rules, written the slow and obvious way -------------
def remove_balanced(text: str, opener: str, closer: str, starts: tuple[str, ...]) -> str:
    """Remove every `opener...closer` span that starts with one of `starts`, nesting counted."""
    while True:
        found = [i for i in (text.find(start) for start in starts) if i >= 0]
        if not found:
            return text
        begin = min(found)
        depth, position = 0, begin
        while True:
            if text.startswith(opener, position):
                depth += 1
                position += len(opener)
            elif text.startswith(closer, position):
                depth -= 1
                position += len(closer)
                if depth == 0:
                    break
            else:
                position += 1
        text = text[:begin] + text[position:]


def strip_wikitext(text: str) -> str:
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<ref[^>]*/>", "", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.S)
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\{\{[^{}]*\}\}", "", text)
    text = re.sub(r"^\{\|.*?^\|\}", "", text, flags=re.S | re.M)
    text = remove_balanced(text, "[[", "]]", ("[[File:", "[[Image:", "[[Category:"))
    text = re.sub(r"\[\[[^\]|]*\|([^\]]*)\]\](\w*)", r"\1\2", text)
    text = re.sub(r"\[\[([^\]|]*)\]\](\w*)", r"\1\2", text)
    text = re.sub(r"\[https?://[^\s\]]+ ([^\]]*)\]", r"\1", text)
    text = re.sub(r"'{2,}", "", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"__[A-Z]+__", "", text)
    text = re.sub(r"^(=+)\s*(.*?)\s*\1\s*$", r"\2", text, flags=re.M)
    text = re.sub(r"^[*#:;]+\s*", "", text, flags=re.M)
    return html.unescape(text)


WORD = re.compile(r"[^\W_]+(?:['-][^\W_]+)*")


def sentences_of(text: str) -> list[list[str]]:
    plain = unicodedata.normalize("NFKC", strip_wikitext(text))
    return [[word.lower() for word in WORD.findall(part)] for part in re.split(r"[.!?\n]", plain)]


def read_pages(path: Path) -> list[dict]:
    """Every page of a MediaWiki export (bz2, one or many streams) via ElementTree."""
    pages = []
    with bz2.open(path) as handle:
        for _, element in ET.iterparse(handle):
            if element.tag == NS + "page":
                revision = element.find(NS + "revision")
                pages.append({
                    "id": int(element.findtext(NS + "id")),
                    "title": element.findtext(NS + "title"),
                    "ns": int(element.findtext(NS + "ns")),
                    "redirect": element.find(NS + "redirect") is not None,
                    "text": revision.findtext(NS + "text") or "",
                    "bytes": int(revision.find(NS + "text").get("bytes")),
                    "sha1": revision.findtext(NS + "sha1"),
                })
                element.clear()
    return pages


# --- the dump's layouts ------------------------------------------------------------------------
def test_multistream_single_stream_and_parts_hold_the_same_pages(wiki_dir: Path, truth: dict):
    multistream = read_pages(wiki_dir / wiki.MULTISTREAM)
    single = read_pages(wiki_dir / wiki.SINGLE_STREAM)
    parts = sorted((wiki_dir / "parts").glob("*.bz2"),
                   key=lambda path: int(re.search(r"articles(\d+)\.xml", path.name).group(1)))
    assert len(parts) == wiki.PARTS
    from_parts = [page for part in parts for page in read_pages(part)]
    assert multistream == single == from_parts
    assert len(multistream) == truth["pages"]
    for part in parts:
        first, last = map(int, re.search(r"-p(\d+)p(\d+)\.bz2$", part.name).groups())
        ids = [page["id"] for page in read_pages(part)]
        assert (ids[0], ids[-1]) == (first, last)
    assert bz2.decompress((wiki_dir / wiki.SINGLE_STREAM).read_bytes()).startswith(b"<mediawiki")


def test_multistream_index_offsets_open_streams_holding_the_indexed_pages(wiki_dir: Path):
    data = (wiki_dir / wiki.MULTISTREAM).read_bytes()
    index = bz2.decompress((wiki_dir / wiki.MULTISTREAM_INDEX).read_bytes()).decode()
    by_offset: dict[int, list[tuple[int, str]]] = {}
    for line in index.splitlines():
        offset, page_id, title = line.split(":", 2)
        by_offset.setdefault(int(offset), []).append((int(page_id), title))
    header = bz2.BZ2Decompressor()
    assert header.decompress(data).decode().rstrip().endswith("</siteinfo>")
    assert min(by_offset) == len(data) - len(header.unused_data)
    for offset, expected in by_offset.items():
        stream = bz2.BZ2Decompressor()
        xml = stream.decompress(data[offset:]).decode()
        assert stream.eof and xml.lstrip().startswith("<page>")
        root = ET.fromstring(f"<root>{xml}</root>")
        assert [(int(page.findtext("id")), page.findtext("title"))
                for page in root.iter("page")] == expected
        assert len(expected) <= wiki.PAGES_PER_STREAM
    last = max(by_offset)
    tail = bz2.BZ2Decompressor()
    tail.decompress(data[last:])
    footer = bz2.decompress(tail.unused_data)
    assert footer.strip() == b"</mediawiki>"


def test_pages_look_like_a_mediawiki_export(wiki_dir: Path):
    with bz2.open(wiki_dir / wiki.MULTISTREAM) as handle:
        root = ET.parse(handle).getroot()
    assert root.tag == NS + "mediawiki" and root.get("version") == "0.11"
    siteinfo = root.find(NS + "siteinfo")
    assert siteinfo.findtext(NS + "dbname") == "enwiki"
    keys = {int(ns.get("key")) for ns in siteinfo.iter(NS + "namespace")}
    assert {0, 1, 6, 10, 14} <= keys
    pages = read_pages(wiki_dir / wiki.MULTISTREAM)
    ids = [page["id"] for page in pages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for page in pages:
        assert page["bytes"] == len(page["text"].encode("utf-8"))
        assert len(page["sha1"]) == 31
    redirects = [page for page in pages if page["redirect"]]
    assert redirects and all(page["text"].startswith("#REDIRECT [[") for page in redirects)
    texts = "\n".join(page["text"] for page in pages if page["ns"] == 0)
    for construct in ("{{Infobox thing", "{{color|", "<ref>{{cite web", "<ref name=", "{| class=",
                      "[[File:", "[[Image:", "[[Category:", "== ", "'''", "''", "<!--",
                      "<small>", "<br />", "&nbsp;", "&mdash;", "&#233;", "[https://",
                      "__NOTOC__", "\n* ", "]]s ", "ﬁ"):
        assert construct in texts, construct
    assert {page["ns"] for page in pages} >= {0, 1, 6, 10, 14}
    assert any(page["title"].endswith(" (disambiguation)") for page in pages if page["ns"] == 0)


# --- the ground truth ---------------------------------------------------------------------------
def test_truth_counts_are_what_an_independent_reader_finds(wiki_dir: Path, truth: dict):
    unigrams: Counter[str] = Counter()
    bigrams: Counter[str] = Counter()
    articles = 0
    for page in read_pages(wiki_dir / wiki.SINGLE_STREAM):
        if page["ns"] != 0 or page["redirect"]:
            continue
        articles += 1
        for sentence in sentences_of(page["text"]):
            unigrams.update(sentence)
            bigrams.update(f"{a} {b}" for a, b in zip(sentence, sentence[1:]))
    assert articles == truth["articles"]
    assert sum(unigrams.values()) == truth["tokens"]
    assert dict(unigrams) == truth["unigrams"]
    assert dict(bigrams) == truth["bigrams"]
