"""The compiled hot loop of `wit queries` (wit_builder/queries/_hotloop.c) counts exactly what the
Python path counts: on generated dumps, on every wikitext construct (quirks included), on XML
edge cases, on random markup, and down to the bytes of queries.parquet."""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import wiki_data as fx
from wit_builder.cli import main
from wit_builder.queries import counts
from wit_builder.queries.counts import (CountTask, PartialCounts, compiled_available,
                                        count_partition_compiled, count_partition_python)
from wit_builder.synthweb import wiki
from wit_builder.queries.wikipedia.reader import XmlChunk, plan_dump, read_partition

# The cases of test_wikitext.py, then the regex quirks and Unicode cases the byte passes replay.
CONSTRUCTS = [
    "Before {{Infobox person|name=Ada {{birth date|1815|12|10}}|spouse={{marriage|X}}}} after",
    "A {{cite web\n| url = http://x.org\n| title = {{{1|hidden}}}\n}} b",
    'Intro.\n{| class="wikitable"\n|-\n! head\n|-\n| cell\n{|\n| inner\n|}\n| more\n|}\nOutro.',
    'Fact<ref name="a">{{cite book|title=Hidden}} hidden words</ref> and<ref name="a" /> more',
    "one <!-- hidden\nstill hidden --> two <!-- unclosed",
    'a <small>b</small> <span style="x">c</span><br />d <sup>2</sup>',
    "x <math>\\alpha + beta</math> y <gallery>\nA.jpg|hidden\n</gallery> z <score/> w",
    "[[Paris|the capital]] of [[France]], [[dog]]s and [[Cat#Anatomy]]",
    "a [[File:Map.png|thumb|A [[river]] in [[Spain|spain]]]] b [[Image:x.jpg]] "
    "c [[Category:Rivers]] d [[category:Lower]] e",
    "a [[fr:Chien]] b [[Star Wars: Episode IV]]",
    "see [https://example.org/page the site] or [http://x.org] or https://bare.example/x end",
    "Intro text\n== Early life ==\nBorn here.\n=== Family ===\nMore",
    "'''Bold''' and ''italic'' and '''''both'''''\n* item one\n# item two\n: indented\n; term",
    "caf&#233; &amp; bar&nbsp;baz &lt;ref&gt;kept&lt;/ref&gt; 5&ndash;6",
    "__NOTOC__ a\n----\nb __TOC__",
    "alpha {{x}} beta<ref>y</ref> gamma",
    "[[Paris|p]] {{box|[[Hidden]]}} <ref>[[Ref]]</ref> [[File:x.jpg|A [[Caption]]]] "
    "[[Rome#Forum]] [[Category:C]]",
    "a }} b {{unclosed c {{x}} d",
    "a\n|}\nb\n{|\n| cell\nc",
    # brace runs, line breaks whose guard is case-sensitive, brackets and closers left alone
    "{{{{x}}}} a {{{b}}} c {{a}}} d {}} e {{ {| }} f",
    "a<Br>b", "a<br>b<Br>c<BR >d<br/>e<br\n/>f<br\u2003>g",
    "x]] y [ z", "x [[a]] y ]] z [[[b]]] [[[[c]]]]",
    "a\n|}\nb", "  {| x\n a |} b\n\t|} c\n|}d",
    "<REF>hidden</ReF> shown <ref name=x>unclosed", "<refs>kept</refs> <ref/> a <ref / > b",
    "<ref\u00e9>kept</ref> <ref\u00a0name=x>hidden</ref> after </ref\u2003> stray",
    "<MATH>x</math> y <math2>kept</math2> <pre\nclass=a>hidden</pre > z <ce>H2O</ce>",
    "<\u017fource>long s</source> x", "[[\u0130mage:x.png|cap]] y", "[[f\u0131le:x|cap]] z",
    "<maplin\u212a>k</maplink> w", "<\u00e9t\u00e9>kept</\u00e9t\u00e9> v",
    "[[ :file :x]] a [[  Category  : y]] b [[en:Foo]] c [[zh-yue:Bar]] d [[abcd:x]] e "
    "[[de: x]] f [[xx-:y]] g [[fr:\u00e9t\u00e9]] h [[\u00c9mile Zola]]",
    "[[a|b|c]] [[x#y|z]] [[#sec]] [[ #sec ]] [[ Target ]] [[\u00a0Spaced\u2003]] [[a\nb]]",
    "[https://ex.org/\u00e9path label] [//proto.rel label2] [http:no slashes] "
    "[ftp://f.org\u00a0nb] [https://x.org]]",
    "http://a.b/c\u00e9d e https://x.y|z http:// w httpx://q hhttp://r.s t",
    "'' ' ''' a''b it's o''neill don't rock-'n'-roll a--b -x- 'q'",
    "__A__B__ __notmagic__ ___X___ __ __Z",
    # Unicode: NFKC, case, folding, combining marks, sentence ends that NFKC makes
    "\ufb01ne \uff26\uff55\uff4c\uff4c O\u2019Neill caf\u00e9 na\u00efve e\u0301 \u0065\u0301t\u00e9",
    "\u039f\u0394\u039f\u03a3 \u03a3. \u0391\u03a3'\u0392 \u6771\u4eac \u2026ellipsis a\u2026b",
    "\u01c4 \u00df \u0130stanbul \ufb00 \u00bd \u00b2 \u2082 \u2460 \uff0e\uff01 x\uff1fy",
    "a\u00adb co&shy;op &nbspx &nbsp &amp &AMP; &NotAnEntity; &#8211 &#x2013 &#39;s o&#39;neill",
    "\x1c\x1d a\x0bb\x0cc\rd tab\tsep\fform \u2028line\u2029 \x85 next",
    "e&#769; a &#769;b =&#824; <\u0338 x&#10;y &#13; z &#0; &#128; &#xD800; &#1114112;",
    "&amp;nbsp; &amp;amp; &lt;br&gt; 10&nbsp;km 1990&ndash;95 a&mdash;b x&hellip; y&rsquo;s",
    "Red&nbsp;with&nbsp;triangle &#8211;&nbsp;had&nbsp;''to''&nbsp;dry. \u2013 \u2014 \u00a0",
    # NUL: part of a bare URL (the C loop once stopped the URL there), of a word's segment, of
    # a link target; a lone surrogate makes the page invalid UTF-8 (the Python reference's page)
    "see http://a.b/c\x00d e https://\x00x f http://\x00 g \x00word wo\x00rd [[a\x00b]] end",
    "x &#0; y http://q.r/&#0;s z &#x0;",
    "lone \ud800 surrogate http://a.b/\udfff c [[T\udc80]]",
]

# Page XML the reader sees, beyond what escape() makes: references decoded at the XML level,
# invalid UTF-8, odd namespaces, redirects and text elements.
RAW_PAGES = [
    b"<title>A &amp; B</title><ns>0</ns><revision><text>caf&#233; &#38;amp; x &#xe9;t&#xE9;"
    b" &#X41; &#0065; &#1234567; &amp;#60; &amp;lt; y</text></revision>",
    b"<title>Bad \xff title</title><ns>0</ns><revision><text>ok \xff\xfe bytes \xc3 end"
    b" [[Link \xe9]]</text></revision>",
    b"<title>S</title><ns>0</ns><revision><text>lone &#xD800; surrogate</text></revision>",
    b"<title>R</title><ns>0</ns><redirect title=\"T &amp; U\" /><revision><text>#REDIRECT "
    b"[[T]]</text></revision>",
    b"<title>R2</title><ns>0</ns><redirect /><revision><text>x</text></revision>",
    b"<title>R3</title><ns>0</ns><redirect subtitle=\"no\" title=\"yes\"/><revision><text>x"
    b"</text></revision>",
    b"<title>NR</title><ns>0</ns><redirects/><revision><text>counted words</text></revision>",
    b"<title>N1</title><ns> -0 </ns><revision><text>minus zero</text></revision>",
    b"<title>N2</title><ns>000</ns><revision><text>zeros</text></revision>",
    b"<title>N3</title><ns>14</ns><revision><text>category</text></revision>",
    b"<title>N4</title><revision><ns>1</ns><text>ns after revision</text></revision>",
    b"<title>N5</title><revision><text>no ns at all</text></revision>",
    b"<title>E</title><ns>0</ns><revision><text bytes=\"0\" /></revision>",
    b"<title>U</title><ns>0</ns><revision><text>never closed</revision>",
    b"<title>Dup</title><ns>0</ns><redirect title=\"First\"/><revision><text/></revision>",
    b"<title>Dup</title><ns>0</ns><redirect title=\"Second\"/><revision><text/></revision>",
    # NUL as XML references (decoded before the wikitext passes) and raw, in and out of URLs
    b"<title>Z</title><ns>0</ns><revision><text>see http://a.b/c&#0;d e http://a&#x0;bc f "
    b"http://a&#x00;b g\x00h [[L&#0;k]] https://x\x00y end</text></revision>",
    b"<title>Z\x00&#0;</title><ns>0</ns><revision><text>i http://\xff\x00 j http://a.b/\xc3 "
    b"k &#xD800; http://a.b/&#xDFFF;c l</text></revision>",
]

MARKUP = ["{{", "}}", "{", "}", "[[", "]]", "[", "]", "|", "\n{|", "\n|}", "\n", " ", " ", " ",
          "<ref>", "</ref>", "<ref/>", "<ref name=a>", "<!--", "-->", "''", "'''", "'", "-",
          "__TOC__", "<br>", "<Br/>", "<small>", "</small>", "<math>", "</math>", "http://x.org/a",
          "[http://y.org label]", "File:", "Category:", ":", "#", "&nbsp;", "&amp;", "&#233;",
          "&bogus;", "\u00e9", "\ufb01", "\u2013", "\u2026", ".", "!", "?", "word", "Alpha", "beta",
          "o'neill", "state-of-the-art", "42", "en:", "\u00a0", "\u03a3", "<", ">", "==", "fr:",
          "Image:", "<gallery>", "</gallery>", "\u0130", "&lt;", "''x''", "\t", "\u3000", "\u2019",
          "&mdash;", "&#8211;", "\uff26", "e\u0301", "\u0301", "&rsquo;", "&hellip;", "&#39;",
          "\u00ad", "\u2122", "na\u00efve", "\u6771",
          # NUL (raw, and as references decoded after the passes) and lone surrogates
          "\x00", "\x00", "&#0;", "&#x0;", "&#x00;", "\ud800", "\udfff", "https://z.org/",
          # the tokenisation rules: numbers, abbreviations, possessives, boundaries
          "1,000", "3.5", "1", "000", ",", ",5", ".5", "5", "U.S.", "i.e.", "U.", "S.", "a.", "'s",
          "\u2019s", "Lincoln's", ";", "(", ")", "/", "\u2014", "&ndash;", "\u2212", "\u2022",
          "\u00b7", "1775\u20131783", "1775-1783", "covid-19", "\uff11,\uff10\uff10\uff10"]
# Raw bytes of page text, beyond what MARKUP encodes: NUL and references at the XML level
# (decoded before the wikitext passes), invalid UTF-8 (a stray continuation byte, a truncated
# sequence, an overlong form, a surrogate's bytes).
RAW_MARKUP = [b"\x00", b"&#0;", b"&#x0;", b"&#x00;", b"&#xD800;", b"&#1114112;", b"&amp;#0;",
              b"http://a.b/\x00c", b"http://a.b/&#0;c"]
INVALID_UTF8 = [b"\xff", b"\x80", b"\xc3", b"\xe2\x80", b"\xc0\xaf", b"\xed\xa0\x80"]


def spilled_pairs(spills: list[str]) -> Counter:
    pairs: Counter = Counter()
    for path in spills:
        words, batches = counts.read_spill(path)
        words = words.to_pylist()
        for batch in batches:
            table = batch.to_pydict()
            for first, second, count in zip(table["w1"], table["w2"], table["count"]):
                pairs[words[first], words[second]] += count
    return pairs


def comparable(partial: PartialCounts) -> dict:
    return {"unigrams": partial.unigrams, "pairs": spilled_pairs(partial.spills),
            "links": partial.links, "pages": partial.pages, "articles": partial.articles,
            "redirects": partial.redirects, "other_namespaces": partial.other_namespaces,
            "tokens": partial.tokens, "titles": partial.titles,
            "redirect_targets": partial.redirect_targets}


def counted_both_ways(partition, folder: Path, count_links: bool = True) -> tuple[dict, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    number = len(list(folder.iterdir()))
    python = count_partition_python(CountTask(partition, str(folder / f"p{number}.arrow"),
                                              count_links))
    compiled = count_partition_compiled(CountTask(partition, str(folder / f"c{number}.arrow"),
                                                  count_links))
    return comparable(python), comparable(compiled)


def fragment(wikitexts: list[str]) -> bytes:
    pages = "".join(f"<page>\n<title>P{n}</title>\n<ns>0</ns>\n<revision><text xml:space="
                    f'"preserve">{escape(text)}</text></revision>\n</page>\n'
                    for n, text in enumerate(wikitexts))
    return f"<mediawiki>{pages}</mediawiki>".encode("utf-8", "surrogatepass")


def test_the_compiled_loop_is_built_by_the_install():
    assert compiled_available(), "pip install -e . did not build wit_builder/queries/_hotloop.c"


# Real article prose (Abraham Lincoln, American Revolution, Aristotle) as the dump spells it.
RULES_PAGE = """'''Abraham Lincoln''' (February 12, 1809&nbsp;– April 15, 1865) was the 16th
president of the [[United States]]. In 1860. Lincoln won; the [[American Revolutionary War]]
(1775&ndash;1783) had 1,000 men, i.e. 3.5 per cent, of the [[U.S. Army]]. Lincoln's hat and
Aristotle’s ''Physics'': 10 000 copies, [[Nineteen Eighty-Four]], 1775-1783."""


def test_the_tokenisation_rules_count_the_same_in_both_paths(tmp_path: Path):
    python, compiled = counted_both_ways(XmlChunk("rules", 0, fragment([RULES_PAGE])), tmp_path)
    assert compiled == python
    unigrams, pairs = compiled["unigrams"], compiled["pairs"]
    assert unigrams["1,000"] == unigrams["3.5"] == unigrams["u.s."] == unigrams["i.e."] == 1
    assert unigrams["lincoln"] == 3 and unigrams["aristotle"] == 1
    assert not {"s", "e", "u", "lincoln's", "aristotle's"} & set(unigrams)
    for pair in [("12", "1809"), ("1809", "april"), ("1860", "lincoln"), ("1775", "1783"),
                 ("won", "the"), ("men", "i.e."), ("cent", "of")]:
        assert pair not in pairs, pair
    for pair in [("u.s.", "army"), ("lincoln", "hat"), ("aristotle", "physics"),
                 ("nineteen", "eighty-four"), ("1,000", "men"),
                 ("10", "000")]:  # counted; the query selection leaves out pairs of numbers
        assert pairs[pair] == 1, pair


@pytest.mark.parametrize("wikitext", CONSTRUCTS, ids=range(len(CONSTRUCTS)))
def test_every_wikitext_construct_counts_the_same_in_both_paths(wikitext: str, tmp_path: Path):
    python, compiled = counted_both_ways(XmlChunk("construct", 0, fragment([wikitext])), tmp_path)
    assert compiled == python


def test_xml_edge_cases_count_the_same_in_both_paths(tmp_path: Path):
    xml = b"<mediawiki>" + b"".join(b"<page>" + page + b"</page>\n" for page in RAW_PAGES)
    python, compiled = counted_both_ways(XmlChunk("raw", 0, xml + b"</mediawiki>"), tmp_path)
    assert compiled == python
    assert compiled["redirect_targets"]["Dup"] == "Second" and compiled["articles"] == 12


def test_random_markup_counts_the_same_in_both_paths(tmp_path: Path):
    rng = random.Random(7)
    texts = ["".join(rng.choice(MARKUP) for _ in range(rng.randint(0, 80))) for _ in range(3000)]
    python, compiled = counted_both_ways(XmlChunk("random", 0, fragment(texts)), tmp_path)
    assert compiled == python and compiled["tokens"] > 5_000


def test_random_bytes_with_nul_and_invalid_utf8_count_the_same_in_both_paths(tmp_path: Path):
    """Page text as raw bytes: XML-escaped markup mixed with NUL, XML-level references and
    invalid UTF-8 (a page that is not valid UTF-8 is stripped by the Python reference)."""
    rng = random.Random(13)
    pieces = [escape(piece).encode("utf-8", "surrogatepass") for piece in MARKUP
              if not any(0xD800 <= ord(ch) <= 0xDFFF for ch in piece)] + RAW_MARKUP * 3
    pages = []
    for number in range(2000):  # one page in four may be invalid UTF-8
        choices = pieces + INVALID_UTF8 if number % 4 == 0 else pieces
        text = b"".join(rng.choice(choices) for _ in range(rng.randint(0, 60)))
        pages.append(b"<page><title>P%d</title><ns>0</ns><revision><text>%s</text></revision>"
                     b"</page>\n" % (number, text))
    xml = b"<mediawiki>" + b"".join(pages) + b"</mediawiki>"
    python, compiled = counted_both_ways(XmlChunk("bytes", 0, xml), tmp_path)
    assert compiled == python and compiled["tokens"] > 3_000


HYPOTHESIS_PIECES = ([escape(piece).encode("utf-8", "surrogatepass") for piece in MARKUP]
                     + RAW_MARKUP + INVALID_UTF8)


@given(st.lists(st.lists(st.sampled_from(HYPOTHESIS_PIECES), max_size=40).map(b"".join),
                min_size=1, max_size=6))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_any_page_bytes_count_the_same_in_both_paths(texts: list[bytes]):
    """Generated page bytes: markup, the tokeniser's numbers, abbreviations, possessives and
    boundaries, NUL, `&#0;`, lone surrogates and invalid UTF-8."""
    pages = b"".join(b"<page><title>P%d</title><ns>0</ns><revision><text>%s</text></revision>"
                     b"</page>\n" % (number, text) for number, text in enumerate(texts))
    with tempfile.TemporaryDirectory() as folder:
        python, compiled = counted_both_ways(
            XmlChunk("generated", 0, b"<mediawiki>" + pages + b"</mediawiki>"), Path(folder))
    assert compiled == python


def test_pages_the_byte_passes_cannot_replay_go_to_the_python_reference():
    counter = counts._hotloop.FragmentCounter(
        counts.segment_tokens, counts.decoded_segment_tokens, counts.xml_unescape,
        counts.strip_with_links, count_links=True, stand_ins=counts.ascii_stand_ins())
    counter.count(fragment(["<\u017fource>x</source> y", "plain words", "ok \u00e9t\u00e9"]))
    stats = counter.stats()
    assert stats["fallback_pages"] == 1 and stats["python_segments"] == 1
    # re.I lets "ſ" match "s", so Python drops the <ſource> element (unclosed: to the end)
    assert counter.unigrams() == {"plain": 1, "words": 1, "ok": 1, "\u00e9t\u00e9": 1}


def test_generated_dumps_count_the_same_in_both_paths(tmp_path: Path):
    articles = fx.make_articles(80, seed=3)
    dump = fx.write_multistream(tmp_path, articles)
    bench = wiki.write_benchmark_dump(tmp_path / "bench", 150, seed=5)
    for source in (str(dump), bench["dump"]):
        for number, partition in enumerate(plan_dump(source).partitions):
            for links in (True, False):
                python, compiled = counted_both_ways(partition, tmp_path / f"spill-{number}", links)
                assert compiled == python


def test_indexed_bzip2_and_python_bz2_read_the_same_fragments(tmp_path: Path):
    from wit_builder.queries.wikipedia import reader

    assert reader.indexed_bzip2 is not None  # a dependency: else both sides would be Python's
    dump = fx.write_multistream(tmp_path, fx.make_articles(30, seed=1))
    for partition in plan_dump(str(dump)).partitions:
        assert b"".join(read_partition(partition)) == \
            b"".join(read_partition(partition, fast_bz2=False))


def test_queries_parquet_is_byte_identical_with_and_without_the_compiled_loop(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    dump = fx.write_multistream(tmp_path, fx.make_articles(120, seed=2))
    outputs = {}
    for name in ("compiled", "python"):
        if name == "python":
            monkeypatch.setattr(counts, "_hotloop", None)
        assert main(["queries", "--workdir", str(tmp_path), "--out", f"out-{name}", "--wiki",
                     str(dump), "--workers", "1", "--min-count", "3", "--bigram-min-count", "2",
                     "--title-min-links", "1"]) == 0
        outputs[name] = [(tmp_path / f"out-{name}" / file).read_bytes()
                         for file in ("queries.parquet", "queries.txt")]
    assert outputs["compiled"] == outputs["python"]
    assert len(outputs["compiled"][1].splitlines()) > 50


# ---- hash flooding: the tables' keys come from the dump's text ----

# The hash the tables used before it was keyed (an unkeyed multiply-xorshift over the key's
# zero-padded 64-bit words): its steps are invertible, so keys that all land in one slot can be
# computed instead of searched for.
OLD_HASH_SEED, OLD_HASH_ROUND, OLD_HASH_FINAL = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9,
                                                  0x94D049BB133111EB)
MASK64 = (1 << 64) - 1


def old_hash(key: bytes) -> int:
    h = OLD_HASH_SEED ^ len(key)
    padded = key + bytes(-len(key) % 8)
    for at in range(0, len(padded), 8):
        h = ((h ^ int.from_bytes(padded[at:at + 8], "little")) * OLD_HASH_ROUND) & MASK64
        h ^= h >> 31
    h = (h * OLD_HASH_FINAL) & MASK64
    return h ^ (h >> 29)


def colliding_link_targets(count: int, seed: int = 11) -> list[bytes]:
    """`count` distinct 16-byte link targets (letters, digits, harmless punctuation) whose old
    hashes all end in 32 zero bits: one probe run under any table size up to 2^32 slots.

    For a random first word, the second word that gives a chosen hash is solved for (the steps
    inverted); it is kept when its bytes are all allowed (about one try in 10,000)."""
    import numpy as np

    allowed = np.frombuffer(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                            b"!$%()*+,-.;=?@^`~\"", dtype=np.uint8)
    ok = np.zeros(256, dtype=bool)
    ok[allowed] = True
    u = np.uint64

    def unshift(y, shift):  # inverse of y ^= y >> shift, for shift >= 22
        return y ^ (y >> u(shift)) ^ (y >> u(2 * shift))

    inverse_round, inverse_final = (u(pow(m, -1, 1 << 64)) for m in (OLD_HASH_ROUND,
                                                                      OLD_HASH_FINAL))
    rng = np.random.default_rng(seed)
    found: dict[bytes, None] = {}
    with np.errstate(over="ignore"):
        while len(found) < count:
            tries = 1 << 20
            first = rng.choice(allowed, size=(tries, 8)).view("<u8").ravel()
            wanted = rng.integers(1, 1 << 32, size=tries, dtype=np.uint64) << u(32)
            h1 = (u(OLD_HASH_SEED ^ 16) ^ first) * u(OLD_HASH_ROUND)
            h1 ^= h1 >> u(31)
            h2 = unshift(wanted, 29) * inverse_final
            second = (unshift(h2, 31) * inverse_round) ^ h1
            keep = ok[second.astype("<u8").view(np.uint8).reshape(-1, 8)].all(axis=1)
            for a, b in zip(first[keep].tolist(), second[keep].tolist()):
                found[a.to_bytes(8, "little") + b.to_bytes(8, "little")] = None
    keys = list(found)[:count]
    assert all(old_hash(key) & 0xFFFFFFFF == 0 for key in keys)
    return keys


def test_link_targets_crafted_to_collide_do_not_make_probing_quadratic():
    """Link targets (and words) go into hash tables keyed by a random per-process key: targets
    that all shared one probe run under the old unkeyed hash (400 of them: ~80,000 probes there)
    cost about one probe each."""
    keys = colliding_link_targets(400)
    counter = counts._hotloop.FragmentCounter(
        counts.segment_tokens, counts.decoded_segment_tokens, counts.xml_unescape,
        counts.strip_with_links, count_links=True, stand_ins=counts.ascii_stand_ins())
    targets = [key.decode() for key in keys]
    counter.count(fragment([" ".join(f"[[{target}]]" for target in targets)]))
    stats = counter.stats()
    assert counter.links() == {target: 1 for target in targets}
    assert stats["fallback_pages"] == 0 and stats["links"] == len(keys)
    assert stats["link_probes"] < 2 * len(keys), stats


def test_the_hash_key_differs_between_processes():
    """The key is drawn when the module loads: the same words fill the table's slots in another
    order in another process (word ids, and so every output, stay in first-seen order)."""
    import subprocess
    import sys

    script = ("from wit_builder.queries import counts as c\n"
              "k = c._hotloop.FragmentCounter(c.segment_tokens, c.decoded_segment_tokens,"
              " c.xml_unescape, c.strip_with_links)\n"
              "import sys; sys.path[:0] = ['tests/queries', 'tests']\n"
              "from test_queries_hotloop import fragment\n"
              "k.count(fragment([' '.join(f'w{n}' for n in range(3000))]))\n"
              "print(k.stats()['word_probes'], list(k.unigrams())[:3])\n")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True, cwd=Path(__file__).parents[2]).stdout
            for _ in range(4)}
    assert all(run.endswith("['w0', 'w1', 'w2']\n") for run in runs)
    assert len(runs) > 1  # probe counts differ: the slots differ
