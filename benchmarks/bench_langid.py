"""The crawl's language filter on real short texts: langdetect, lingua and auto (the default).

Texts (fetched from Debian and PyPI into the real-material cache, see tests/support/langdata.py):
the alt texts of the GIMP 2.10 manual in English, German, French and Spanish (Debian
gimp-help-*), and Django 5.1.4's UI messages (msgids and their translations), 1-8 words each.
As in the crawl, only the texts that contain a query are asked: the queries are Debian's
wamerican word list (as `make realcheck` uses), and they are also `auto`'s vocabulary.

Prints, per text set and detector: English kept, German / French / Spanish dropped, by length;
auto on the half of the alt texts its constants were chosen on and on the other half; Django's
messages in 30 other Latin-script languages, dropped; and texts/s of each detector's `detect`
(what the crawl's workers call), all texts and by length, interleaved rounds, the median ratio
to langdetect.

    .venv/bin/python benchmarks/bench_langid.py [--rounds 5] [--timed 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from support import langdata  # noqa: E402
from support.realdata import Unavailable  # noqa: E402
from wit_builder.core.text import words  # noqa: E402
from wit_builder.crawl.language import (DEFAULT_MIN_PROB, LanguageDetector,  # noqa: E402
                                        query_lexicon)

# Latin-script languages (the ones a short text can be mistaken for English in): Django's locales
OTHER_LANGUAGES = ("it", "nl", "pt", "pl", "sv", "tr", "id", "vi", "cs", "da", "fi", "ro", "hu",
                   "ca", "sk", "sl", "hr", "et", "lv", "lt", "nb", "af", "sw", "ms", "eu", "gl",
                   "ga", "cy", "sq", "is")
BUCKETS = (("1 word", 1, 1), ("2 words", 2, 2), ("3-4 words", 3, 4), ("5-8 words", 5, 8))


def kept(detector: LanguageDetector, backend: str, texts: list[str]) -> list[bool]:
    """Whether the crawl keeps each text as English (its own test: language and threshold)."""
    threshold = DEFAULT_MIN_PROB[backend]
    result = []
    for text in texts:
        lang, prob = detector.detect(text)
        result.append(lang == "en" and prob >= threshold)
    return result


def percent(flags: list[bool], keep: bool) -> str:
    if not flags:
        return "-"
    share = sum(flags) / len(flags)
    return f"{100 * (share if keep else 1 - share):.1f}"


def row(name: str, decisions: dict[str, list[bool]], texts: dict[str, list[str]],
        low: int = 1, high: int = 8) -> list[str]:
    cells = [name]
    for lang in langdata.LANGUAGES:
        flags = [flag for flag, text in zip(decisions[lang], texts[lang])
                 if low <= len(words(text)) <= high]
        cells.append(f"{percent(flags, lang == 'en')} ({len(flags)})")
    return cells


def table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    print(line(header))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for cells in rows:
        print(line(cells))
    print()


def accuracy(detectors: dict[str, LanguageDetector], sets: dict[str, dict[str, list[str]]]
             ) -> None:
    header = ["detector", "en kept % (texts)", "de dropped %", "fr dropped %", "es dropped %"]
    for set_name, texts in sets.items():
        decisions = {name: {lang: kept(detector, name, texts[lang]) for lang in texts}
                     for name, detector in detectors.items()}
        rows = []
        for name in detectors:
            rows.append(row(name, decisions[name], texts))
            rows += [row(f"  {bucket}", decisions[name], texts, low, high)
                     for bucket, low, high in BUCKETS]
        print(f"## {set_name}")
        table(header, rows)
        if set_name.startswith("GIMP"):
            halves = []
            for half, label in ((0, "auto, half its constants were chosen on"),
                                (1, "auto, held-out half")):
                chosen = {lang: [zlib.crc32(text.encode()) % 2 == half for text in found]
                          for lang, found in texts.items()}
                halves.append(row(label, {lang: [flag for flag, pick in zip(
                    decisions["auto"][lang], chosen[lang]) if pick] for lang in texts},
                    {lang: [text for text, pick in zip(texts[lang], chosen[lang]) if pick]
                     for lang in texts}))
            table(header, halves)


def other_languages(detectors: dict[str, LanguageDetector], texts: dict[str, list[str]]
                    ) -> None:
    """Dropped share of the messages in languages the goal does not name (Django's locales), all
    and those of two words or more (one word's language is a guess: see crawl/language.py)."""
    rows = []
    for name, detector in detectors.items():
        dropped = {lang: [not flag for flag in kept(detector, name, found)]
                   for lang, found in texts.items() if found}
        longer = [flag for lang, flags in dropped.items()
                  for flag, text in zip(flags, texts[lang]) if len(words(text)) >= 2]
        every = [flag for flags in dropped.values() for flag in flags]
        worst = sorted(dropped.items(), key=lambda item: sum(item[1]) / len(item[1]))[:4]
        rows.append([name, f"{percent(every, True)} ({len(every)})",
                     f"{percent(longer, True)} ({len(longer)})",
                     ", ".join(f"{lang} {100 * sum(flags) / len(flags):.0f}"
                               for lang, flags in worst)])
    print(f"## Django 5.1.4, UI messages in {len(texts)} other languages ({', '.join(texts)})")
    table(["detector", "dropped % (texts)", "2-8 words: dropped %", "least dropped %"], rows)


def bucket_of(text: str) -> str:
    count = len(words(text))
    return next(name for name, low, high in BUCKETS if low <= count <= high)


def speed(detectors: dict[str, LanguageDetector], texts: list[str], rounds: int,
          chunk: int = 50) -> None:
    """texts/s of each detector, all texts and by length: every round runs the texts in chunks,
    each chunk through every detector in turn, so that the load of other processes falls on all
    of them alike."""
    buckets = [bucket_of(text) for text in texts]
    counts = {name: buckets.count(name) for name, _, _ in BUCKETS}
    rates: dict[str, dict[str, list[float]]] = {
        name: {bucket: [] for bucket in ("all", *counts)} for name in detectors}
    for _ in range(rounds):
        seconds = {name: dict.fromkeys(counts, 0.0) for name in detectors}
        for start in range(0, len(texts), chunk):
            for name, detector in detectors.items():
                spent = seconds[name]
                for text, bucket in zip(texts[start:start + chunk], buckets[start:start + chunk]):
                    began = time.perf_counter()
                    detector.detect(text)
                    spent[bucket] += time.perf_counter() - began
        for name in detectors:
            rates[name]["all"].append(len(texts) / sum(seconds[name].values()))
            for bucket, count in counts.items():
                if count:
                    rates[name][bucket].append(count / seconds[name][bucket])
    rows = []
    for name, found in rates.items():
        ratios = [rate / ref for rate, ref in zip(found["all"], rates["langdetect"]["all"])]
        by_length = [f"{statistics.median(found[bucket]):,.0f} "
                     f"({statistics.median(found[bucket]) / statistics.median(rates['langdetect'][bucket]):.1f}x)"
                     if found[bucket] else "-" for bucket in counts]
        rows.append([name, f"{statistics.median(found['all']):,.0f}",
                     f"{statistics.median(ratios):.1f} ({min(ratios):.1f}-{max(ratios):.1f})",
                     *by_length])
    print(f"## speed: {len(texts)} matched alt texts (all languages), {rounds} rounds, "
          f"interleaved by {chunk} texts")
    table(["detector", "texts/s (median)", "x langdetect (range)",
           *(f"{bucket} ({count})" for bucket, count in counts.items())], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--timed", type=int, default=1000, help="texts per timing round")
    args = parser.parse_args()
    try:
        queries = langdata.word_list_queries()
        sets = {"GIMP 2.10 manual, alt texts": langdata.matched_texts(langdata.alt_texts(), queries),
                "Django 5.1.4, UI messages": langdata.matched_texts(langdata.ui_strings(), queries)}
        others = langdata.matched_texts(langdata.ui_strings(OTHER_LANGUAGES), queries)
        del others["en"]
    except Unavailable as error:
        sys.exit(f"bench_langid: {error}")
    with tempfile.TemporaryDirectory() as folder:  # auto reads its words from a queries file
        path = Path(folder) / "queries.parquet"
        pq.write_table(pa.table({"query_id": pa.array(range(len(queries)), pa.int32()),
                                 "query": queries}), path)
        lexicon = query_lexicon(path)
    started = time.perf_counter()
    detectors = {"langdetect": LanguageDetector("langdetect", seed=0),
                 "lingua": LanguageDetector("lingua"),
                 "auto": LanguageDetector("auto", lexicon=lexicon)}
    detectors["lingua"].detect("a first text loads lingua's models")
    print(f"lingua's models loaded in {time.perf_counter() - started:.1f} s (once per process); "
          f"queries: {len(queries):,} words of wamerican {langdata.WORD_LIST[1]}\n")
    accuracy(detectors, sets)
    other_languages(detectors, others)
    alt = [text for found in sets["GIMP 2.10 manual, alt texts"].values() for text in found]
    step = max(1, len(alt) // args.timed)
    speed(detectors, alt[::step][:args.timed], args.rounds)


if __name__ == "__main__":
    main()
