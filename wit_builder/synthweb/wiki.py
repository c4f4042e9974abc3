"""A synthetic English Wikipedia dump, laid out byte for byte as dumps.wikimedia.org publishes it.

Files written under `out` (all deterministic from the seed; gzip with mtime 0 and no file name):
- `enwiki-20260101-pages-articles-multistream.xml.bz2`: independent bz2 streams — the
  `<mediawiki><siteinfo>` header, then 100 `<page>`s per stream, then `</mediawiki>` — and
  `...-multistream-index.txt.bz2`, lines `offset:page_id:title` (offset of the page's stream);
- `enwiki-20260101-pages-articles.xml.bz2`: the same XML as one bz2 stream;
- `parts/enwiki-20260101-pages-articles{N}.xml-p{first_id}p{last_id}.bz2`: 4 complete documents;
- `pageviews/pageviews-20260101-HH0000.gz` (see `pageviews.py`);
- `wiki_truth.json`: what a correct reader must find, known by construction (see below).

Counting rules of `wiki_truth.json` (the query builder's stripper implements the same):
- Only pages of namespace 0 that are not redirects are article text; Talk:, File:, Category:,
  Template: pages and `#REDIRECT` pages count for nothing.
- Removed with everything inside them: templates `{{...}}` (nested, also multi-line), tables
  `{| ... |}`, `<ref>...</ref>` and `<ref ... />`, comments `<!-- -->`, magic words `__NOTOC__`,
  File:/Image:/Category: links including their captions (which may hold nested `[[links]]`).
- Kept: the text of `[[Target]]`, `[[Target|text]]` (the text), `[[target]]s` (trailing letters
  join the link text), headings' text, list items' text, the content of HTML tags (`<small>`,
  `<span>`, `<sup>`; `<br />` itself is dropped), the label of `[https://url label]` (the URL is
  dropped). Bold and italic marks (`'''`, `''`) are removed; HTML entities are decoded
  (`&nbsp;` separates words, `&#233;` is é, `&mdash;` is punctuation).
- Words: the text is NFKC-normalised (`ﬁ` -> `fi`), then words are runs of Unicode letters and
  digits, with single internal hyphens or apostrophes kept (`state-of-the-art`, `o'neill`), then
  lower-cased. Nothing else (commas, dashes, parentheses) is part of a word.
- Sentences end at `.`, `!`, `?` and at every line break (so headings, list items and paragraphs
  are sentences of their own). Bigrams are pairs of adjacent words inside one sentence;
  commas and dashes break a pair too (core/text.py's boundaries), a removed construct between
  two words does not (`a {{x}} b` gives the pair `a b`).
- The visible text is free of ambiguous constructs: no decimal points or abbreviations, nothing
  visible glued to a removed construct, and apostrophes only inside words outside bold/italics.
- Inbound links: `[[links]]` in the visible text of articles, by target title normalised as
  MediaWiki does (`#anchor` dropped, `_` -> space, first letter upper-cased); links inside
  removed constructs (refs, tables, captions, infoboxes) are not counted.

Keys of `wiki_truth.json`: `pages`, `articles` (namespace 0, not redirects; `X (disambiguation)`
pages are articles), `redirects`, `namespaces` (pages per namespace), `first_page_id`,
`last_page_id`, `sentences` (non-empty ones), `tokens`, `unigrams` {word: count}, `bigrams`
{"first second": count}, `article_titles` (dump order), `redirect_targets` {title: target},
`inbound_links` {target title: count}, `pageviews` {title with spaces: views summed over every
hourly file for the domains `pageviews_domains` = en, en.m; all namespaces, as in the files}.

`write_benchmark_dump(out, articles)` writes only the multistream dump and its index, without
truth or pageviews, for throughput benchmarks: pages stream through the compressors, so memory
stays flat at any size.
"""

from __future__ import annotations

import bz2
import contextlib
import hashlib
import itertools
import json
import logging
import random
import time
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from wit_builder.core import atomic
from wit_builder.synthweb.config import SynthwebConfig
from wit_builder.core.engine import split_evenly
from wit_builder.core.options import WitError
from wit_builder.synthweb import concepts, pageviews, wikitext
from wit_builder.synthweb.vocabulary import Vocabulary, build_vocabulary
from wit_builder.synthweb.wikitext import LinkTargets, Title

log = logging.getLogger(__name__)

DUMP = "enwiki-20260101"
MULTISTREAM = f"{DUMP}-pages-articles-multistream.xml.bz2"
MULTISTREAM_INDEX = f"{DUMP}-pages-articles-multistream-index.txt.bz2"
SINGLE_STREAM = f"{DUMP}-pages-articles.xml.bz2"
PARTS = 4
PAGES_PER_STREAM = 100
TRUTH = "wiki_truth.json"
LAYOUTS = ("multistream", "single", "parts")

NAMESPACES = {-2: "Media", -1: "Special", 0: "", 1: "Talk", 2: "User", 3: "User talk",
              4: "Wikipedia", 5: "Wikipedia talk", 6: "File", 7: "File talk", 8: "MediaWiki",
              9: "MediaWiki talk", 10: "Template", 11: "Template talk", 12: "Help",
              13: "Help talk", 14: "Category", 15: "Category talk", 100: "Portal",
              101: "Portal talk", 118: "Draft", 119: "Draft talk", 828: "Module",
              829: "Module talk"}
TEMPLATES = ("Infobox thing", "Color", "Cite web", "Reflist", "Convert", "Lang")
CATEGORY_NAMES = ("Shapes", "Colours", "Backgrounds", "Things", "Places", "Pseudo-words",
                  "Named things", "Geometry", "Patterns", "Lists")


@dataclass(frozen=True)
class PagePlan:
    """One page of the dump, decided before any text is written (ids and titles are global)."""
    page_id: int
    namespace: int
    title: str
    kind: str                  # article, disambiguation, redirect, talk, category, file, template
    article: int = -1          # index into the article titles, for articles and their companions
    target: str = ""           # redirect target


@dataclass
class DumpPlan:
    pages: list[PagePlan]
    articles: list[Title]
    redirects: dict[str, str]  # redirect title -> target title
    popularity: list[float]    # per article, by construction (links and pageviews follow it)
    disambiguation: dict[int, list[Title]]


# --- planning ---------------------------------------------------------------------------------
def concept_titles() -> list[Title]:
    """Articles about the synthetic site's concepts: `Red`, `Triangle`, `Striped background`..."""
    single = list(concepts.COLOURS) + list(concepts.SHAPES) + ["background"]
    phrases = [f"{style} background" for style in concepts.BACKGROUNDS]
    phrases += [f"{colour} {shape}" for shape in concepts.SHAPES for colour in concepts.COLOURS]
    return [Title(wikitext.capitalised(text), tuple(text.split())) for text in single + phrases]


def pseudo_title(vocabulary: Vocabulary, rng: random.Random) -> Title:
    """A title made of pseudo-words: one word, a lower-case or a proper two-word name."""
    common = vocabulary.words[150:]
    roll = rng.random()
    first = rng.choice(vocabulary.title_words) if roll < 0.25 else rng.choice(common)
    if roll < 0.55:
        return Title(wikitext.capitalised(first), (first,))
    second = rng.choice(common)
    if roll < 0.8:
        return Title(f"{wikitext.capitalised(first)} {second}", (first, second))
    return Title(f"{wikitext.capitalised(first)} {wikitext.capitalised(second)}", (first, second))


def plan_titles(vocabulary: Vocabulary, count: int, rng: random.Random) -> list[Title]:
    """`count` unique titles: the concept titles first (at most a third), then pseudo-words."""
    titles = concept_titles()[: max(1, count // 3)]
    seen = {title.text for title in titles}
    while len(titles) < count:
        title = pseudo_title(vocabulary, rng)
        if title.text not in seen and not any(c in title.text for c in "'&;ﬁ"):
            seen.add(title.text)
            titles.append(title)
    return titles


def redirect_title(title: Title, taken: set[str]) -> str | None:
    """A plausible other name for `title` (plural, other capitalisation), unless it exists."""
    if " " in title.text:
        first, rest = title.text.split(" ", 1)
        candidate = f"{first} {rest.title()}" if rest.islower() else f"{first} {rest.lower()}"
    else:
        candidate = title.text + "s"
    return None if candidate in taken else candidate


def plan_dump(vocabulary: Vocabulary, articles: int, seed: int) -> DumpPlan:
    """Every page's id, namespace, title and kind, in dump order."""
    rng = random.Random(f"witbuilder-wiki-plan/{seed}")
    titles = plan_titles(vocabulary, articles, rng)
    concept_count = min(len(concept_titles()), len(titles))
    # Concept pages rank near the top of popularity, like the head of real pageviews.
    order = sorted(range(len(titles)),
                   key=lambda i: rng.random() * (0.15 if i < concept_count else 1.0))
    popularity = [0.0] * len(titles)
    for rank, index in enumerate(order):
        popularity[index] = 1.0 / (rank + 3)
    taken = {title.text for title in titles}
    disambiguation: dict[int, list[Title]] = {}
    for index, title in enumerate(titles):
        if index >= concept_count and " " not in title.text and rng.random() < 0.02:
            meaning_titles = [t for t in titles if t.text.startswith(title.text + " ")][:3]
            disambiguation[index] = [title] + meaning_titles
    pages: list[PagePlan] = []
    redirects: dict[str, str] = {}
    page_id = 10
    category_queue = list(CATEGORY_NAMES)

    def add(namespace: int, title: str, kind: str, article: int = -1, target: str = "") -> None:
        nonlocal page_id
        prefix = NAMESPACES[namespace]
        full = f"{prefix}:{title}" if prefix else title
        pages.append(PagePlan(page_id, namespace, full, kind, article, target))
        page_id += rng.randrange(1, 5)

    for name in TEMPLATES:
        add(10, name, "template")
    for index, title in enumerate(titles):
        if index in disambiguation:
            add(0, f"{title.text} (disambiguation)", "disambiguation", index)
        add(0, title.text, "article", index)
        if rng.random() < 0.15:
            other = redirect_title(title, taken)
            if other:
                taken.add(other)
                redirects[other] = title.text
                add(0, other, "redirect", index, title.text)
        if rng.random() < 0.15:
            add(1, title.text, "talk", index)
        if rng.random() < 0.05:
            add(6, f"{title.text} {rng.randrange(1, 9)}.jpg", "file", index)
        if index % 40 == 39 and category_queue:
            add(14, category_queue.pop(0), "category", index)
    return DumpPlan(pages, titles, redirects, popularity, disambiguation)


# --- page text --------------------------------------------------------------------------------
class Truth:
    """What a correct reader finds in the dump, accumulated while the pages are written."""

    def __init__(self) -> None:
        self.unigrams: Counter[str] = Counter()
        self.bigrams: Counter[tuple[str, str]] = Counter()
        self.sentences = 0
        self.inbound: Counter[str] = Counter()

    def add_article(self, article: wikitext.Article) -> None:
        sentences = [sentence for sentence in article.sentences if sentence]
        self.unigrams.update(itertools.chain.from_iterable(sentences))
        self.bigrams.update(itertools.chain.from_iterable(
            zip(sentence, sentence[1:]) for sentence in sentences))
        self.sentences += len(sentences)
        self.inbound.update(article.links)


def page_text(page: PagePlan, plan: DumpPlan, vocabulary: Vocabulary, targets: LinkTargets,
              config: SynthwebConfig) -> tuple[str, wikitext.Article | None]:
    """The wikitext of `page`, and for articles what a reader must see in it."""
    rng = random.Random(f"witbuilder-wiki-page/{config.seed}/{page.page_id}")
    if page.kind == "article":
        title = plan.articles[page.article]
        wanted = int(config.words_per_article * rng.uniform(0.5, 1.5))
        names = rng.sample(CATEGORY_NAMES, 2)
        article = wikitext.article_text(rng, vocabulary, targets, title, wanted, names)
        return article.text(), article
    if page.kind == "disambiguation":
        base = plan.articles[page.article]
        title = Title(page.title, base.words + ("disambiguation",))
        meanings = plan.disambiguation[page.article] + [targets.pick(rng) for _ in range(2)]
        article = wikitext.disambiguation_text(rng, title, meanings)
        return article.text(), article
    if page.kind == "redirect":
        return wikitext.redirect_text(page.target, rng), None
    if page.kind == "talk":
        return wikitext.talk_text(rng, vocabulary, targets, page.title.split(":", 1)[1]), None
    if page.kind == "category":
        return wikitext.category_text(rng, vocabulary, targets), None
    if page.kind == "file":
        return wikitext.file_text(rng, vocabulary, targets), None
    return wikitext.template_text(page.title), None


def xml_escape(text: str) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace('"', "&quot;")


def base36_sha1(text: str) -> str:
    """MediaWiki's revision hash: SHA-1 in base 36, 31 digits."""
    number = int(hashlib.sha1(text.encode("utf-8")).hexdigest(), 16)
    digits = []
    while number:
        number, digit = divmod(number, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return "".join(reversed(digits)).rjust(31, "0")


def page_xml(page: PagePlan, text: str, seed: int) -> str:
    """One `<page>` element as MediaWiki's export 0.11 writes it."""
    rng = random.Random(f"witbuilder-wiki-revision/{seed}/{page.page_id}")
    revision = 1_000_000 + page.page_id * 7 + rng.randrange(7)
    timestamp = (f"20{rng.randrange(15, 26):02d}-{rng.randrange(1, 13):02d}-"
                 f"{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:"
                 f"{rng.randrange(60):02d}Z")
    if rng.random() < 0.1:
        contributor = f"        <ip>192.0.2.{rng.randrange(1, 255)}</ip>\n"
    else:
        user = rng.randrange(1, 500)
        contributor = f"        <username>User{user}</username>\n        <id>{user * 13}</id>\n"
    sha1 = base36_sha1(text)
    redirect = f'    <redirect title="{xml_escape(page.target)}" />\n' if page.target else ""
    minor = "      <minor />\n" if rng.random() < 0.2 else ""
    return (
        "  <page>\n"
        f"    <title>{xml_escape(page.title)}</title>\n"
        f"    <ns>{page.namespace}</ns>\n"
        f"    <id>{page.page_id}</id>\n"
        f"{redirect}"
        "    <revision>\n"
        f"      <id>{revision}</id>\n"
        f"      <parentid>{revision - rng.randrange(1, 5000)}</parentid>\n"
        f"      <timestamp>{timestamp}</timestamp>\n"
        "      <contributor>\n"
        f"{contributor}"
        "      </contributor>\n"
        f"{minor}"
        f"      <comment>{xml_escape(rng.choice(COMMENTS))}</comment>\n"
        f"      <origin>{revision}</origin>\n"
        "      <model>wikitext</model>\n"
        "      <format>text/x-wiki</format>\n"
        f'      <text bytes="{len(text.encode("utf-8"))}" sha1="{sha1}" xml:space="preserve">'
        f"{xml_escape(text)}</text>\n"
        f"      <sha1>{sha1}</sha1>\n"
        "    </revision>\n"
        "  </page>\n"
    )


COMMENTS = ("Reverted edits by [[Special:Contributions/192.0.2.7|192.0.2.7]]", "copyedit",
            "/* History */ expand & cite", "Added <ref> to source", "fix typo")


def siteinfo_header() -> str:
    namespaces = "".join(
        f'      <namespace key="{key}" case="first-letter" />\n' if not name else
        f'      <namespace key="{key}" case="first-letter">{name}</namespace>\n'
        for key, name in NAMESPACES.items())
    return (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.mediawiki.org/xml/export-0.11/ '
        'http://www.mediawiki.org/xml/export-0.11.xsd" version="0.11" xml:lang="en">\n'
        "  <siteinfo>\n"
        "    <sitename>Wikipedia</sitename>\n"
        "    <dbname>enwiki</dbname>\n"
        "    <base>https://en.wikipedia.org/wiki/Main_Page</base>\n"
        "    <generator>MediaWiki 1.46.0-wmf.8 (witbuilder synthweb)</generator>\n"
        "    <case>first-letter</case>\n"
        "    <namespaces>\n"
        f"{namespaces}"
        "    </namespaces>\n"
        "  </siteinfo>\n"
    )


FOOTER = "</mediawiki>\n"


# --- compressed layouts -----------------------------------------------------------------------
def open_output(stack: contextlib.ExitStack, path: Path) -> BinaryIO:
    """A file opened for writing under a temporary name, renamed to `path` when `stack` closes."""
    temporary = stack.enter_context(atomic.atomic_path(path))
    return stack.enter_context(open(temporary, "wb"))


def compressed_stream(data: bytes) -> bytes:
    """`data` as one complete, independent bz2 stream."""
    compressor = bz2.BZ2Compressor(9)
    return compressor.compress(data) + compressor.flush()


class MultistreamSink:
    """Wikimedia's multistream layout: one bz2 stream per 100 pages, and the offset index."""

    def __init__(self, stack: contextlib.ExitStack, out: Path):
        self.data = open_output(stack, out / MULTISTREAM)
        self.index = open_output(stack, out / MULTISTREAM_INDEX)
        self.index_compressor = bz2.BZ2Compressor(9)
        self.offset = 0

    def write_stream(self, data: bytes) -> int:
        offset = self.offset
        stream = compressed_stream(data)
        self.data.write(stream)
        self.offset += len(stream)
        return offset

    def begin(self, header: bytes) -> None:
        self.write_stream(header)

    def add(self, pages: list[PagePlan], blobs: list[bytes]) -> None:
        offset = self.write_stream(b"".join(blobs))
        lines = "".join(f"{offset}:{page.page_id}:{page.title}\n" for page in pages)
        self.index.write(self.index_compressor.compress(lines.encode("utf-8")))

    def end(self, footer: bytes) -> None:
        self.write_stream(footer)
        self.index.write(self.index_compressor.flush())


class SingleStreamSink:
    """The whole XML as one bz2 stream (`pages-articles.xml.bz2`)."""

    def __init__(self, stack: contextlib.ExitStack, out: Path):
        self.data = open_output(stack, out / SINGLE_STREAM)
        self.compressor = bz2.BZ2Compressor(9)

    def begin(self, header: bytes) -> None:
        self.data.write(self.compressor.compress(header))

    def add(self, pages: list[PagePlan], blobs: list[bytes]) -> None:
        self.data.write(self.compressor.compress(b"".join(blobs)))

    def end(self, footer: bytes) -> None:
        self.data.write(self.compressor.compress(footer) + self.compressor.flush())


def part_name(number: int, first_id: int, last_id: int) -> str:
    return f"parts/{DUMP}-pages-articles{number}.xml-p{first_id}p{last_id}.bz2"


class PartsSink:
    """`pages-articles{N}.xml-p{first}p{last}.bz2`: complete documents over page-id ranges, each
    one bz2 stream with the siteinfo header, as Wikimedia splits the big dump."""

    def __init__(self, stack: contextlib.ExitStack, out: Path, pages: list[PagePlan]):
        self.files, self.names, self.last_ids = [], [], []
        for number, run in enumerate(split_evenly(pages, PARTS), start=1):
            name = part_name(number, run[0].page_id, run[-1].page_id)
            self.files.append(open_output(stack, out / name))
            self.names.append(name)
            self.last_ids.append(run[-1].page_id)
        self.current = -1
        self.compressor: bz2.BZ2Compressor | None = None
        self.header = b""

    def begin(self, header: bytes) -> None:
        self.header = header

    def add(self, pages: list[PagePlan], blobs: list[bytes]) -> None:
        start = 0
        while start < len(pages):
            if self.compressor is None:
                self.current += 1
                self.compressor = bz2.BZ2Compressor(9)
                self.files[self.current].write(self.compressor.compress(self.header))
            last_id = self.last_ids[self.current]
            end = start
            while end < len(pages) and pages[end].page_id <= last_id:
                end += 1
            self.files[self.current].write(self.compressor.compress(b"".join(blobs[start:end])))
            if pages[end - 1].page_id == last_id:
                self.close_part()
            start = end

    def close_part(self) -> None:
        self.files[self.current].write(self.compressor.compress(FOOTER.encode("utf-8"))
                                       + self.compressor.flush())
        self.compressor = None

    def end(self, footer: bytes) -> None:
        assert self.compressor is None, "every part is closed at its last page"


def stream_groups(pages: list[PagePlan]) -> list[list[PagePlan]]:
    return [pages[start:start + PAGES_PER_STREAM]
            for start in range(0, len(pages), PAGES_PER_STREAM)]


def link_targets(plan: DumpPlan) -> LinkTargets:
    redirects = [Title(title, tuple(title.lower().split())) for title in plan.redirects]
    return LinkTargets(plan.articles, list(itertools.accumulate(plan.popularity)), redirects)


class Compressors:
    """Runs each sink on its own thread, in order: bz2 releases the GIL, so compressing the
    layouts overlaps with writing the next pages. At most `ahead` groups wait, so memory stays
    flat whatever the dump's size."""

    def __init__(self, stack: contextlib.ExitStack, sinks: list, ahead: int = 2):
        self.sinks = sinks
        self.pools = [stack.enter_context(ThreadPoolExecutor(max_workers=1)) for _ in sinks]
        self.pending: deque[list[Future]] = deque()
        self.ahead = ahead

    def submit(self, method: str, *args) -> None:
        self.pending.append([pool.submit(getattr(sink, method), *args)
                             for sink, pool in zip(self.sinks, self.pools)])
        while len(self.pending) > self.ahead:
            self.wait_oldest()

    def wait_oldest(self) -> None:
        for future in self.pending.popleft():
            future.result()

    def drain(self) -> None:
        while self.pending:
            self.wait_oldest()


def open_sinks(stack: contextlib.ExitStack, out: Path, layouts: tuple[str, ...],
               pages: list[PagePlan]) -> list:
    unknown = set(layouts) - set(LAYOUTS)
    if unknown:
        raise WitError(f"synthweb: unknown dump layout(s) {sorted(unknown)}; known: {LAYOUTS}")
    sinks: list = []
    if "multistream" in layouts:
        sinks.append(MultistreamSink(stack, out))
    if "single" in layouts:
        sinks.append(SingleStreamSink(stack, out))
    if "parts" in layouts:
        sinks.append(PartsSink(stack, out, pages))
    return sinks


def write_pages(out: Path, config: SynthwebConfig, plan: DumpPlan, vocabulary: Vocabulary,
                layouts: tuple[str, ...], truth: Truth | None) -> int:
    """Stream every page into the chosen compressed layouts; return the bytes of XML written."""
    targets = link_targets(plan)
    groups = stream_groups(plan.pages)
    header = siteinfo_header().encode("utf-8")
    footer = FOOTER.encode("utf-8")
    xml_bytes = len(header) + len(footer)
    with contextlib.ExitStack() as stack:
        compressors = Compressors(stack, open_sinks(stack, out, layouts, plan.pages))
        compressors.submit("begin", header)
        for group in tqdm(groups, desc="synthweb: wikipedia", unit="stream", leave=False):
            blobs = []
            for page in group:
                text, article = page_text(page, plan, vocabulary, targets, config)
                if article is not None and truth is not None:
                    truth.add_article(article)
                blobs.append(page_xml(page, text, config.seed).encode("utf-8"))
            xml_bytes += sum(len(blob) for blob in blobs)
            compressors.submit("add", group, blobs)
        compressors.submit("end", footer)
        compressors.drain()
    return xml_bytes


# --- entry points -----------------------------------------------------------------------------
def pageview_titles(plan: DumpPlan) -> tuple[list[tuple[str, float]], list[str]]:
    """(article title, popularity) pairs, and the other titles readers see in pageviews."""
    popular = [(title.text, weight) for title, weight in zip(plan.articles, plan.popularity)]
    others = list(plan.redirects)
    others += [page.title for page in plan.pages if page.kind in ("talk", "file", "category",
                                                                     "disambiguation")]
    others += [f"{title.text} river" for title in plan.articles[-5:]]  # red links: no such page
    return popular, others


def truth_summary(plan: DumpPlan, truth: Truth, views: dict[str, int]) -> dict:
    articles = [page for page in plan.pages if page.kind in ("article", "disambiguation")]
    namespaces = Counter(page.namespace for page in plan.pages)
    return {
        "rules": "see the docstring of wit_builder.synthweb.wiki",
        "pages": len(plan.pages),
        "articles": len(articles),
        "redirects": sum(page.kind == "redirect" for page in plan.pages),
        "namespaces": {str(key): count for key, count in sorted(namespaces.items())},
        "first_page_id": plan.pages[0].page_id,
        "last_page_id": plan.pages[-1].page_id,
        "sentences": truth.sentences,
        "tokens": sum(truth.unigrams.values()),
        # In order of first occurrence (deterministic, and much cheaper than sorting).
        "unigrams": dict(truth.unigrams),
        "bigrams": {f"{first} {second}": count for (first, second), count in truth.bigrams.items()},
        "article_titles": [page.title for page in articles],
        "redirect_targets": dict(sorted(plan.redirects.items())),
        "inbound_links": dict(sorted(truth.inbound.items())),
        "pageviews_domains": list(pageviews.ENGLISH_WIKIPEDIA),
        "pageviews": views,
    }


def file_sizes(out: Path, names: list[str]) -> dict[str, int]:
    return {name: (out / name).stat().st_size for name in names}


def written_files(plan: DumpPlan, layouts: tuple[str, ...]) -> list[str]:
    names = []
    if "multistream" in layouts:
        names += [MULTISTREAM, MULTISTREAM_INDEX]
    if "single" in layouts:
        names.append(SINGLE_STREAM)
    if "parts" in layouts:
        runs = split_evenly(plan.pages, PARTS)
        names += [part_name(number, run[0].page_id, run[-1].page_id)
                  for number, run in enumerate(runs, start=1)]
    return names


def remove_stale_parts(out: Path, written: list[str]) -> None:
    """Part files of an earlier generation have other page ranges in their names; a reader
    globbing `parts/` must not see them beside the new ones."""
    for path in (out / "parts").glob(f"{DUMP}-pages-articles*.xml-p*p*.bz2"):
        if f"parts/{path.name}" not in written:
            log.info("synthweb: removing %s, a part file of an earlier generation", path)
            path.unlink()


def write_wikipedia(out: Path, config: SynthwebConfig) -> dict:
    """Write the dump in every layout, the pageviews and `wiki_truth.json`; return the manifest."""
    started = time.monotonic()
    out = Path(out)
    if config.articles < 1:
        raise WitError(f"synthweb: articles must be at least 1 (got {config.articles})")
    vocabulary = build_vocabulary(config.vocab_size, config.seed)
    plan = plan_dump(vocabulary, config.articles, config.seed)
    truth = Truth()
    xml_bytes = write_pages(out, config, plan, vocabulary, LAYOUTS, truth)
    popular, others = pageview_titles(plan)
    views_manifest, views = pageviews.write_pageviews(out, popular, others, config.seed)
    summary = truth_summary(plan, truth, views)
    atomic.write_text(out / TRUTH, json.dumps(summary, ensure_ascii=False, separators=(",", ":")))
    written = written_files(plan, LAYOUTS)
    remove_stale_parts(out, written)
    files = file_sizes(out, written + [TRUTH]) | views_manifest["files"]
    log.info("synthweb: wrote a dump of %d pages (%d articles, %.1f MB of XML) in %.1f s",
             summary["pages"], summary["articles"], xml_bytes / 1e6, time.monotonic() - started)
    return {"files": files, "pages": summary["pages"], "articles": summary["articles"],
            "redirects": summary["redirects"], "tokens": summary["tokens"],
            "xml_bytes": xml_bytes, "pageview_lines": views_manifest["lines"]}


def write_benchmark_dump(out: Path, articles: int, seed: int = 0) -> dict:
    """A multistream dump + index of `articles` articles at the demo's text sizes, without truth
    or pageviews (for throughput benchmarks: generation streams, memory stays flat)."""
    out = Path(out)
    config = SynthwebConfig(articles=articles, seed=seed)
    vocabulary = build_vocabulary(config.vocab_size, seed)
    plan = plan_dump(vocabulary, articles, seed)
    xml_bytes = write_pages(out, config, plan, vocabulary, ("multistream",), None)
    names = written_files(plan, ("multistream",))
    return {"files": file_sizes(out, names), "pages": len(plan.pages), "xml_bytes": xml_bytes,
            "dump": str(out / MULTISTREAM), "index": str(out / MULTISTREAM_INDEX)}
