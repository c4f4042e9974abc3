"""Small MediaWiki dumps with counts known by construction, in every format the reader accepts.

Each article is built from sentences of known words; markup whose content is invisible (templates,
tables, refs, comments, File/Category links) only ever holds words from JUNK, so a leak shows up as
a junk word in the counts.
"""

from __future__ import annotations

import bz2
import gzip
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

VOCABULARY = [f"w{i}" for i in range(60)] + ["state-of-the-art", "o'neill", "café", "ß"]
JUNK = [f"junk{i}" for i in range(10)]
NAMESPACES = {1: "Talk", 6: "File", 10: "Template", 14: "Category"}


@dataclass
class Article:
    title: str
    namespace: int = 0
    redirect: bool = False
    wikitext: str = ""
    sentences: list[list[str]] = field(default_factory=list)  # what a reader sees
    redirect_to: str = ""


def header() -> str:
    names = "".join(f'<namespace key="{key}" case="first-letter">{name}</namespace>'
                    for key, name in NAMESPACES.items())
    return ('<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" '
            'xml:lang="en">\n<siteinfo><sitename>Wikipedia</sitename><namespaces>'
            f'<namespace key="0" case="first-letter" />{names}</namespaces></siteinfo>\n')


FOOTER = "</mediawiki>\n"


def page_xml(article: Article, page_id: int) -> str:
    redirect = f'<redirect title="{escape(article.redirect_to)}" />' if article.redirect else ""
    return (f"<page>\n<title>{escape(article.title)}</title>\n<ns>{article.namespace}</ns>\n"
            f"<id>{page_id}</id>\n{redirect}<revision><id>{page_id * 10}</id>"
            f'<text bytes="{len(article.wikitext)}" xml:space="preserve">'
            f"{escape(article.wikitext)}</text></revision>\n</page>\n")


def decorate_sentence(words: list[str], rng: random.Random) -> str:
    """A sentence's wikitext: some words as links or bold, invisible markup between words."""
    pieces = []
    for word in words:
        roll = rng.random()
        if roll < 0.1:
            pieces.append(f"[[Article {rng.randint(0, 9)}|{word}]]")
        elif roll < 0.15:
            pieces.append(f"[[{word}]]")
        elif roll < 0.2:
            pieces.append(f"'''{word}'''")
        else:
            pieces.append(word)
        roll = rng.random()
        if roll < 0.05:
            pieces[-1] += f"<ref name=r{rng.randint(0, 9)}>{{{{cite web|title={rng.choice(JUNK)}}}}}</ref>"
        elif roll < 0.08:
            pieces[-1] += f"{{{{lang|{rng.choice(JUNK)} {{{{nested|{rng.choice(JUNK)}}}}}}}}}"
        elif roll < 0.1:
            pieces[-1] += f"<!-- {rng.choice(JUNK)} -->"
    return " ".join(pieces) + "."


def make_article(number: int, rng: random.Random) -> Article:
    article = Article(title=f"Article {number}")
    paragraphs = []
    for _ in range(rng.randint(1, 3)):
        sentences = [[rng.choice(VOCABULARY) for _ in range(rng.randint(1, 9))]
                     for _ in range(rng.randint(1, 4))]
        article.sentences.extend(sentences)
        paragraphs.append(" ".join(decorate_sentence(s, rng) for s in sentences))
    heading = [rng.choice(VOCABULARY), rng.choice(VOCABULARY)]
    article.sentences.append(heading)
    table = f"{{| class=wikitable\n|-\n| {rng.choice(JUNK)} || {{{{flag|{rng.choice(JUNK)}}}}}\n|}}"
    article.wikitext = (f"{{{{Infobox thing|name={rng.choice(JUNK)}}}}}\n" + paragraphs[0]
                        + f"\n\n== {' '.join(heading)} ==\n" + "\n\n".join(paragraphs[1:])
                        + f"\n{table}\n[[File:{rng.choice(JUNK)}.jpg|thumb|{rng.choice(JUNK)}]]"
                        + f"\n[[Category:{rng.choice(JUNK)}]]\n")
    return article


def make_articles(count: int, seed: int = 0) -> list[Article]:
    """`count` articles plus a redirect, a talk page and a template (which must not be counted)."""
    rng = random.Random(seed)
    articles = [make_article(number, rng) for number in range(count)]
    articles.insert(1, Article("Old name", redirect=True, wikitext="#REDIRECT [[Article 0]] junk0",
                               redirect_to="Article 0"))
    articles.insert(2, Article("Talk:Article 0", namespace=1, wikitext="junk1 junk2"))
    articles.insert(3, Article("Template:Box", namespace=10, wikitext="junk3 junk4"))
    return articles


def expected_unigrams(articles: list[Article]) -> Counter:
    return Counter(word for a in articles for s in a.sentences for word in s)


def expected_bigrams(articles: list[Article]) -> Counter:
    return Counter(pair for a in articles for s in a.sentences for pair in zip(s, s[1:]))


def pages_xml(articles: list[Article]) -> list[str]:
    return [page_xml(article, number + 1) for number, article in enumerate(articles)]


def write_plain(path: Path, articles: list[Article]) -> Path:
    path.write_text(header() + "".join(pages_xml(articles)) + FOOTER, encoding="utf-8")
    return path


def write_single_stream(path: Path, articles: list[Article]) -> Path:
    xml = header() + "".join(pages_xml(articles)) + FOOTER
    path.write_bytes(bz2.compress(xml.encode("utf-8")))
    return path


def write_multistream(directory: Path, articles: list[Article], per_stream: int = 5) -> Path:
    """Header stream, streams of `per_stream` pages, footer stream, and the bz2 index."""
    dump = directory / "enwiki-test-pages-articles-multistream.xml.bz2"
    index_lines = []
    pages = pages_xml(articles)
    with open(dump, "wb") as handle:
        handle.write(bz2.compress(header().encode("utf-8")))
        for start in range(0, len(pages), per_stream):
            offset = handle.tell()
            for number in range(start, min(start + per_stream, len(pages))):
                index_lines.append(f"{offset}:{number + 1}:{articles[number].title}\n")
            handle.write(bz2.compress("".join(pages[start:start + per_stream]).encode("utf-8")))
        handle.write(bz2.compress(FOOTER.encode("utf-8")))
    index = directory / "enwiki-test-pages-articles-multistream-index.txt.bz2"
    index.write_bytes(bz2.compress("".join(index_lines).encode("utf-8")))
    return dump


def write_parts(directory: Path, articles: list[Article], parts: int = 3) -> Path:
    """Part files, each a complete export, named like Wikimedia's."""
    directory.mkdir(parents=True, exist_ok=True)
    pages = pages_xml(articles)
    size = -(-len(pages) // parts)
    for number, start in enumerate(range(0, len(pages), size), 1):
        last = min(start + size, len(pages))
        xml = header() + "".join(pages[start:last]) + FOOTER
        name = f"enwiki-test-pages-articles{number}.xml-p{start + 1}p{last}.bz2"
        (directory / name).write_bytes(bz2.compress(xml.encode("utf-8")))
    return directory


def write_pageviews(path: Path, lines: list[str]) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))
    return path


def write_wordnet(directory: Path, synsets: dict[str, list[list[str]]]) -> Path:
    """WordNet 3.0 `data.*` files: {"noun": [[lemma, ...], ...]} with a licence header."""
    directory.mkdir(parents=True, exist_ok=True)
    for pos, entries in synsets.items():
        lines = ["  1 This software and database is being provided to you, the LICENSEE\n"]
        for number, lemmas in enumerate(entries):
            words = " ".join(f"{lemma.replace(' ', '_')} 0" for lemma in lemmas)
            lines.append(f"{number * 100 + 1000:08d} 03 {pos[0]} {len(lemmas):02x} {words} 000 | "
                         f"a gloss\n")
        (directory / f"data.{pos}").write_text("".join(lines), encoding="utf-8")
    return directory
