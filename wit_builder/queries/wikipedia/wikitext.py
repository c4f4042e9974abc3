"""Wikitext to plain text: the visible words of an article, fast enough for 6.8 M pages.

Removed: comments, templates (nested, `{{...}}` and `{{{...}}}`), tables (`{| ... |}`, nested),
`<ref>` and other non-prose elements with their content (math, gallery, timeline, ...),
File/Image/Category/Media links (with captions, which may hold links), interlanguage links,
external link URLs and brackets, bold/italic quotes, magic words and HTML tags (their inner text stays).
Kept: link text (`[[target|text]]` → text, `[[target]]s` → targets), external link labels and
heading text. Entities are decoded last.

Speed comes from doing almost everything as deletions by C-level regex substitutions and
`str.replace` (no per-match Python callback), and from leaving alone the markup that can never
be part of a word (`==` of headings, `*#:;` of lists, `----`, stray brackets): the tokenizer
skips it anyway, and it never joins or splits words.

Time is linear in the page whatever it holds: no pattern here rescans text after a failed match
(elements and templates are found by scanners that move forward only), so crafted wikitext
("<ref " repeated, thousands of nested "{{") costs what a plain page of its size costs.
"""

from __future__ import annotations

import html
import re

COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
# Elements removed with their content: `<name\b[^>]*?/>` or `<name\b[^>]*>.*?(</name\s*>|\Z)`,
# found by remove_elements (as one regex, a start without any ">" after it rescans to the end).
REF_START = re.compile(r"<(ref)\b", re.I)
# Other elements whose content is not prose: dropped whole (self-closing forms included).
DROPPED_ELEMENTS = ("math", "chem", "ce", "gallery", "timeline", "score", "hiero", "imagemap",
                    "syntaxhighlight", "source", "pre", "templatedata", "templatestyles", "graph",
                    "mapframe", "maplink", "inputbox", "categorytree", "references")
DROPPED_NAMES = "|".join(DROPPED_ELEMENTS)
DROPPED_START = re.compile(rf"<(?:{DROPPED_NAMES})\b", re.I)
DROPPED_ELEMENT_START = re.compile(rf"<({DROPPED_NAMES})\b", re.I)
SPACES_THEN_BRACKET = re.compile(r"\s*>")
TEMPLATE_BRACES = re.compile(r"\{\{|\}\}")
TABLE_TOKEN = re.compile(r"^[ \t]*\{\||^[ \t]*\|\}", re.M)
# Links removed with their captions: File/Image/Category/Media in any letter case; interlanguage
# links such as [[fr:Chien]] only in their exact lower-case form, so [[Fox: A Story]] stays.
DROPPED_LINK_START = re.compile(r"\[\[\s*(?::\s*)?(?:(?i:file|image|category|media)\s*:|"
                                r"[a-z]{2,3}(?:-[a-z]+)?:\S)")
LINK_BRACKETS = re.compile(r"\[\[|\]\]")
LINK_TARGET = re.compile(r"\[\[([^\[\]|]*)(?:\|[^\[\]]*)?\]\]")
PIPED_LINK_OPENING = re.compile(r"\[\[[^\[\]|]*\|")
ANCHORED_LINK = re.compile(r"\[\[([^\[\]|#]*)#[^\[\]|]*\]\]")
# `[URL label]` -> label (its brackets go too: they are not shown, and a bracket is a boundary);
# without a "]" on its line only `[URL ` goes.
EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]*\s*(?:([^\[\]\n]*)\])?")
BARE_URL = re.compile(r"https?://[^\s<>\[\]{}|]+")
BOLD_ITALIC = re.compile(r"'{2,}")
MAGIC_WORD = re.compile(r"__[A-Z]+__")
LINE_BREAK_TAG = re.compile(r"<br\s*/?>", re.I)  # separates words, as it renders
HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def strip_wikitext(wikitext: str, links: list[str] | None = None) -> str:
    """The visible prose of one article's wikitext, paragraphs and headings on their own lines.

    When `links` is a list, the targets of the visible article links are appended to it (links in
    templates, tables, refs and File captions are not visible, so not counted)."""
    text = COMMENT.sub("", wikitext) if "<!--" in wikitext else wikitext
    if "<" in text:
        text = remove_elements(text, REF_START)
        if DROPPED_START.search(text):
            text = remove_elements(text, DROPPED_ELEMENT_START)
    if "{" in text:
        text = remove_templates(text)
        if "{|" in text:
            text = remove_tables(text)
    if "[" in text:
        text = EXTERNAL_LINK.sub(r"\1", text)
        if "[[" in text:
            text = replace_links(text, links)
    if "://" in text:
        text = BARE_URL.sub("", text)
    if "''" in text:
        text = BOLD_ITALIC.sub("", text)
    if "__" in text:
        text = MAGIC_WORD.sub("", text)
    if "<" in text:
        if "<br" in text or "<BR" in text:
            text = LINE_BREAK_TAG.sub(" ", text)
        text = HTML_TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return text


def remove_elements(text: str, start: re.Pattern) -> str:
    r"""`text` without the elements whose openings `start` finds (group 1: the name): up to the
    first ">" when it follows a "/", else up to the first `</name\s*>` after the opening tag
    (the end of text when none). An opening with no ">" after it is kept as typed."""
    kept: list[str] = []
    position = 0
    while opening := start.search(text, position):
        closing_bracket = text.find(">", opening.end())
        if closing_bracket < 0:
            break  # no later opening has a ">" either
        if text[closing_bracket - 1] == "/" and closing_bracket > opening.end():
            end = closing_bracket + 1
        else:
            end = element_closing_end(text, opening.group(1), closing_bracket + 1)
        kept.append(text[position:opening.start()])
        position = end
    kept.append(text[position:])
    return "".join(kept)


def element_closing_end(text: str, name: str, start: int) -> int:
    r"""Where the first `</name\s*>` at or after `start` ends (the end of text when none); the
    name compared as a regex backreference under re.I compares it: character by character, each
    by its simple lower-case mapping (so "</source>" does not close "<ſource>")."""
    at = text.find("</", start)
    while at >= 0:
        candidate = text[at + 2:at + 2 + len(name)]
        if len(candidate) == len(name) and same_name(candidate, name):
            closing = SPACES_THEN_BRACKET.match(text, at + 2 + len(name))
            if closing:
                return closing.end()
        at = text.find("</", at + 1)
    return len(text)


def same_name(written: str, name: str) -> bool:
    """Equal under simple lower-casing (the first character of the full mapping: "İ" -> "i")."""
    if written.isascii() and name.isascii():
        return written.lower() == name.lower()
    return all(a.lower()[:1] == b.lower()[:1] for a, b in zip(written, name))


def remove_templates(text: str) -> str:
    """`text` without `{{...}}` templates, however deeply nested, in one pass: each `}}` closes
    the nearest open `{{`, and what an outer template spans goes with it. An unclosed `{{` stays
    as typed (as MediaWiki shows it), while the templates inside it are removed."""
    opened: list[int] = []
    removed: list[list[int]] = []  # spans, in order and disjoint
    for brace in TEMPLATE_BRACES.finditer(text):
        if brace.group() == "{{":
            opened.append(brace.start())
        elif opened:
            start = opened.pop()
            while removed and removed[-1][0] >= start:
                removed.pop()  # inside this template
            removed.append([start, brace.end()])
    if not removed:
        return text
    kept = []
    position = 0
    for start, end in removed:
        kept.append(text[position:start])
        position = end
    kept.append(text[position:])
    return "".join(kept)


def remove_tables(text: str) -> str:
    """`text` without `{|...|}` tables (markers at line starts), however deeply nested.

    An unclosed table swallows the rest of the page (MediaWiki closes it at the end); a stray
    closer at depth 0 is dropped.
    """
    kept: list[str] = []
    depth = 0
    start = 0
    for match in TABLE_TOKEN.finditer(text):
        if depth == 0:
            kept.append(text[start:match.start()])
        depth = depth + 1 if match.group().lstrip().startswith("{|") else max(0, depth - 1)
        start = match.end()
    if depth == 0:
        kept.append(text[start:])
    return "".join(kept)


def replace_links(text: str, links: list[str] | None = None) -> str:
    """Internal links replaced by their text; File/Image/Category/interlanguage links removed."""
    if DROPPED_LINK_START.search(text):
        text = remove_dropped_links(text)
    if links is not None:
        links.extend(target for target in map(link_target, LINK_TARGET.findall(text)) if target)
    text = PIPED_LINK_OPENING.sub("", text)
    if "#" in text:
        text = ANCHORED_LINK.sub(r"\1", text)
    return text.replace("[[", "").replace("]]", "")


def remove_dropped_links(text: str) -> str:
    """`text` without File/Image/Category/interlanguage links, nested links in captions included."""
    kept: list[str] = []
    position = 0
    while match := DROPPED_LINK_START.search(text, position):
        kept.append(text[position:match.start()])
        position = end_of_link(text, match.start())
    kept.append(text[position:])
    return "".join(kept)


def end_of_link(text: str, start: int) -> int:
    """Where the link opening at `start` closes (nesting counted); the end of text if never."""
    depth = 0
    for bracket in LINK_BRACKETS.finditer(text, start):
        depth += 1 if bracket.group() == "[[" else -1
        if depth == 0:
            return bracket.end()
    return len(text)


def link_target(target: str) -> str:
    """The page a link points to, without its #section."""
    return target.split("#", 1)[0].strip()
