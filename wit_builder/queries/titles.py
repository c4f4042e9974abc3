"""Article titles as queries: ranked by summed page views, or by inbound links when no pageviews
files are given. Titles in a namespace other than articles, and disambiguation pages, are dropped."""

from __future__ import annotations

import glob
import gzip
import logging
import os
import urllib.parse
from collections import Counter
from pathlib import Path

from wit_builder.core.options import WitError
from wit_builder.core.text import normalize_query

log = logging.getLogger(__name__)

# Domain codes of English Wikipedia in hourly pageviews files (desktop, mobile) and in the
# "pageviews-complete" files.
ENGLISH_WIKIPEDIA = {"en", "en.m", "en.wikipedia", "en.m.wikipedia"}


def lowered_namespaces(namespaces: tuple[str, ...]) -> frozenset[str]:
    return frozenset(name.lower() for name in namespaces)


def is_article_title(title: str, namespaces: frozenset[str]) -> bool:
    """False for titles with a namespace prefix ("Talk:", "File:"; `namespaces` lower-cased) or
    "(disambiguation)"."""
    if "(disambiguation)" in title.lower():
        return False
    prefix, colon, _ = title.partition(":")
    if not colon:
        return True
    prefix = prefix.replace("_", " ").strip().lower()
    return prefix not in namespaces


def pageviews_files(paths: list[str]) -> list[str]:
    """The pageviews files named: files as given, directories and globs expanded (sorted)."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            files += sorted(str(p) for p in Path(path).iterdir() if p.is_file())
        elif any(char in path for char in "*?["):
            files += sorted(glob.glob(path))
        elif os.path.isfile(path):
            files.append(path)
        else:
            raise WitError(f"pageviews '{path}' does not exist")
    if paths and not files:
        raise WitError(f"pageviews {', '.join(repr(p) for p in paths)} hold no files")
    return files


def read_pageviews(paths: list[str], namespaces: tuple[str, ...]) -> Counter:
    """Summed views of every normalised English Wikipedia article title in the pageviews files
    (`paths` as `pageviews_files` expanded them)."""
    lowered = lowered_namespaces(namespaces)
    views: Counter = Counter()
    for path in paths:
        views.update(pageviews_of_file(path, lowered))
    return views


def pageviews_of_file(path: str, namespaces: frozenset[str]) -> Counter:
    """Views per normalised title of one pageviews file (gzipped or plain)."""
    views: Counter = Counter()
    try:
        with open(path, "rb") as probe:
            opener = gzip.open if probe.read(2) == b"\x1f\x8b" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, 1):
                fields = line.split(" ")
                if len(fields) < 3 or fields[0] not in ENGLISH_WIKIPEDIA:
                    continue
                if not fields[2].strip().isdigit():
                    raise WitError(f"pageviews '{path}' line {number} is not "
                                   f"'domain title views bytes'")
                title = fields[1].replace("_", " ")
                if "%" in title:
                    title = urllib.parse.unquote(title)
                if is_article_title(title, namespaces):
                    query = normalize_query(title)
                    if query:
                        views[query] += int(fields[2])
    except FileNotFoundError:
        raise WitError(f"pageviews '{path}' does not exist") from None
    except (OSError, EOFError) as error:
        raise WitError(f"pageviews '{path}' cannot be read: {error}") from None
    return views


def titles_from_links(link_targets: Counter, namespaces: tuple[str, ...]) -> Counter:
    """Inbound links per normalised article title, from raw link targets counted in the dump."""
    lowered = lowered_namespaces(namespaces)
    links: Counter = Counter()
    for target, count in link_targets.items():
        if is_article_title(target, lowered):
            query = normalize_query(target.replace("_", " "))
            if query:
                links[query] += count
    return links


def credit_articles(popularity: Counter, titles: set[str],
                    redirect_targets: dict[str, str]) -> Counter:
    """Popularity of the dump's articles only: a redirect's views or links go to its target
    article; titles that are neither (red links, deleted pages) are dropped."""
    articles = {normalize_query(title) for title in titles}
    redirects = {normalize_query(title): normalize_query(target)
                 for title, target in redirect_targets.items()}
    credited: Counter = Counter()
    for title, value in popularity.items():
        if title in articles:
            credited[title] += value
        elif redirects.get(title) in articles:
            credited[redirects[title]] += value
    return credited


def popular_titles(popularity: Counter, threshold: int) -> list[tuple[str, int]]:
    """Titles at or above the threshold, most popular first (ties by title)."""
    chosen = [(title, value) for title, value in popularity.items() if value >= threshold]
    chosen.sort(key=lambda item: (-item[1], item[0]))
    return chosen
