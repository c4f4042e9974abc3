"""Query matching, HTML extraction and language detection throughput, side by side with the plain
alternatives a user would write (MetaCLIP-style space-padded substring matching, bare selectolax).

    .venv/bin/python benchmarks/bench_match.py [--queries 500000] [--texts 50000]
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import time
from pathlib import Path

import ahocorasick
from selectolax.lexbor import LexborHTMLParser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from wit_builder.captions import LanguageDetector  # noqa: E402
from wit_builder.match import QueryMatcher  # noqa: E402
from wit_builder.sources.html import extract_images  # noqa: E402

SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "ze", "an", "or", "el", "is", "um",
             "pra", "sto", "gre", "bli", "dro", "fen", "mar", "tel", "vin", "qua"]


def pseudo_words(count: int, rng: random.Random) -> list[str]:
    words: set[str] = set()
    while len(words) < count:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 5))))
    return sorted(words)


def make_queries(count: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """~70% unigrams and ~30% bigrams over a Zipf vocabulary, like the paper's query mix."""
    vocabulary = pseudo_words(int(count * 0.7), rng)
    queries = set(vocabulary)
    while len(queries) < count:
        queries.add(f"{rng.choice(vocabulary[:20000])} {rng.choice(vocabulary[:20000])}")
    return sorted(queries), vocabulary


def make_texts(count: int, vocabulary: list[str], rng: random.Random) -> list[str]:
    cumulative = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(vocabulary))))
    texts = []
    for _ in range(count):
        words = rng.choices(vocabulary, cum_weights=cumulative, k=rng.randint(5, 15))
        words[0] = words[0].capitalize()
        texts.append(" ".join(words) + rng.choice([".", "", "!", "'s photo"]))
    return texts


def metaclip_matcher(queries: list[str]) -> ahocorasick.Automaton:
    automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
    for index, query in enumerate(queries):
        automaton.add_word(f" {query} ", index)
    automaton.make_automaton()
    return automaton


def rate(function, items) -> float:
    started = time.perf_counter()
    for item in items:
        function(item)
    return len(items) / (time.perf_counter() - started)


def make_pages(count: int, texts: list[str], rng: random.Random) -> list[str]:
    pages = []
    for i in range(count):
        images = "".join(
            f'<figure><img src="/img/{i}-{k}.jpg" alt="{rng.choice(texts)}" width="300">'
            f'<figcaption>{rng.choice(texts)}</figcaption></figure><p>{rng.choice(texts)}</p>'
            for k in range(20))
        links = "".join(f'<a href="/page/{rng.randint(0, 10**6)}.html">link</a>' for _ in range(30))
        pages.append(f"<html><head><title>page {i}</title></head><body>{images}{links}"
                     f"</body></html>")
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=500_000)
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--pages", type=int, default=2_000)
    args = parser.parse_args()
    rng = random.Random(0)
    queries, vocabulary = make_queries(args.queries, rng)
    texts = make_texts(args.texts, vocabulary, rng)

    started = time.perf_counter()
    ours = QueryMatcher.from_queries(enumerate(queries))
    build_ours = time.perf_counter() - started
    started = time.perf_counter()
    theirs = metaclip_matcher(queries)
    build_theirs = time.perf_counter() - started

    ours_rate = rate(ours.match, texts)
    theirs_rate = rate(lambda text: {v for _, v in theirs.iter(f" {text} ")}, texts)
    matches = sum(len(ours.match(text)) for text in texts[:5000]) / 5000
    print_table(f"Query matching, {len(queries):,} queries, {len(texts):,} texts, 1 core",
                ["matcher", "texts/s", "build s", "ratio"],
                [["witbuilder (normalised, word boundaries)", ours_rate, build_ours,
                  ours_rate / theirs_rate],
                 ["MetaCLIP-style (space-padded, case-sensitive)", theirs_rate, build_theirs, 1.0]])
    print(f"\nmean matches per text (witbuilder): {matches:.2f}")

    pages = make_pages(args.pages, texts, rng)
    ours_pages = rate(lambda page: extract_images(page, "http://site.test/a/b.html"), pages)
    bare_pages = rate(lambda page: [n.attributes for n in LexborHTMLParser(page).css("img")], pages)
    detector = LanguageDetector("langdetect", seed=0)
    sample = texts[:500]
    detect_rate = rate(detector.detect, sample)
    print_table("HTML extraction and language detection, 1 core",
                ["work", "items/s", "ratio"],
                [["witbuilder extract_images (pages)", ours_pages, ours_pages / bare_pages],
                 ["bare selectolax parse + img attributes (pages)", bare_pages, 1.0],
                 ["langdetect, seeded (texts)", detect_rate, detect_rate / ours_rate]])


if __name__ == "__main__":
    main()
