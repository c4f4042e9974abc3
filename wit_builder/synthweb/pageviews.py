"""Hourly pageviews of the synthetic Wikipedia, as dumps.wikimedia.org/other/pageviews has them.

`pageviews-YYYYMMDD-HH0000.gz`: gzipped lines `domain_code page_title count_views
total_response_size`, sorted by domain then title. Real domain codes abbreviate the project:
English Wikipedia is `en` (desktop) and `en.m` (mobile web); other projects add a suffix
(`en.d` Wiktionary, `en.b` Wikibooks) and other languages another prefix (`de`, `fr.m`). The size
field has been 0 since 2016. Titles use underscores and may carry a namespace (`Talk:`, `File:`,
`Special:`). English Wikipedia views are the sum of `en` and `en.m`; every other domain must be
ignored by a reader, even where a title is the same as one of ours (`fr Triangle`, `en.d triangle`).
"""

from __future__ import annotations

import gzip
import random
from collections import Counter
from pathlib import Path

from wit_builder.core import atomic

DAY = "20260101"
HOURS = 6
ENGLISH_WIKIPEDIA = ("en", "en.m")
# Pages that exist only in the pageviews (not in the dump), and views of other projects.
SPECIAL_PAGES = ("Main_Page", "Special:Search", "Special:Random", "Special:RecentChanges",
                 "Wikipedia:About", "Help:Contents", "Portal:Shapes")
FOREIGN = (("de", "Dreieck"), ("de.m", "Rot"), ("fr", "Triangle"), ("fr.m", "Cercle"),
           ("en.d", "triangle"), ("en.d", "red"), ("en.b", "Geometry"), ("commons.m", "Main_Page"),
           ("ja", "三角形"))


def hourly_views(total: float, rng: random.Random) -> list[int]:
    """`total` expected views spread over the hours, with hour-to-hour noise."""
    return [int(total / HOURS * rng.uniform(0.5, 1.5)) for _ in range(HOURS)]


def pageview_lines(hour: int, views: dict[tuple[str, str], list[int]]) -> list[str]:
    lines = [f"{domain} {title} {counts[hour]} 0" for (domain, title), counts in views.items()
             if counts[hour] > 0]
    return sorted(lines, key=lambda line: line.split(" ", 2)[:2])


def plan_views(popularity: list[tuple[str, float]], other_titles: list[str],
               rng: random.Random) -> dict[tuple[str, str], list[int]]:
    """Views per (domain, title) and hour: articles by popularity, plus every kind of noise line."""
    views: dict[tuple[str, str], list[int]] = {}
    for title, weight in popularity:
        total = 20000 * weight
        mobile_share = rng.uniform(0.4, 0.7)
        name = title.replace(" ", "_")
        views[("en.m", name)] = hourly_views(total * mobile_share, rng)
        views[("en", name)] = hourly_views(total * (1 - mobile_share), rng)
    for title in other_titles:
        views[("en", title.replace(" ", "_"))] = hourly_views(rng.uniform(10, 400), rng)
    for title in SPECIAL_PAGES:
        views[("en", title)] = hourly_views(rng.uniform(5000, 20000), rng)
    for domain, title in FOREIGN:
        views[(domain, title)] = hourly_views(rng.uniform(100, 3000), rng)
    return views


def write_pageviews(out: Path, popularity: list[tuple[str, float]], other_titles: list[str],
                    seed: int) -> tuple[dict, dict[str, int]]:
    """Write the hourly files under `out/pageviews`; return (manifest, English views per title)."""
    rng = random.Random(f"witbuilder-pageviews/{seed}")
    views = plan_views(popularity, other_titles, rng)
    files = {}
    for hour in range(HOURS):
        name = f"pageviews/pageviews-{DAY}-{hour:02d}0000.gz"
        text = "".join(line + "\n" for line in pageview_lines(hour, views)).encode("utf-8")
        with atomic.atomic_path(out / name) as temporary:
            with open(temporary, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                                             mtime=0) as handle:
                handle.write(text)
        files[name] = (out / name).stat().st_size
    english: Counter[str] = Counter()
    for (domain, title), counts in views.items():
        if domain in ENGLISH_WIKIPEDIA:
            english[title.replace("_", " ")] += sum(counts)
    manifest = {"files": files, "hours": HOURS, "lines": sum(
        1 for counts in views.values() for count in counts if count > 0)}
    return manifest, {title: count for title, count in sorted(english.items()) if count > 0}
