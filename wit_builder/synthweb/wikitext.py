"""Wikitext of the synthetic pages, written together with what a correct stripper must read in it.

Every article is assembled from pieces whose visible words are known when they are written, so the
word and bigram counts of `wiki_truth.json` come from construction, not from parsing our own output.
The rules those counts follow are in the docstring of `wit_builder.synthweb.wiki`.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from wit_builder.synthweb import concepts
from wit_builder.synthweb.vocabulary import Unit, Vocabulary, sample_index

HEADINGS = ("History", "Description", "Etymology", "Distribution", "Design", "Reception", "Legacy",
            "Geography", "Culture", "Early years", "In popular culture", "Structure", "Usage")
DECORATED = 0.13  # share of units dressed up or followed by punctuation or invisible markup
DRESSED = 0.45    # of those, the share dressed as links, emphasis or tags
LOG_UNDECORATED = math.log(1.0 - DECORATED)
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")


@dataclass(frozen=True)
class Title:
    """A page title and the normalised words its link text shows."""
    text: str
    words: tuple[str, ...]


@dataclass
class LinkTargets:
    """Titles that links may point at, drawn by popularity (popular pages get more links)."""
    titles: list[Title]
    cum_weights: list[float]
    redirects: list[Title]

    def pick(self, rng: random.Random) -> Title:
        if self.redirects and rng.random() < 0.08:
            return rng.choice(self.redirects)
        return self.titles[sample_index(self.cum_weights, rng)]


@dataclass
class Article:
    """Wikitext plus its ground truth: visible sentences (lists of words) and link targets."""
    lines: list[str] = field(default_factory=list)
    sentences: list[list[str]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)


# In a sentence's recorded words: a comma or dash there, which ends a run of adjacent words.
BREAK = ","


def runs(words: list[str]) -> list[list[str]]:
    """A sentence's words cut at its BREAKs: the runs whose adjacent words are bigrams."""
    found: list[list[str]] = [[]]
    for word in words:
        if word == BREAK:
            found.append([])
        else:
            found[-1].append(word)
    return found


def skip(rng: random.Random) -> int:
    """Distance to the next decorated unit: geometric, so each unit is decorated with
    probability DECORATED while drawing one random number per decoration, not per unit."""
    return 1 + int(math.log(1.0 - rng.random()) / LOG_UNDECORATED)


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def link_markup(title: Title, rng: random.Random) -> tuple[str, tuple[str, ...]]:
    """One of the link spellings of real articles, and the words it shows."""
    text = title.text
    form = rng.random()
    if form < 0.45:
        return f"[[{text}]]", title.words
    if form < 0.6 and " " not in text and "(" not in text and not text.endswith("s"):
        # [[triangle]]s: the trailing letters join the link text into one word.
        return f"[[{text[:1].lower() + text[1:]}]]s", title.words[:-1] + (title.words[-1] + "s",)
    if form < 0.7:
        return f"[[{text.replace(' ', '_')}|{text.lower()}]]", title.words
    if form < 0.8:
        return f"[[{text}#{rng.choice(HEADINGS)}|{text.lower()}]]", title.words
    return f"[[{text}|{text.lower()}]]", title.words


def removed_inline(rng: random.Random) -> str:
    """An inline construct whose content a stripper must drop entirely."""
    choice = rng.randrange(6)
    if choice == 0:
        return f"{{{{convert|{rng.randrange(2, 900)}|km|mi}}}}"
    if choice == 1:
        return f"{{{{citation needed|date={rng.choice(MONTHS)} 2025}}}}"
    if choice == 2:
        return "<!-- Do not change this. See the talk page! -->"
    if choice == 3:
        return "{{lang|fr|un mot. Deux?}}"
    if choice == 4:
        return "<br />"
    return "{{nbsp}}"


def citation(rng: random.Random, words: str) -> str:
    """A reference: the `<ref>` element and everything in it is invisible, even its full stops."""
    year = rng.randrange(1950, 2026)
    kind = rng.randrange(4)
    if kind == 0:
        return (f"<ref>{{{{cite web |url=https://www.site{year}.example/a?id={year}&p=2 "
                f"|title={capitalised(words)}. A report! |website=Example |access-date=1 "
                f"{rng.choice(MONTHS)} 2026}}}}</ref>")
    if kind == 1:
        return (f"<ref name=\"src{year}\">{{{{cite book |last=Smith |first=Ann |title="
                f"{capitalised(words)} |year={year} |page={year % 300}}}}}</ref>")
    if kind == 2:
        return f"<ref name=\"src{year}\" />"
    return f"<ref>{capitalised(words)}. See [[Red]] for more? Yes.</ref>"


class ArticleWriter:
    """Writes one page's wikitext while recording what a reader must see in it."""

    def __init__(self, rng: random.Random, vocabulary: Vocabulary, targets: LinkTargets):
        self.rng = rng
        self.vocabulary = vocabulary
        self.targets = targets
        self.units = vocabulary.stream(rng)
        self.article = Article()

    # --- visible text -------------------------------------------------------------------------
    def dressed(self, unit: Unit, roll: float) -> tuple[str, tuple[str, ...]]:
        """A unit as a link, in bold or italics, or inside an HTML tag."""
        if roll < 0.6:
            title = self.targets.pick(self.rng)
            self.article.links.append(title.text)
            return link_markup(title, self.rng)
        surface = unit.surface
        if roll < 0.8 and "'" not in surface:
            return f"''{surface}''", unit.words
        if roll < 0.88 and "'" not in surface:
            return f"'''{surface}'''", unit.words
        if roll < 0.93:
            return f"<small>{surface}</small>", unit.words
        if roll < 0.97:
            return f'<span class="nowrap">{surface}</span>', unit.words
        return f"<sup>{surface}</sup>", unit.words

    def sentence(self, units: int, lead: list[tuple[str, tuple[str, ...]]] | None = None,
                 end: str | None = None) -> str:
        """A sentence of `units` draws (after the `lead` pieces); records its words in order.

        This is the generator's hot path: plain units are joined in bulk, and only the few
        positions picked by geometric skips are dressed (link, emphasis, tag) or followed by
        punctuation or an invisible construct."""
        rng = self.rng
        drawn = self.units.draw(units)
        markups = [unit.surface for unit in drawn]
        shown = [unit.words for unit in drawn]
        position = skip(rng) - 1
        while position < len(drawn):
            roll = rng.random()
            if roll < DRESSED:
                markups[position], shown[position] = self.dressed(drawn[position], roll / DRESSED)
            elif position + 1 < len(drawn):
                markups[position], shown[position] = self.followed(markups[position],
                                                                   shown[position], roll)
            position += skip(rng)
        if lead:
            markups[:0] = [markup for markup, _ in lead]
            shown[:0] = [words for _, words in lead]
        else:
            markups[0] = capitalised(markups[0])
        joiner = "&nbsp;" if rng.random() < 0.03 else " "
        self.article.sentences.extend(runs([word for words in shown for word in words]))
        return joiner.join(markups) + (end if end is not None else rng.choice(".........!?"))

    def followed(self, markup: str, words: tuple[str, ...], roll: float) -> tuple[str, tuple]:
        """`markup` followed by a comma, a dash, an invisible construct or an external link."""
        if roll < 0.7:
            return markup + ",", words + (BREAK,)
        if roll < 0.8:
            # Entities that decode to punctuation, never to part of a word; dashes end a run of
            # adjacent words, "&" does not.
            entity = "&mdash;" if roll < 0.75 else "&amp;" if roll < 0.78 else "&#8211;"
            return f"{markup} {entity}", words + ((BREAK,) if entity != "&amp;" else ())
        if roll < 0.92:
            return f"{markup} {removed_inline(self.rng)}", words
        link, label = self.external_link()
        return f"{markup} {link}", words + label

    def external_link(self) -> tuple[str, tuple[str, ...]]:
        """`[https://... label]`: only the label is visible."""
        units = self.units.draw(2)
        label = self.vocabulary.text(units)
        url = f"https://www.site{self.rng.randrange(1000)}.example/page?q=1&r=2"
        return f"[{url} {label}]", tuple(word for unit in units for word in unit.words)

    def reference(self) -> str:
        units = self.units.draw(4)
        return citation(self.rng, self.vocabulary.text(units))

    def paragraph(self, sentences: int, lead: list | None = None) -> None:
        parts = []
        for index in range(sentences):
            text = self.sentence(self.rng.randrange(5, 20), lead if index == 0 else None)
            if self.rng.random() < 0.18:
                text += self.reference()
            parts.append(text)
        self.article.lines.extend([" ".join(parts), ""])

    def heading(self, level: int, text: str, words: tuple[str, ...]) -> None:
        marks = "=" * level
        self.article.lines.append(f"{marks} {text} {marks}")
        self.article.sentences.append(list(words))

    def named_heading(self, level: int = 2) -> None:
        if self.rng.random() < 0.6:
            text = self.rng.choice(HEADINGS)
            self.heading(level, text, tuple(text.lower().split()))
        else:
            units = self.units.draw(self.rng.randrange(1, 3))
            text = self.vocabulary.text(units)
            self.heading(level, capitalised(text), tuple(w for u in units for w in u.words))

    def bullet_list(self, items: int) -> None:
        marker = self.rng.choice("*#")
        for _ in range(items):
            text = self.sentence(self.rng.randrange(2, 8), end=self.rng.choice(("", "", ".")))
            self.article.lines.append(f"{marker} {text}")
        self.article.lines.append("")

    def see_also(self, count: int) -> None:
        self.heading(2, "See also", ("see", "also"))
        for _ in range(count):
            title = self.targets.pick(self.rng)
            self.article.links.append(title.text)
            self.article.lines.append(f"* [[{title.text}]]")
            self.article.sentences.append(list(title.words))
        self.article.lines.append("")

    # --- invisible blocks ---------------------------------------------------------------------
    def infobox(self, title: Title) -> None:
        rng = self.rng
        colour = rng.choice(list(concepts.COLOURS))
        self.article.lines.extend([
            "{{Infobox thing",
            f"| name = {title.text}",
            f"| image = {title.text} {rng.randrange(1, 9)}.jpg",
            f"| caption = The {colour} one. See [[{self.targets.pick(rng).text}]]!",
            f"| colour = {{{{color|{colour}}}}}",
            f"| founded = {{{{start date|{rng.randrange(1800, 2025)}|{rng.randrange(1, 13)}|1}}}}",
            "| website = {{URL|https://www.example.org/}}",
            "}}",
        ])

    def table(self) -> None:
        rng = self.rng
        rows = ['{| class="wikitable sortable"', "|+ Caption of the table. Not visible!",
                "! Name !! Colour !! Year", "|-"]
        for _ in range(rng.randrange(2, 5)):
            colour = rng.choice(list(concepts.COLOURS))
            cell = self.vocabulary.text(self.units.draw(3))
            rows += [f"| [[{self.targets.pick(rng).text}]] || {{{{color box|{colour}}}}} {colour} "
                     f"|| {rng.randrange(1900, 2026)}", f"| {cell}", "|-"]
        rows[-1] = "|}"
        self.article.lines.extend(rows + [""])

    def image(self) -> None:
        rng = self.rng
        shape = rng.choice(list(concepts.SHAPES))
        namespace = rng.choice(("File", "File", "Image"))
        caption = (f"A {rng.choice(list(concepts.COLOURS))} {shape} near "
                   f"[[{self.targets.pick(rng).text}]] on a ''striped'' background. It is small!")
        options = rng.choice(("thumb", "thumb|upright=1.2", "left|200px", "thumb|right"))
        self.article.lines.append(f"[[{namespace}:{capitalised(shape)} {rng.randrange(1, 99)}.svg|"
                                  f"{options}|{caption}]]")

    def footer(self, sort_key: str, categories: list[str]) -> None:
        self.article.lines.extend(["{{Authority control}}", "", f"{{{{DEFAULTSORT:{sort_key}}}}}"])
        self.article.lines.extend(f"[[Category:{name}]]" for name in categories)


def article_text(rng: random.Random, vocabulary: Vocabulary, targets: LinkTargets, title: Title,
                 words_wanted: int, categories: list[str]) -> Article:
    """A full article of about `words_wanted` visible words, exercising every wikitext construct."""
    writer = ArticleWriter(rng, vocabulary, targets)
    lines = writer.article.lines
    lines.append(f"{{{{Short description|{capitalised(rng.choice(HEADINGS).lower())} thing}}}}")
    if rng.random() < 0.3:
        lines.append("__NOTOC__")
    if rng.random() < 0.5:
        writer.infobox(title)
    if rng.random() < 0.2:
        lines.append("<!-- This comment spans\ntwo lines. It is invisible! -->")
    verb = rng.choice(("is", "was", "is", "are"))
    lead = [(f"'''{title.text}''' {verb} a", title.words + (verb, "a"))]
    writer.paragraph(rng.randrange(2, 5), lead=lead)
    while word_count(writer.article) < words_wanted:
        writer.named_heading(2)
        if rng.random() < 0.35:
            writer.image()
        writer.paragraph(rng.randrange(2, 6))
        roll = rng.random()
        if roll < 0.2:
            writer.table()
        elif roll < 0.4:
            writer.bullet_list(rng.randrange(2, 6))
        elif roll < 0.55:
            writer.named_heading(3)
            writer.paragraph(rng.randrange(1, 4))
    writer.see_also(rng.randrange(1, 4))
    writer.heading(2, "References", ("references",))
    lines.extend(["{{Reflist}}", ""])
    if rng.random() < 0.5:
        writer.heading(2, "External links", ("external", "links"))
        link = writer.external_link()
        lines.append(f"* {link[0]}")
        writer.article.sentences.append(list(link[1]))
        lines.extend(["* {{Official website|https://www.example.com/}}", ""])
    writer.footer(title.text, categories)
    return writer.article


def word_count(article: Article) -> int:
    return sum(len(sentence) for sentence in article.sentences)


def disambiguation_text(rng: random.Random, title: Title, meanings: list[Title]) -> Article:
    """`X (disambiguation)`: an article (namespace 0) listing the pages a name may refer to."""
    base = title.text.removesuffix(" (disambiguation)")
    article = Article()
    article.lines.append(f"'''{base}''' may refer to:")
    article.sentences.append(list(title.words[:-1]) + ["may", "refer", "to"])
    article.lines.append("")
    for meaning in meanings:
        heading = rng.choice(HEADINGS).lower()
        article.lines.append(f"* [[{meaning.text}]], a {heading} thing")
        article.links.append(meaning.text)
        article.sentences.extend([list(meaning.words), ["a", *heading.split(), "thing"]])
    article.lines.extend(["", "{{disambiguation}}"])
    return article


def redirect_text(target: str, rng: random.Random) -> str:
    template = rng.choice(("R from plural", "R from alternative name",
                           "R from other capitalisation"))
    return f"#REDIRECT [[{target}]]\n\n{{{{Redirect category shell|\n{{{{{template}}}}}\n}}}}"


def talk_text(rng: random.Random, vocabulary: Vocabulary, targets: LinkTargets, title: str) -> str:
    """A talk page: words here are not article text and must not be counted."""
    writer = ArticleWriter(rng, vocabulary, targets)
    writer.article.lines.extend(["{{WikiProject banner shell|class=Start|",
                                 "{{WikiProject Shapes|importance=low}}", "}}", ""])
    writer.heading(2, f"Merge with {title}?", ())
    writer.paragraph(2)
    user = f"User{rng.randrange(1, 500)}"
    writer.article.lines.append(f":I agree. --[[User:{user}|{user}]] ([[User talk:{user}|talk]]) "
                                f"12:{rng.randrange(10, 60)}, 3 March 2025 (UTC)")
    return writer.article.text()


def category_text(rng: random.Random, vocabulary: Vocabulary, targets: LinkTargets) -> str:
    writer = ArticleWriter(rng, vocabulary, targets)
    writer.article.lines.append("{{Category diffuse}}")
    writer.paragraph(1)
    writer.article.lines.append("[[Category:Things]]")
    return writer.article.text()


def file_text(rng: random.Random, vocabulary: Vocabulary, targets: LinkTargets) -> str:
    writer = ArticleWriter(rng, vocabulary, targets)
    writer.heading(2, "Summary", ())
    description = writer.sentence(6)
    writer.article.lines.append("{{Information |description=" + description
                                + " |source={{own}}}}")
    writer.heading(2, "Licensing", ())
    writer.article.lines.extend(["{{cc-by-sa-4.0}}", "[[Category:Images of shapes]]"])
    return writer.article.text()


def template_text(name: str) -> str:
    return (f"<includeonly>{{{{#if:{{{{{{name|}}}}}}|'''{{{{{{name}}}}}}'''}}}}</includeonly>"
            f"<noinclude>\nThe template {name}. Documentation words here are invisible.\n"
            f"{{{{Documentation}}}}\n[[Category:Templates]]\n</noinclude>")
