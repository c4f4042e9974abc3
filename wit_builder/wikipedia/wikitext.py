"""Wikitext to plain text: the visible words of an article, fast enough for 6.8 M pages.

Removed: comments, templates (nested, `{{...}}` and `{{{...}}}`), tables (`{| ... |}`, nested),
`<ref>` and other non-prose tags with their content (math, gallery, timeline, ...), File/Image/
Category/Media links (with captions, which may hold links), interlanguage links, external link URLs,
bold/italic quotes, list and indent markers, magic words and HTML tags (their inner text stays).
Kept: link text (`[[target|text]]` → text, `[[target]]` → target), external link labels and
heading text. Entities are decoded last. Hand-written scanners and a few regexes, no parser library.
"""

from __future__ import annotations

import html
import re

COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
# Tags whose content is not prose: dropped whole (self-closing forms included).
DROPPED_ELEMENTS = ("ref", "math", "chem", "ce", "gallery", "timeline", "score", "hiero",
                    "imagemap", "syntaxhighlight", "source", "pre", "templatedata",
                    "templatestyles", "graph", "mapframe", "maplink", "inputbox", "categorytree")
DROPPED_NAMES = "|".join(DROPPED_ELEMENTS)
SELF_CLOSING_DROPPED = re.compile(rf"<(?:{DROPPED_NAMES})\b[^>]*/>", re.I)
PAIRED_DROPPED = re.compile(rf"<({DROPPED_NAMES})\b[^>]*>.*?(?:</\1\s*>|\Z)", re.I | re.S)
# {{ }} templates and {| |} tables (the latter only at the start of a line), one scanner for both.
BRACE_TOKEN = re.compile(r"\{\{|\}\}|^[ \t]*\{\||^[ \t]*\|\}", re.M)
LINK_TOKEN = re.compile(r"\[\[|\]\]")
# File/Image/Category/Media links in any letter case; interlanguage links such as [[fr:Chien]]
# only in their exact lower-case form, so titles like [[Fox: A Story]] stay links.
DROPPED_LINK_PREFIX = re.compile(r"\s*:?\s*(?:(?i:file|image|category|media)\s*:|[a-z]{2,3}(?:-[a-z]+)?:\S)")
EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]*\s*([^\]]*)\]")
BARE_URL = re.compile(r"https?://[^\s<>\[\]{}|]+")
HEADING = re.compile(r"^[ \t]*(=+)[ \t]*(.*?)[ \t]*\1[ \t]*$", re.M)
LIST_MARKERS = re.compile(r"^[ \t]*[*#:;]+[ \t]*", re.M)
HORIZONTAL_RULE = re.compile(r"^-{4,}", re.M)
BOLD_ITALIC = re.compile(r"'{2,}")
MAGIC_WORD = re.compile(r"__[A-Z]+__")
HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def strip_wikitext(wikitext: str) -> str:
    """The visible prose of one article's wikitext, paragraphs and headings on their own lines."""
    text = COMMENT.sub("", wikitext) if "<!--" in wikitext else wikitext
    if "<" in text:
        text = SELF_CLOSING_DROPPED.sub("", text)
        text = PAIRED_DROPPED.sub("", text)
    if "{" in text:
        text = remove_templates_and_tables(text)
    if "[" in text:
        text = EXTERNAL_LINK.sub(r"\1", text)
        if "[[" in text:
            text = replace_links(text)
    if "://" in text:
        text = BARE_URL.sub("", text)
    if "=" in text:
        text = HEADING.sub(r"\2", text)
    text = LIST_MARKERS.sub("", text)
    if "----" in text:
        text = HORIZONTAL_RULE.sub("", text)
    if "''" in text:
        text = BOLD_ITALIC.sub("", text)
    if "__" in text:
        text = MAGIC_WORD.sub("", text)
    if "<" in text:
        text = HTML_TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    return text


def remove_templates_and_tables(text: str) -> str:
    """`text` without `{{...}}` templates and `{|...|}` tables, however deeply nested.

    An unclosed opener swallows the rest of the page (as MediaWiki would show it as markup, not
    prose); a stray closer at depth 0 is dropped.
    """
    kept: list[str] = []
    depth = 0
    start = 0
    for match in BRACE_TOKEN.finditer(text):
        token = match.group().strip()
        opening = token in ("{{", "{|")
        if depth == 0:
            kept.append(text[start:match.start()])
        if opening:
            depth += 1
        elif depth > 0:
            depth -= 1
        start = match.end()
    if depth == 0:
        kept.append(text[start:])
    return "".join(kept)


def replace_links(text: str) -> str:
    """Internal links replaced by their text; File/Image/Category/interlanguage links removed."""
    pieces: list[str] = []
    stack: list[list[str]] = []  # the pieces of each open link, innermost last
    start = 0
    for match in LINK_TOKEN.finditer(text):
        piece = text[start:match.start()]
        start = match.end()
        (stack[-1] if stack else pieces).append(piece)
        if match.group() == "[[":
            stack.append([])
        elif stack:
            inner = "".join(stack.pop())
            (stack[-1] if stack else pieces).append(link_text(inner))
        # a stray "]]" outside any link is dropped
    tail = text[start:]
    for open_link in stack:  # unclosed links: keep their text as written
        pieces.append("[[" + "".join(open_link))
    pieces.append(tail)
    return "".join(pieces)


def link_text(inner: str) -> str:
    """What a reader sees of `[[inner]]`."""
    if DROPPED_LINK_PREFIX.match(inner):
        return ""
    target, bar, label = inner.partition("|")
    if bar:
        return label
    return target.split("#", 1)[0] if not target.startswith("#") else target[1:]


def link_targets(wikitext: str) -> list[str]:
    """Targets of the article links in raw wikitext (no File/Category/interlanguage links)."""
    targets = []
    for inner in LINK_TARGET.findall(wikitext):
        if not DROPPED_LINK_PREFIX.match(inner):
            target = inner.split("#", 1)[0].strip()
            if target:
                targets.append(target)
    return targets


LINK_TARGET = re.compile(r"\[\[([^\[\]|]*)(?:\|[^\[\]]*)?\]\]")
