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
from wit_builder.synthweb.config import SynthwebConfig
from wit_builder.core.options import WitError
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


def remove_hidden_constructs(text: str) -> str:
    """Comments, refs, templates, tables and File/Image/Category links removed."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    text = re.sub(r"<ref[^>]*/>", "", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", "", text, flags=re.S)
    previous = None
    while previous != text:
        previous, text = text, re.sub(r"\{\{[^{}]*\}\}", "", text)
    text = re.sub(r"^\{\|.*?^\|\}", "", text, flags=re.S | re.M)
    text = remove_balanced(text, "[[", "]]", ("[[File:", "[[Image:", "[[Category:"))
    return text


def strip_wikitext(text: str) -> str:
    text = remove_hidden_constructs(text)
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


# What ends a run of adjacent words (README "Tokenisation"): sentence ends, line breaks, commas,
# colons, semicolons, brackets, list separators and dashes (a hyphen only where it joins nothing).
BOUNDARY = re.compile(r"[.!?\n,;:()\[\]{}/|\u2013\u2014\u2212\u2022\u00b7]|(?<![^\W_])-|-(?![^\W_])")


def sentences_of(text: str) -> list[list[str]]:
    plain = unicodedata.normalize("NFKC", strip_wikitext(text))
    return [[word.lower() for word in WORD.findall(part)] for part in BOUNDARY.split(plain)]


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
                      "<small>", "<br />", "&nbsp;", "&mdash;", "&amp;", "&#8211;", "&#233;",
                      "[https://",
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


def visible_link_targets(text: str) -> list[str]:
    """Targets of `[[links]]` outside removed constructs, normalised as MediaWiki does."""
    text = remove_hidden_constructs(text)
    targets = []
    for target in re.findall(r"\[\[([^\]|#]*)", text):
        target = target.replace("_", " ").strip()
        targets.append(target[:1].upper() + target[1:])
    return targets


def test_truth_totals_titles_redirects_and_links_agree_with_the_pages(wiki_dir: Path, truth: dict):
    pages = read_pages(wiki_dir / wiki.MULTISTREAM)
    articles = [page for page in pages if page["ns"] == 0 and not page["redirect"]]
    assert truth["pages"] == len(pages)
    assert truth["articles"] == len(articles) >= WIKI_SIZES["articles"]
    assert truth["redirects"] == sum(page["redirect"] for page in pages) > 0
    assert truth["namespaces"] == {str(ns): count for ns, count in
                                   sorted(Counter(page["ns"] for page in pages).items())}
    assert truth["article_titles"] == [page["title"] for page in articles]
    with bz2.open(wiki_dir / wiki.MULTISTREAM) as handle:
        redirects = {element.findtext(NS + "title"): element.find(NS + "redirect").get("title")
                     for _, element in ET.iterparse(handle)
                     if element.tag == NS + "page" and element.find(NS + "redirect") is not None}
    assert truth["redirect_targets"] == redirects
    inbound = Counter(target for page in articles for target in visible_link_targets(page["text"]))
    assert truth["inbound_links"] == dict(inbound)
    assert set(inbound) <= set(truth["article_titles"]) | set(redirects)


def test_special_spellings_are_counted_after_entity_decoding_and_nfkc(wiki_dir: Path, truth: dict):
    raw = bz2.decompress((wiki_dir / wiki.SINGLE_STREAM).read_bytes()).decode()
    assert "ﬁligree" in raw and "caf&amp;#233;" in raw and "O'Neill" in raw
    unigrams = truth["unigrams"]
    for word in ("filigree", "café", "o'neill", "state-of-the-art", "naïve", "éclair", "1987"):
        assert unigrams.get(word, 0) > 0, word
    assert not {"ﬁligree", "caf", "neill", "o", "state", "nbsp", "mdash", "ref"} & set(unigrams)
    assert all(word == unicodedata.normalize("NFKC", word).lower() for word in unigrams)


def test_concepts_are_frequent_enough_to_become_queries(truth: dict):
    from wit_builder.synthweb import concepts

    unigrams, bigrams = truth["unigrams"], truth["bigrams"]
    assert min(unigrams[word] for word in concepts.concept_words()) >= 100
    for phrase in ("red triangle", "striped background", "plain background"):
        assert bigrams[phrase] >= 100, phrase
    titles = set(truth["article_titles"])
    assert {"Triangle", "Red", "Background", "Striped background", "Red triangle"} <= titles
    assert any(" " in title and not title.endswith(")") for title in titles - {"Red triangle"})
    assert truth["pageviews"]["Triangle"] >= 70 and truth["inbound_links"]["Triangle"] > 0
    counts = sorted(unigrams.values(), reverse=True)
    assert counts[0] > 20 * counts[len(counts) // 10] > 0  # a Zipf head, a long tail
    assert sum(truth["bigrams"].values()) == truth["tokens"] - sum(
        1 for _ in range(truth["sentences"]))


# --- pageviews ----------------------------------------------------------------------------------
def test_pageviews_files_parse_and_english_views_sum_to_the_truth(wiki_dir: Path, truth: dict):
    files = sorted((wiki_dir / "pageviews").glob("pageviews-20260101-*0000.gz"))
    assert len(files) >= 3
    english: Counter[str] = Counter()
    domains, titles = set(), set()
    for path in files:
        raw = path.read_bytes()
        assert raw[4:8] == b"\0\0\0\0" and not raw[3] & 0x08  # mtime 0, no file name
        for line in gzip.decompress(raw).decode("utf-8").splitlines():
            domain, title, views, size = line.split(" ")
            assert int(views) > 0 and size == "0" and " " not in title
            domains.add(domain)
            titles.add(title)
            if domain in ("en", "en.m"):
                english[title.replace("_", " ")] += int(views)
    assert dict(english) == truth["pageviews"]
    assert {"en", "en.m", "de", "en.d"} <= domains
    assert {"Talk:", "File:", "Special:"} <= {title.split(":")[0] + ":" for title in titles}
    assert any(title.endswith("_(disambiguation)") for title in titles)
    assert any("_" in title and ":" not in title for title in titles)


# --- determinism, the benchmark entry point, bad sizes -------------------------------------------
def all_files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes()
            for path in sorted(root.rglob("*")) if path.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path: Path):
    config = SynthwebConfig(articles=30, vocab_size=500, words_per_article=60)
    outputs = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        changed = dataclasses.replace(config, seed=seed)
        wiki.write_wikipedia(tmp_path / name, changed)
        wordnet.write_wordnet(tmp_path / name, changed)
        outputs.append(all_files(tmp_path / name))
    first, again, other = outputs
    assert first == again
    assert not any(name.startswith(".") or ".tmp" in name for name in first)
    assert len([name for name in first if name.startswith("parts/")]) == wiki.PARTS
    for name in (wiki.MULTISTREAM, wiki.SINGLE_STREAM, wiki.TRUTH, "wordnet/data.noun",
                 "pageviews/pageviews-20260101-000000.gz"):
        assert first[name] != other[name], name


def test_benchmark_dump_is_a_readable_multistream_dump_of_the_asked_size(tmp_path: Path):
    manifest = wiki.write_benchmark_dump(tmp_path, articles=25, seed=3)
    pages = read_pages(Path(manifest["dump"]))
    assert sum(page["ns"] == 0 and not page["redirect"] for page in pages) >= 25
    assert len(pages) == manifest["pages"]
    assert manifest["xml_bytes"] == len(bz2.decompress(Path(manifest["dump"]).read_bytes()))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [wiki.MULTISTREAM, wiki.MULTISTREAM_INDEX])


@pytest.mark.parametrize("changes, message", [({"articles": 0}, "articles"),
                                              ({"vocab_size": 50}, "vocab_size")])
def test_unusable_sizes_are_a_one_line_error(tmp_path: Path, changes: dict, message: str):
    with pytest.raises(WitError, match=message):
        wiki.write_wikipedia(tmp_path, small_config(**changes))
    assert not list(tmp_path.rglob("*.bz2"))


# --- WordNet ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wordnet_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wordnet")
    wordnet.write_wordnet(out, small_config())
    return out


def data_lines(path: Path) -> dict[int, str]:
    """Synset lines of a data file by the byte offset they start at; header lines checked."""
    raw = path.read_bytes()
    lines, offset = {}, 0
    for line in raw.splitlines(keepends=True):
        if line.startswith(b"  "):
            assert not lines, "header lines come first"
        else:
            lines[offset] = line.decode("utf-8")
        offset += len(line)
    return lines


def parse_synset(line: str) -> dict:
    fields, gloss = line.split(" | ", 1)
    parts = fields.split()
    offset, lex_filenum, ss_type, w_cnt = int(parts[0]), int(parts[1]), parts[2], int(parts[3], 16)
    words = [(parts[4 + 2 * i], int(parts[5 + 2 * i], 16)) for i in range(w_cnt)]
    position = 4 + 2 * w_cnt
    p_cnt = int(parts[position])
    pointers = [tuple(parts[position + 1 + 4 * i: position + 5 + 4 * i]) for i in range(p_cnt)]
    rest = parts[position + 1 + 4 * p_cnt:]
    if ss_type == "v":
        f_cnt = int(rest[0])
        assert len(rest) == 1 + 3 * f_cnt and all(rest[1 + 3 * i] == "+" for i in range(f_cnt))
    else:
        assert rest == []
    assert len(parts[0]) == 8 and len(parts[1]) == 2 and len(parts[3]) == 2
    assert len(parts[position]) == 3 and line.endswith("  \n")
    return {"offset": offset, "lex_filenum": lex_filenum, "ss_type": ss_type, "words": words,
            "pointers": pointers, "gloss": gloss.strip()}


def read_wordnet(root: Path) -> dict[str, dict[int, dict]]:
    synsets = {}
    for name in ("noun", "verb", "adj", "adv"):
        synsets[name] = {offset: parse_synset(line)
                         for offset, line in data_lines(root / "wordnet" / f"data.{name}").items()}
    return synsets


def test_wordnet_offsets_are_byte_positions_and_every_pointer_resolves(wordnet_dir: Path):
    synsets = read_wordnet(wordnet_dir)
    files = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
    for name, by_offset in synsets.items():
        assert by_offset
        for offset, synset in by_offset.items():
            assert synset["offset"] == offset
            assert files[synset["ss_type"]] == name
            for symbol, target, pos, source_target in synset["pointers"]:
                assert len(target) == 8 and len(source_target) == 4
                int(source_target, 16)
                assert synsets[files[pos]][int(target)]["ss_type"] == pos, (symbol, target)
    satellites = [s for s in synsets["adj"].values() if s["ss_type"] == "s"]
    assert satellites and all(any(p[0] == "&" and p[2] == "a" for p in s["pointers"])
                              for s in satellites)


def test_wordnet_index_lists_each_lemma_with_its_synsets(wordnet_dir: Path):
    synsets = read_wordnet(wordnet_dir)
    for name, pos in (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r")):
        text = (wordnet_dir / "wordnet" / f"index.{name}").read_text()
        lines = [line for line in text.splitlines() if not line.startswith("  ")]
        lemmas = [line.split()[0] for line in lines]
        assert lemmas == sorted(lemmas) and len(set(lemmas)) == len(lemmas)
        expected = Counter(word.lower() for s in synsets[name].values() for word, _ in s["words"])
        assert Counter(lemmas) == Counter(set(expected))
        for line in lines:
            parts = line.split()
            lemma, line_pos, synset_cnt, p_cnt = parts[0], parts[1], int(parts[2]), int(parts[3])
            assert line_pos == pos and synset_cnt == expected[lemma]
            offsets = [int(offset) for offset in parts[4 + p_cnt + 2:]]
            assert int(parts[4 + p_cnt]) == synset_cnt == len(offsets)
            for offset in offsets:
                assert lemma in [word.lower() for word, _ in synsets[name][offset]["words"]]


def test_wordnet_covers_concepts_multiword_lemmas_and_words_absent_from_the_dump(
        wordnet_dir: Path, wiki_dir: Path, truth: dict):
    from wit_builder.synthweb import concepts

    wordnet_truth = json.loads((wordnet_dir / "wordnet_truth.json").read_text())
    synsets = read_wordnet(wordnet_dir)
    parsed = {(s["ss_type"], s["offset"]): [word for word, _ in s["words"]]
              for by_offset in synsets.values() for s in by_offset.values()}
    assert {(s["ss_type"], s["offset"]): s["lemmas"] for s in wordnet_truth["synsets"]} == parsed
    lemmas = set(wordnet_truth["lemmas"])
    assert set(concepts.concept_words()) - set(concepts.SHAPES.values()) <= lemmas
    assert {"red_triangle", "polka_dot", "striped_background"} <= lemmas
    absent = [head for head in wordnet_truth["head_lemmas"]
              if not all(word in truth["unigrams"] for word in head.lower().split("_"))]
    assert len(absent) >= 10
    colours = [s for s in synsets["adj"].values() if s["words"][0][0] in concepts.COLOURS]
    assert colours and all(s["ss_type"] == "s" for s in colours)
