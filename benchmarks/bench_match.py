"""Query matching and language detection throughput, side by side with the plain alternative a
user would write (MetaCLIP-style space-padded substring matching). HTML extraction is timed on
real pages by benchmarks/bench_extract.py.

    .venv/bin/python benchmarks/bench_match.py [--queries 500000] [--texts 50000]
        [--parts matching,languages]

Contenders run in alternating chunks of items, several rounds, and each one's time is summed over
its chunks: on a shared, loaded machine both sides then see the same load, so their ratio holds
even when the absolute rates do not.
"""

from __future__ import annotations

import argparse
import itertools
import random
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import ahocorasick
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import print_table  # noqa: E402

from wit_builder.crawl.allocator import keep_freed_memory  # noqa: E402
from wit_builder.crawl.language import LanguageDetector  # noqa: E402
from wit_builder.crawl.match import QueryMatcher  # noqa: E402
from wit_builder.synthweb.render import caption, sample_scene  # noqa: E402

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


def side_by_side(contenders: dict[str, Callable], items: Sequence, chunk: int = 200,
                 rounds: int = 3) -> dict[str, float]:
    """Items per second of each contender, timed in alternating chunks of `items`."""
    seconds = dict.fromkeys(contenders, 0.0)
    order = list(contenders.items())
    for round_ in range(rounds):
        # Whoever goes first in a chunk meets its items cold: take turns.
        shift = round_ % len(order)
        turns = order[shift:] + order[:shift]
        for start in range(0, len(items), chunk):
            part = items[start:start + chunk]
            for name, function in turns:
                started = time.perf_counter()
                for item in part:
                    function(item)
                seconds[name] += time.perf_counter() - started
    return {name: rounds * len(items) / spent for name, spent in seconds.items()}


def cached_matcher(queries: list[str], directory: Path,
                   kind: str) -> tuple[QueryMatcher, float, float]:
    """Our matcher as the crawl's workers get it: built once, cached beside the queries file and
    loaded from there; with the seconds of the first call (build and cache) and of a second
    call (what every later worker pays: the cache, or for the uncached automaton a new build)."""
    path = directory / "queries.parquet"
    if not path.exists():
        pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                                 "query": queries}), path)
    started = time.perf_counter()
    QueryMatcher.for_queries_file(path, kind=kind)
    built = time.perf_counter()
    matcher = QueryMatcher.for_queries_file(path, kind=kind)
    return matcher, built - started, time.perf_counter() - built


def bench_matching(queries: list[str], texts: list[str], directory: Path) -> float:
    """Print the matching table; return our matcher's texts/s."""
    ours, build_ours, load_ours = cached_matcher(queries, directory, "compiled")
    fallback, build_fallback, load_fallback = cached_matcher(queries, directory, "automaton")
    started = time.perf_counter()
    theirs = metaclip_matcher(queries)
    build_theirs = time.perf_counter() - started
    rates = side_by_side({
        "ours": ours.match,
        "fallback": fallback.match,
        "theirs": lambda text: {v for _, v in theirs.iter(f" {text} ")}}, texts)
    checked = texts[:5000]
    found = [ours.match(text) for text in checked]
    assert found == [fallback.match(text) for text in checked], "the two matchers disagree"
    print_table(f"Query matching, {len(queries):,} queries, {len(texts):,} texts, 1 core",
                ["matcher", "texts/s", "build s", "load s", "ratio"],
                [["witbuilder, compiled word automaton (normalised, word boundaries; cached, "
                  "as the crawl uses it)", rates["ours"], build_ours, load_ours,
                  rates["ours"] / rates["theirs"]],
                 ["witbuilder, pyahocorasick (the fallback without the extension; not cached: "
                  "built in every process)",
                  rates["fallback"], build_fallback, load_fallback,
                  rates["fallback"] / rates["theirs"]],
                 ["MetaCLIP-style (space-padded, case-sensitive)", rates["theirs"], build_theirs,
                  "-", 1.0]])
    print(f"\nmean matches per text (witbuilder): {sum(map(len, found)) / len(found):.2f}; "
          f"both witbuilder matchers gave identical ids on {len(checked):,} texts")
    return rates["ours"]


def bench_languages(match_rate: float | None) -> None:
    captions = random.Random(1)  # real English sentences: the bench's pseudo-words are no language
    sample = [caption(sample_scene(captions), captions) for _ in range(300)]
    langdetect, lingua = LanguageDetector("langdetect", seed=0), LanguageDetector("lingua")
    lingua.detect(sample[0])  # lingua loads its models on the first text (seconds)
    detect = side_by_side({"langdetect": langdetect.detect, "lingua": lingua.detect}, sample,
                          chunk=50, rounds=1)
    print_table("Language detection, 1 core", ["work", "texts/s", "ratio"],
                [["langdetect, seeded (English captions)", detect["langdetect"], 1.0],
                 ["lingua, 20 languages (English captions)", detect["lingua"],
                  detect["lingua"] / detect["langdetect"]]])
    if match_rate:
        print(f"\nlangdetect is {match_rate / detect['langdetect']:,.0f}x slower than matching")


PARTS = ("matching", "languages")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=500_000)
    parser.add_argument("--texts", type=int, default=50_000)
    parser.add_argument("--parts", default=",".join(PARTS),
                        help="which tables, comma-separated: " + ", ".join(PARTS))
    parser.add_argument("--glibc-defaults", action="store_true",
                        help="do not keep freed memory as the crawl's processes do")
    args = parser.parse_args()
    if not args.glibc_defaults:
        keep_freed_memory()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        parser.error(f"--parts: unknown {sorted(parts - set(PARTS))}")
    rng = random.Random(0)
    queries, vocabulary = make_queries(args.queries, rng)
    texts = make_texts(args.texts, vocabulary, rng)
    match_rate = None
    if "matching" in parts:
        with tempfile.TemporaryDirectory() as directory:
            match_rate = bench_matching(queries, texts, Path(directory))
    if "languages" in parts:
        bench_languages(match_rate)


if __name__ == "__main__":
    main()
