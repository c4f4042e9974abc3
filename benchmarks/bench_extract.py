"""HTML extraction on real pages: `parse_page`, what the crawl runs on every page, against a bare
selectolax parse + tags('img') + attributes, the least a user would write.

    .venv/bin/python benchmarks/bench_extract.py [--rounds 3] [--glibc-defaults]

The pages are real HTML documentation nobody on the project wrote, fetched from Debian at run
time into the real-material cache (tests/support/realdata.py): Python 3.11's documentation
(python3.11-doc: 530 pages, median 54 KB, ~310 links and ~3 images a page) and GIMP 2.10's
English manual (gimp-help-en: 685 pages, median 8 KB, ~26 links and ~10 images a page). Each
page is handed over as the crawl hands it: the bytes of the response.

Contenders run in alternating chunks of pages, several rounds, taking turns to go first; each
one's time is the CPU time of this thread (time.thread_time) summed over its chunks, so other
processes on a shared machine neither add to it nor favour one side. The process keeps freed
memory as the crawl's processes do (wit_builder/crawl/allocator.py), for every contender alike.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]
from common import print_table  # noqa: E402
from selectolax.lexbor import LexborHTMLParser  # noqa: E402
from support.realdata import Unavailable, fetch_deb  # noqa: E402

from wit_builder.crawl.allocator import keep_freed_memory  # noqa: E402
from wit_builder.crawl.sources.html import (PageTooComplex, extract_images,  # noqa: E402
                                            parse_page)

PYTHON_DOC = ("python3.11-doc", "3.11.2-6+deb12u8", "usr/share/doc/python3.11/html",
              "https://docs.python.org/3.11/")
GIMP_MANUAL = ("gimp-help-en", "2.10.34-2", "usr/share/gimp/2.0/help/en",
               "https://docs.gimp.org/2.10/en/")


def real_pages(package: str, version: str, folder: str, site: str) -> list[tuple[str, bytes]]:
    """(URL, bytes) of every HTML page of a Debian documentation package."""
    root = fetch_deb(package, version) / folder
    return [(site + path.relative_to(root).as_posix(), path.read_bytes())
            for path in sorted(root.rglob("*.html"))]


def side_by_side(contenders: dict[str, Callable], pages: Sequence, rounds: int,
                 chunk: int = 20) -> dict[str, float]:
    """Mean CPU µs a page of each contender, timed in alternating chunks of `pages`."""
    seconds = dict.fromkeys(contenders, 0.0)
    order = list(contenders.items())
    for round_ in range(rounds):
        shift = round_ % len(order)  # whoever goes first in a chunk meets its pages cold
        for start in range(0, len(pages), chunk):
            part = pages[start:start + chunk]
            for name, function in order[shift:] + order[:shift]:
                started = time.thread_time()
                for url, body in part:
                    function(url, body)
                seconds[name] += time.thread_time() - started
    return {name: spent / (rounds * len(pages)) * 1e6 for name, spent in seconds.items()}


def bare_images(url: str, body: bytes) -> list:
    return [node.attributes for node in LexborHTMLParser(body).tags("img")]


def bare_images_and_links(url: str, body: bytes) -> tuple:
    tree = LexborHTMLParser(body)
    return [node.attributes for node in tree.tags("img")], \
        [node.attributes for node in tree.tags("a")]


CONTENDERS: dict[str, tuple[str, Callable]] = {
    "links": ("witbuilder parse_page (what the crawl runs before its last depth: images and "
              "links)", lambda url, body: parse_page(body, url)),
    "images": ("witbuilder parse_page(with_links=False) (the last depth; extract_images, the "
               "WARC and pool sources, is the same path)",
               lambda url, body: parse_page(body, url, with_links=False)),
    "bare": ("bare selectolax parse + tags('img') + attributes", bare_images),
    "bare links": ("bare selectolax parse + tags('img') + tags('a') + attributes",
                   bare_images_and_links),
    "parse": ("selectolax parse alone", lambda url, body: LexborHTMLParser(body)),
}


def bench_corpus(name: str, pages: list[tuple[str, bytes]], rounds: int) -> None:
    for url, body in pages[:200]:  # the compiled path gives what the Python reference gives
        found = parse_page(body, url)[0]
        reference = extract_images(body, url, compiled=False)
        assert (found.pairs, found.dropped) == (reference.pairs, reference.dropped), url
    micros = side_by_side({key: function for key, (_, function) in CONTENDERS.items()},
                          pages, rounds)
    size = sorted(len(body) for _, body in pages)[len(pages) // 2]
    pairs = sum(len(parse_page(body, url)[0].pairs) for url, body in pages)
    print_table(f"{name}: {len(pages):,} pages (median {size / 1024:.0f} KB), {pairs:,} pairs, "
                f"1 core, CPU µs a page", ["work", "µs/page", "pages/s", "ratio"],
                [[label, micros[key], 1e6 / micros[key], micros["bare"] / micros[key]]
                 for key, (label, _) in CONTENDERS.items()])


PATHOLOGICAL = {
    "one <img> with 100,000 attributes (Lexbor: minutes)":
        "<img src=a.jpg alt=x " + " ".join(f"a{n}" for n in range(100_000)) + ">",
    "50,000 nested <div> (Lexbor: ~3 s)": "<div>" * 50_000 + "<img src=a.jpg alt=x>",
}


def bench_refusals() -> None:
    rows = []
    for name, page in PATHOLOGICAL.items():
        body = page.encode()
        started = time.thread_time()
        try:
            parse_page(body, "http://site.test/")
            verdict = "parsed"
        except PageTooComplex as error:
            verdict = f"PageTooComplex: {error}"
        rows.append([name, f"{len(body) / 1024:,.0f} KB",
                     (time.thread_time() - started) * 1e3, verdict])
    print_table("Pages over budget, refused before parsing", ["page", "size", "ms", "outcome"],
                rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="do not keep freed memory as the crawl's processes do")
    args = parser.parse_args()
    if not args.glibc_defaults:
        keep_freed_memory()
    try:
        corpora = {"Python 3.11 documentation": real_pages(*PYTHON_DOC),
                   "GIMP 2.10 manual": real_pages(*GIMP_MANUAL)}
    except Unavailable as error:
        sys.exit(f"bench_extract: {error} (the real pages come from Debian: apt-get download)")
    for name, pages in corpora.items():
        bench_corpus(name, pages, args.rounds)
    bench_refusals()


if __name__ == "__main__":
    main()
